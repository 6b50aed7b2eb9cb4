package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingSpec;
import corfs.backing.Backings;
import corfs.backing.Transport;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The {@code http://} and {@code https://} transport: a SPEC is the URL of the raw image (redirects
 * followed; a presigned object-store URL is just an https URL), read with ranged, conditional GETs
 * ({@link HttpRangeReader}) and exposed as a read-only {@link HttpBacking}.
 *
 * <p>Options beyond {@link Backings#COMMON_OPTIONS} ({@code timeout}: the deadline of one read, retries
 * included, default {@value #DEFAULT_TIMEOUT_SECONDS} s; {@code connections}: requests on the wire at once,
 * default {@value #DEFAULT_CONNECTIONS}): {@code ca=FILE} (a PEM bundle trusted instead of the system's
 * CAs) and {@code header-file=FILE} (extra request headers, such as an {@code Authorization}, read at
 * open and never shown: see {@link HeaderFile}). Both are absolute paths: they are stored with the leaf
 * and read again at every mount, from whatever directory.
 *
 * <p>Stateless and thread-safe; {@link #open} returns the lifecycle object.
 */
public final class HttpTransport implements Transport {
    public static final int DEFAULT_CONNECTIONS = 4;
    public static final long DEFAULT_TIMEOUT_SECONDS = 30;
    private static final Set<String> KEYS = Set.of("ca", "header-file");

    public HttpTransport() {
    }

    @Override
    public String name() {
        return "http";
    }

    @Override
    public boolean accepts(String spec) {
        return spec != null && (spec.regionMatches(true, 0, "http://", 0, 7)
                || spec.regionMatches(true, 0, "https://", 0, 8));
    }

    @Override
    public Set<String> optionKeys() {
        return KEYS;
    }

    @Override
    public void validate(String spec, Map<String, String> options) throws IOException {
        uri(spec);
        options(options, KEYS);
    }

    @Override
    public Backing open(String spec, Map<String, String> options) throws IOException {
        URI uri = uri(spec);
        HttpOptions o = options(options, KEYS);
        HttpRangeReader reader = HttpRangeReader.open(uri, o);
        return new HttpBacking(reader, BackingSpec.redact(spec),
                "an HTTP(S) backing is read-only: commit needs a writable file or NBD backing");
    }

    /** The URL of an http(s) SPEC: with a host, without a fragment; INVALID_ARGUMENT otherwise. */
    static URI uri(String spec) throws CorfsException {
        URI uri;
        try {
            uri = new URI(spec);
        } catch (URISyntaxException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                    + " is not a valid URL (" + e.getReason() + " at index " + e.getIndex() + ")");
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                    + " is not an http:// or https:// URL");
        }
        if (uri.getHost() == null || uri.getHost().isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                    + " has no host name (or an invalid one)");
        }
        if (uri.getRawFragment() != null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                    + " has a fragment (#...), which is never sent to a server");
        }
        return uri;
    }

    /**
     * The reader's options from a backing's options: {@code timeout} and {@code connections} as
     * {@link Backings} parses them, {@code ca} and {@code header-file} as absolute paths. Keys outside
     * {@code allowed} and the common ones are refused. No I/O: the files are read at open.
     */
    public static HttpOptions options(Map<String, String> options, Set<String> allowed) throws CorfsException {
        Set<String> known = new TreeSet<>(allowed);
        known.addAll(Backings.COMMON_OPTIONS);
        known.addAll(corfs.backing.qcow2.Qcow2Backing.OPTION_KEYS); // a format's keys reach every transport
        Set<String> unknown = new TreeSet<>(options.keySet());
        unknown.removeAll(known);
        if (!unknown.isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "unknown backing option " + String.join(", ", unknown)
                    + " (known: " + String.join(", ", known) + ")");
        }
        long timeout = Backings.parseTimeoutSeconds(options);
        int connections = Backings.parseConnections(options, DEFAULT_CONNECTIONS);
        return new HttpOptions(Duration.ofSeconds(timeout == 0 ? DEFAULT_TIMEOUT_SECONDS : timeout), connections,
                path(options, "ca"), path(options, "header-file"));
    }

    private static Path path(Map<String, String> options, String key) throws CorfsException {
        String v = options.get(key);
        if (v == null) {
            return null;
        }
        Path p;
        try {
            p = v.isBlank() || v.indexOf('\0') >= 0 ? null : Path.of(v);
        } catch (InvalidPathException e) {
            p = null;
        }
        if (p == null || !p.isAbsolute()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, key + "=" + v + " is not an absolute path (it is"
                    + " stored with the leaf and read at every mount)");
        }
        return p.normalize();
    }
}
