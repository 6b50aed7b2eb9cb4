package corfs.backing.nbd;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.Backings;
import corfs.backing.Transport;

import java.io.IOException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Set;

/**
 * NBD exports: {@code nbd://HOST[:PORT]/EXPORT}, {@code nbd+unix:///EXPORT?socket=PATH} and their TLS
 * forms {@code nbds://}, {@code nbds+unix://}, opened as an {@link NbdBacking}.
 *
 * <p>Options beyond the common {@code timeout} (per call, default 30 s: how long a call waits in all, for
 * the server and, while it is away, for the keeper's reconnect; also the connect deadline, up to 30 s) and
 * {@code connections} (see {@link NbdBacking}): {@code tls-ca}, {@code tls-cert}, {@code tls-key}
 * (absolute paths of PEM files: the daemon does not run in the caller's directory; cert and key go
 * together), {@code tls-hostname} (the name the server's certificate must carry, overriding the URI's).
 * TLS options on a plain {@code nbd://} URI are an error: corfs never upgrades or downgrades silently.
 */
public final class NbdTransport implements Transport {
    /** The longest deadline of one connection attempt (handshake included), whatever the call's timeout. */
    public static final Duration MAX_CONNECT_TIMEOUT = Duration.ofSeconds(NbdBacking.DEFAULT_TIMEOUT_SECONDS);
    /** The call deadline of a mount with {@code backing_timeout=0} (no timeout): the longest {@code timeout} there is. */
    public static final long NO_TIMEOUT_SECONDS = 86_400;

    /** The NBD-only option keys. */
    public static final Set<String> OPTION_KEYS = Set.of("tls-ca", "tls-cert", "tls-key", "tls-hostname");

    public NbdTransport() {
    }

    @Override
    public String name() {
        return "nbd";
    }

    @Override
    public boolean accepts(String spec) {
        return spec != null && NbdUri.looksLikeNbd(spec);
    }

    @Override
    public Set<String> optionKeys() {
        return OPTION_KEYS;
    }

    @Override
    public void validate(String spec, Map<String, String> options) throws IOException {
        config(spec, options);
    }

    @Override
    public Backing open(String spec, Map<String, String> options) throws IOException {
        Config c = config(spec, options);
        return NbdBacking.open(c.uri(), c.options(), c.connections());
    }

    /** What a SPEC and its options say, checked without I/O. */
    record Config(NbdUri uri, NbdOptions options, int connections) {
    }

    static Config config(String spec, Map<String, String> options) throws CorfsException {
        // Keys that are neither ours nor common are Backings' to judge (a format's, such as qcow2's l2-cache)
        NbdUri uri = NbdUri.parse(spec);
        long timeout = Backings.parseTimeoutSeconds(options);
        if (timeout == 0) {
            timeout = NbdBacking.DEFAULT_TIMEOUT_SECONDS;
        }
        int connections = options.containsKey("connections") ? Backings.parseConnections(options, 1) : 0;
        Path ca = path(options, "tls-ca");
        Path cert = path(options, "tls-cert");
        Path key = path(options, "tls-key");
        String hostname = options.get("tls-hostname");
        boolean anyTls = ca != null || cert != null || key != null || hostname != null;
        if (anyTls && !uri.tls()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "tls-* options need an nbds:// or nbds+unix:// URI ("
                    + uri + " is plain NBD and never uses TLS)");
        }
        if ((cert == null) != (key == null)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "tls-cert and tls-key go together (give both or neither)");
        }
        if (hostname != null && (hostname.isEmpty() || hostname.length() > 253
                || !hostname.matches("[A-Za-z0-9._~-]+"))) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "bad tls-hostname '" + hostname.replaceAll("\\p{Cntrl}", "?")
                    + "' (letters, digits, '.', '-', '_' only)");
        }
        Duration t = Duration.ofSeconds(timeout);
        // One connect attempt is bounded apart from the call's deadline: a long timeout (a mount's
        // backing_timeout=0 waits up to a day for the server to come back) must not leave the keeper stuck
        // in one connect to a server that accepted and never answered; it retries with backoff instead.
        Duration connect = t.compareTo(MAX_CONNECT_TIMEOUT) > 0 ? MAX_CONNECT_TIMEOUT : t;
        NbdOptions o = NbdOptions.defaults().withTimeout(t).withConnectTimeout(connect).withTls(ca, cert, key, hostname);
        return new Config(uri, o, connections);
    }

    private static Path path(Map<String, String> options, String key) throws CorfsException {
        String v = options.get(key);
        if (v == null) {
            return null;
        }
        Path p;
        try {
            p = v.isEmpty() || v.chars().anyMatch(Character::isISOControl) ? null : Path.of(v);
        } catch (InvalidPathException e) {
            p = null;
        }
        if (p == null || !p.isAbsolute()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, key + "= must be an absolute path to a PEM file");
        }
        return p;
    }
}
