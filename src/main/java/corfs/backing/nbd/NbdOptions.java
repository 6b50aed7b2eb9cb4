package corfs.backing.nbd;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * How to connect to an NBD server: deadlines, TLS material and the protocol features to ask for.
 *
 * @param timeout           deadline of every request (a read, a write, a block status query...):
 *                          the request's future fails with {@link NbdTimeoutException} after this long;
 *                          {@link Duration#ZERO} means none
 * @param connectTimeout    deadline of the connection and the whole handshake (TLS included)
 * @param tlsCa             PEM file of the CA certificates that must have signed the server's
 *                          certificate; null means the JVM's default trust store
 * @param tlsCert           PEM file of the client's certificate chain, or null
 * @param tlsKey            PEM file of the client's unencrypted PKCS#8 private key, or null (both or neither)
 * @param tlsHostname       the name the server's certificate must carry, overriding the URI's
 *                          {@code tls-hostname} and host; null to use those
 * @param structuredReplies ask for structured replies (turn off only to test the fallback)
 * @param blockStatus       ask for the {@code base:allocation} meta context (idem)
 */
public record NbdOptions(Duration timeout, Duration connectTimeout, Path tlsCa, Path tlsCert, Path tlsKey,
        String tlsHostname, boolean structuredReplies, boolean blockStatus) {

    public NbdOptions {
        Objects.requireNonNull(timeout, "timeout");
        Objects.requireNonNull(connectTimeout, "connectTimeout");
        if (timeout.isNegative() || connectTimeout.isNegative() || connectTimeout.isZero()) {
            throw new IllegalArgumentException("timeouts must be positive (timeout may be zero: none)");
        }
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new IllegalArgumentException("tls-cert and tls-key go together");
        }
    }

    /** 30 s per request, 30 s to connect, no client certificate, every feature asked for. */
    public static NbdOptions defaults() {
        return new NbdOptions(Duration.ofSeconds(30), Duration.ofSeconds(30), null, null, null, null, true, true);
    }

    public NbdOptions withTimeout(Duration t) {
        return new NbdOptions(t, connectTimeout, tlsCa, tlsCert, tlsKey, tlsHostname, structuredReplies, blockStatus);
    }

    public NbdOptions withConnectTimeout(Duration t) {
        return new NbdOptions(timeout, t, tlsCa, tlsCert, tlsKey, tlsHostname, structuredReplies, blockStatus);
    }

    public NbdOptions withTls(Path ca, Path cert, Path key, String hostname) {
        return new NbdOptions(timeout, connectTimeout, ca, cert, key, hostname, structuredReplies, blockStatus);
    }

    public NbdOptions withStructuredReplies(boolean on) {
        return new NbdOptions(timeout, connectTimeout, tlsCa, tlsCert, tlsKey, tlsHostname, on, blockStatus && on);
    }

    public NbdOptions withBlockStatus(boolean on) {
        return new NbdOptions(timeout, connectTimeout, tlsCa, tlsCert, tlsKey, tlsHostname, structuredReplies, on);
    }
}
