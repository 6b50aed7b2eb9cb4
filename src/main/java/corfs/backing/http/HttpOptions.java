package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The {@code --backing-opt} keys a network transport over HTTP understands: {@code timeout=SECONDS} (the
 * deadline of one read, retries included; default 30), {@code connections=N} (requests in flight at once;
 * default 4), {@code ca=FILE} (PEM bundle trusted instead of the system's CAs), {@code header-file=FILE}
 * (extra request headers, see {@link HeaderFile}). Unknown keys are a usage error, so a typo never
 * silently drops an option.
 */
public record HttpOptions(Duration timeout, int connections, Path ca, Path headerFile) {
    public static final Set<String> KEYS = Set.of("timeout", "connections", "ca", "header-file");
    public static final HttpOptions DEFAULTS = new HttpOptions(Duration.ofSeconds(30), 4, null, null);

    public HttpOptions {
        if (timeout.isNegative() || timeout.isZero() || connections < 1) {
            throw new IllegalArgumentException("timeout and connections must be positive");
        }
    }

    /** Parses {@code options}; keys outside {@code allowed} (a superset of {@link #KEYS} for S3) are refused. */
    public static HttpOptions parse(Map<String, String> options, Set<String> allowed) throws CorfsException {
        Set<String> unknown = new TreeSet<>(options.keySet());
        unknown.removeAll(allowed);
        if (!unknown.isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "unknown backing option " + String.join(", ", unknown)
                    + " (known: " + String.join(", ", new TreeSet<>(allowed)) + ")");
        }
        Duration timeout = DEFAULTS.timeout();
        if (options.containsKey("timeout")) {
            timeout = Duration.ofSeconds(number(options, "timeout", 1, 3600));
        }
        int connections = DEFAULTS.connections();
        if (options.containsKey("connections")) {
            connections = (int) number(options, "connections", 1, 64);
        }
        Path ca = options.containsKey("ca") ? Path.of(options.get("ca")) : null;
        Path headerFile = options.containsKey("header-file") ? Path.of(options.get("header-file")) : null;
        return new HttpOptions(timeout, connections, ca, headerFile);
    }

    private static long number(Map<String, String> options, String key, long min, long max) throws CorfsException {
        String v = options.get(key);
        try {
            long n = Long.parseLong(v);
            if (n >= min && n <= max) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new CorfsException(Reason.INVALID_ARGUMENT, key + " must be a whole number from " + min + " to " + max
                + ", not '" + v + "'");
    }
}
