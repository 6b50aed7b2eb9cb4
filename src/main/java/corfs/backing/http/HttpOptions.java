package corfs.backing.http;

import java.nio.file.Path;
import java.time.Duration;

/**
 * The {@code --backing-opt} keys a network transport over HTTP understands: {@code timeout=SECONDS} (the
 * deadline of one read, retries included; default 30), {@code connections=N} (requests in flight at once;
 * default 4), {@code ca=FILE} (PEM bundle trusted instead of the system's CAs), {@code header-file=FILE}
 * (extra request headers, see {@link HeaderFile}). {@link HttpTransport#options} makes them from a
 * backing's options.
 */
public record HttpOptions(Duration timeout, int connections, Path ca, Path headerFile) {
    public static final HttpOptions DEFAULTS = new HttpOptions(Duration.ofSeconds(30), 4, null, null);

    public HttpOptions {
        if (timeout.isNegative() || timeout.isZero() || connections < 1) {
            throw new IllegalArgumentException("timeout and connections must be positive");
        }
    }
}
