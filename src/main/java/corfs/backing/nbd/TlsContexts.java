package corfs.backing.nbd;

import corfs.CorfsException.Reason;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

/**
 * Builds the client's TLS engine from PEM files: the CA certificates to trust (else the JVM's defaults),
 * an optional client certificate chain and PKCS#8 key. TLS 1.2 and 1.3 only; the server's certificate
 * must chain to a trusted CA and name the expected host (RFC 2818 rules, as HTTPS does).
 */
final class TlsContexts {
    private static final long MAX_PEM = 1 << 20;

    private TlsContexts() {
    }

    static SSLEngine clientEngine(NbdOptions options, String hostname, int port) throws NbdException {
        try {
            TrustManagerFactory tmf = null;
            if (options.tlsCa() != null) {
                KeyStore trust = KeyStore.getInstance("PKCS12");
                trust.load(null, null);
                List<Certificate> cas = certificates(options.tlsCa(), "tls-ca");
                for (int i = 0; i < cas.size(); i++) {
                    trust.setCertificateEntry("ca" + i, cas.get(i));
                }
                tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trust);
            }
            KeyManagerFactory kmf = null;
            if (options.tlsCert() != null) {
                KeyStore keys = KeyStore.getInstance("PKCS12");
                keys.load(null, null);
                List<Certificate> chain = certificates(options.tlsCert(), "tls-cert");
                keys.setKeyEntry("client", privateKey(options.tlsKey()), new char[0], chain.toArray(new Certificate[0]));
                kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(keys, new char[0]);
            }
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf == null ? null : tmf.getTrustManagers(), null);
            SSLEngine engine = ctx.createSSLEngine(hostname, port < 0 ? 0 : port);
            engine.setUseClientMode(true);
            SSLParameters p = engine.getSSLParameters();
            p.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
            p.setEndpointIdentificationAlgorithm("HTTPS");
            if (!hostname.matches("[0-9.]+") && hostname.indexOf(':') < 0) {
                p.setServerNames(List.of(new SNIHostName(hostname)));
            }
            engine.setSSLParameters(p);
            return engine;
        } catch (GeneralSecurityException | IOException | IllegalArgumentException e) {
            throw new NbdException(Reason.INVALID_ARGUMENT, "cannot set up TLS: " + e.getMessage(), e);
        }
    }

    private static String pem(Path file, String what) throws IOException {
        if (Files.size(file) > MAX_PEM) {
            throw new IOException(what + " " + file + " is larger than 1 MiB");
        }
        return Files.readString(file, StandardCharsets.US_ASCII);
    }

    private static List<Certificate> certificates(Path file, String what) throws IOException, GeneralSecurityException {
        String text = pem(file, what);
        List<Certificate> out = new ArrayList<>(CertificateFactory.getInstance("X.509")
                .generateCertificates(new ByteArrayInputStream(text.getBytes(StandardCharsets.US_ASCII))));
        if (out.isEmpty()) {
            throw new IOException(what + " " + file + " holds no certificate");
        }
        return out;
    }

    private static PrivateKey privateKey(Path file) throws IOException, GeneralSecurityException {
        String text = pem(file, "tls-key");
        String begin = "-----BEGIN PRIVATE KEY-----";
        int b = text.indexOf(begin);
        int e = text.indexOf("-----END PRIVATE KEY-----");
        if (b < 0 || e < b) {
            throw new IOException("tls-key " + file + " is not an unencrypted PKCS#8 PEM key"
                    + " (convert it: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8)");
        }
        byte[] der = Base64.getMimeDecoder().decode(text.substring(b + begin.length(), e));
        for (String alg : List.of("RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS")) {
            try {
                return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException tryNext) {
                // not this algorithm
            }
        }
        throw new IOException("tls-key " + file + ": unsupported key algorithm");
    }
}
