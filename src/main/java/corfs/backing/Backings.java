package corfs.backing;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.io.FileOps;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Opens a backing from what a leaf records of it: SPEC, FORMAT and options. The SPEC picks the
 * {@link Transport} (a path or {@code file://}, {@code nbd://}..., {@code http(s)://}, {@code s3://});
 * the FORMAT says how the bytes are decoded ({@code raw}: they are the disk).
 *
 * <p>Options are checked here, in one place, before any I/O: a key neither common nor the transport's
 * (nor the format's) is a usage error naming the keys that are allowed.
 */
public final class Backings {
    /** Options every transport takes: the per-call deadline in seconds, and connections (parallelism). */
    public static final Set<String> COMMON_OPTIONS = Set.of("timeout", "connections");

    private final List<Transport> transports;

    /** The transports of this version, the file transport using {@code fileOps} for its locks. */
    public Backings(FileOps fileOps) {
        this.transports = List.of(new FileTransport(fileOps), new corfs.backing.nbd.NbdTransport(),
                new corfs.backing.http.HttpTransport(), new corfs.backing.s3.S3Transport());
    }

    /** The transport for {@code spec}; INVALID_ARGUMENT naming the schemes known when none takes it. */
    public Transport transportFor(String spec) throws CorfsException {
        for (Transport t : transports) {
            if (t.accepts(spec)) {
                return t;
            }
        }
        List<String> names = new ArrayList<>();
        transports.forEach(t -> names.add(t.name()));
        throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                + ": not a path or a URL of a known transport (" + String.join(", ", names) + ")");
    }

    /** The formats a backing may have: raw (the bytes are the disk) and qcow2 (decoded, read-only). */
    public static final String QCOW2 = corfs.backing.qcow2.Qcow2Backing.FORMAT;

    /**
     * Checks SPEC, FORMAT and options without I/O (see the class comment). A null FORMAT (detect at
     * create) allows the options of every format.
     */
    public void validate(String spec, String format, Map<String, String> options) throws IOException {
        Transport t = transportFor(spec);
        if (format != null && !BackingSpec.RAW.equals(format) && !QCOW2.equals(format)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing format '" + format
                    + "' is not supported (raw or qcow2)");
        }
        Set<String> allowed = new TreeSet<>(COMMON_OPTIONS);
        allowed.addAll(t.optionKeys());
        if (format == null || QCOW2.equals(format)) {
            allowed.addAll(formatOptionKeys(QCOW2));
        }
        for (String key : options.keySet()) {
            if (!allowed.contains(key)) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "unknown --backing-opt key '" + key + "' for a "
                        + t.name() + " backing" + (format == null ? "" : " of format " + format) + " (known: "
                        + String.join(", ", allowed) + ")");
            }
        }
        t.validate(spec, options);
        validateFormatOptions(format, options);
    }

    /**
     * Opens the backing; the caller owns (closes) it. With a null FORMAT the transport's raw bytes are
     * returned (for {@link #detectFormat}).
     */
    public Backing open(String spec, String format, Map<String, String> options) throws IOException {
        validate(spec, format, options);
        Backing raw = transportFor(spec).open(spec, options);
        if (format == null || BackingSpec.RAW.equals(format)) {
            return raw;
        }
        return decode(raw, spec, format, options);
    }

    /**
     * The format a backing's bytes have: qcow2 when they start with its magic, else raw. Only
     * {@code create} asks; a mount never probes (a raw image whose first bytes look like qcow2 must not
     * change meaning later).
     */
    public String detectFormat(Backing raw) throws IOException {
        if (raw.size() < 4) {
            return BackingSpec.RAW;
        }
        return corfs.backing.qcow2.Qcow2Backing.looksLikeQcow2(raw) ? QCOW2 : BackingSpec.RAW;
    }

    /**
     * Decodes the raw bytes {@code raw} of {@code spec} as {@code format}; takes ownership of
     * {@code raw} (closed on failure too).
     */
    public Backing decode(Backing raw, String spec, String format, Map<String, String> options) throws IOException {
        if (BackingSpec.RAW.equals(format)) {
            return raw;
        }
        if (!QCOW2.equals(format)) {
            try (raw) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "backing format '" + format + "' is not supported");
            }
        }
        // every layer of the chain through the transport of the layer naming it, with the same options
        return corfs.backing.qcow2.Qcow2Backing.open(spec, raw, layer -> transportFor(layer).open(layer, options),
                options);
    }

    private static Set<String> formatOptionKeys(String format) {
        return QCOW2.equals(format) ? corfs.backing.qcow2.Qcow2Backing.OPTION_KEYS : Set.of();
    }

    private static void validateFormatOptions(String format, Map<String, String> options) throws IOException {
        if (format == null || QCOW2.equals(format)) {
            corfs.backing.qcow2.Qcow2Backing.validate(options);
        }
    }

    /** The local file a SPEC names, if it is one (a path or {@code file://}). */
    public static Optional<Path> localFile(String spec) {
        return BackingSpec.localFile(spec);
    }

    /** Paths and {@code file://} URLs: {@link FileBacking}. */
    static final class FileTransport implements Transport {
        private final FileOps fileOps;

        FileTransport(FileOps fileOps) {
            this.fileOps = fileOps;
        }

        @Override
        public String name() {
            return "file";
        }

        @Override
        public boolean accepts(String spec) {
            return BackingSpec.localFile(spec).isPresent();
        }

        @Override
        public Set<String> optionKeys() {
            return Set.of();
        }

        @Override
        public void validate(String spec, Map<String, String> options) throws IOException {
            if (options.containsKey("connections")) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "connections= applies to network backings only");
            }
            Backings.parseTimeoutSeconds(options);
        }

        @Override
        public Backing open(String spec, Map<String, String> options) throws IOException {
            return FileBacking.open(BackingSpec.localFile(spec).orElseThrow(), fileOps);
        }
    }

    /** The {@code timeout} option in seconds (1 to 86400), or 0 when absent. */
    public static long parseTimeoutSeconds(Map<String, String> options) throws CorfsException {
        return parseBounded(options, "timeout", 1, 86_400);
    }

    /** The {@code connections} option (1 to 64), or {@code dflt} when absent. */
    public static int parseConnections(Map<String, String> options, int dflt) throws CorfsException {
        long n = parseBounded(options, "connections", 1, 64);
        return n == 0 ? dflt : (int) n;
    }

    private static long parseBounded(Map<String, String> options, String key, long min, long max)
            throws CorfsException {
        String v = options.get(key);
        if (v == null) {
            return 0;
        }
        long n;
        try {
            n = Long.parseLong(v); // no blanks: the value is stored as written
        } catch (NumberFormatException e) {
            n = Long.MIN_VALUE;
        }
        if (n < min || n > max) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, key + "=" + v + " is not a whole number from " + min
                    + " to " + max);
        }
        return n;
    }
}
