package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Collection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The TLS trust of a transport with {@code ca=FILE}: an {@link SSLContext} that trusts the certificates in
 * a PEM bundle and nothing else (not the system's CAs), so a server certificate not signed by them is
 * refused. Host name verification stays on (the JDK HTTP client checks the name against the certificate).
 */
public final class TrustBundle {
    private TrustBundle() {
    }

    /** An SSL context trusting exactly the certificates of {@code pem}. */
    public static SSLContext load(Path pem) throws IOException {
        Collection<? extends Certificate> certs;
        try (InputStream in = Files.newInputStream(pem)) {
            certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
        } catch (GeneralSecurityException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "ca " + pem + " is not a PEM certificate bundle: "
                    + e.getMessage(), e);
        } catch (IOException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "cannot read ca " + pem + ": " + e.getMessage(), e);
        }
        if (certs.isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "ca " + pem + " holds no certificate");
        }
        try {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            int i = 0;
            for (Certificate c : certs) {
                store.setCertificateEntry("ca-" + i++, c);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(store);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(null, tmf.getTrustManagers(), null);
            return ctx;
        } catch (GeneralSecurityException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "cannot use ca " + pem + ": " + e.getMessage(), e);
        }
    }
}
