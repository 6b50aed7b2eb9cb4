package corfs.backing.nbd;

/**
 * Opens connections to NBD exports. Pure Java: TCP or Unix sockets through NIO, TLS through
 * {@link javax.net.ssl.SSLEngine}; no native code.
 *
 * <pre>{@code
 * try (NbdConnection c = NbdClient.connect(NbdUri.parse("nbd+unix:///disk?socket=/run/nbd.sock"),
 *         NbdOptions.defaults())) {
 *     ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
 *     c.read(0, buf).get();
 * }
 * }</pre>
 */
public final class NbdClient {
    private NbdClient() {
    }

    /**
     * Connects and negotiates (fixed newstyle; STARTTLS for {@code nbds}; structured replies,
     * {@code base:allocation}, GO with block sizes, each with its fallback), within
     * {@link NbdOptions#connectTimeout()}.
     *
     * @throws NbdException with a one-line message naming the server and the cause: unreachable, not
     *         NBD, TLS required or missing, certificate refused, no such export...
     */
    public static NbdConnection connect(NbdUri uri, NbdOptions options) throws NbdException {
        return NbdConnection.open(uri, options);
    }
}
