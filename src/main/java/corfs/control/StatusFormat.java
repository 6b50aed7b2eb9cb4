package corfs.control;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafCounters;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.PrefetchState;
import corfs.vocabulary.OnError;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The status text shown by reading the control file, its JSON form, and the parser the CLI uses to read
 * the text back.
 *
 * <h2>Text form</h2>
 * One line per leaf, {@code \n}-terminated, of space-separated {@code key=value} fields in this order:
 * {@value #FIELDS_DOC}. Values never contain spaces, except {@code error}, which is last and runs to the
 * end of the line. Conventions:
 * <ul>
 *   <li>{@code image}: the leaf's name, with space, tab, {@code %}, {@code =} and control characters
 *       percent-encoded (as UTF-8 bytes, {@code %20}) by {@link ControlParser#encodeImage}; {@link #parse}
 *       decodes it, and so does the control file's grammar, so the token works in a command.</li>
 *   <li>{@code backing}: the backing's SPEC with any credential removed, percent-encoded like
 *       {@code image} ({@code -} when unknown); {@link #parse} decodes it.</li>
 *   <li>{@code standalone}: {@code yes}/{@code no}; {@code job}: none/stream/commit; {@code job_id}: the
 *       job's number, unique per leaf across remounts (0: none yet); {@code state}: the {@link JobState}
 *       word.</li>
 *   <li>{@code speed}: the limit in bytes/s, 0 unlimited, or {@code auto} / {@code auto:TARGET} (as the
 *       control file writes it, {@code auto:5ms}); {@code rate}: observed bytes/s; {@code auto_window}:
 *       under speed=auto the stream's window in fills with two decimals (it keeps the next whole number of
 *       fills in flight; below 1 it spaces them out), else {@code -}; {@code eta}: seconds, or {@code -}
 *       when unknown.</li>
 *   <li>{@code on_error}: stop/retry/skip, {@code -} when unset.</li>
 *   <li>{@code unreadable}: comma-separated {@code OFFSET+LENGTH} extents, or {@code -}.</li>
 *   <li>{@code command_error}: why the last refused command on this leaf was refused, cleaned like
 *       {@code error} and then percent-encoded like {@code image} (it may contain spaces, and only the
 *       last field may), or {@code -}; {@link #parse} decodes it.</li>
 *   <li>{@code prefetch}: the leaf's prefetch, a {@link PrefetchState} word (none, running, completed,
 *       failed, cancelled), independent of the job; {@code prefetch_done} and {@code prefetch_total}: bytes
 *       of the prefetch profile's extents known local, and in all (0 and 0 without a prefetch). Added after
 *       {@code command_error}, so every older field keeps its place and {@code error} stays last.</li>
 *   <li>Counters of the daemon since the mount (all only grow; zeros for a leaf without backing):
 *       {@code fetched}: bytes read from the backing by purpose, as
 *       {@code copy_on_read:N,read_ahead:N,stream:N,prefetch:N}; {@code backing_calls}: backing reads and
 *       allocation questions; {@code backing_ns}: their total time in nanoseconds; {@code backing_latency}:
 *       those calls per latency bucket, comma-separated, not cumulative, one count per bound of
 *       {@link LeafCounters#LATENCY_BOUNDS_SECONDS} and a last one for slower calls; {@code backing_errors}:
 *       failed backing calls as {@code timeout:N,io:N}. {@link #counters} reads them back (zeros when
 *       absent, as from an older daemon).</li>
 *   <li>{@code error}: the job's last error with control characters (newlines included) replaced by
 *       spaces and surrounding blanks trimmed, or {@code -} if none.</li>
 * </ul>
 *
 * <h2>JSON form</h2>
 * An array of objects with the same keys: numbers as JSON numbers, {@code standalone} a boolean,
 * {@code eta} null when unknown, {@code on_error}, {@code command_error} and {@code error} null when unset
 * (both plain text), {@code unreadable} an
 * array of {@code {"offset":N,"length":N}}, {@code image} the plain name.
 *
 * <p>Stateless and thread-safe.
 */
public final class StatusFormat {

    static final String FIELDS_DOC = "image, size, cluster_size, local_bytes, dirty_bytes, standalone, backing, job,"
            + " job_id, state, done_bytes, total_bytes, speed, rate, auto_window, eta, on_error, unreadable, command_error,"
            + " prefetch, prefetch_done, prefetch_total, fetched, backing_calls, backing_ns, backing_latency,"
            + " backing_errors, error";

    /** The field names, in the order they appear. */
    public static final List<String> FIELDS = List.of(FIELDS_DOC.split(", "));

    private static final String NONE = "-";

    private StatusFormat() {
    }

    /** The text form: one line per leaf; the empty string for no leaves. */
    public static String render(List<LeafStatus> leaves) {
        StringBuilder b = new StringBuilder();
        for (LeafStatus s : leaves) {
            b.append("image=").append(encodeImage(s.image()))
                    .append(" size=").append(s.size())
                    .append(" cluster_size=").append(s.clusterSize())
                    .append(" local_bytes=").append(s.localBytes())
                    .append(" dirty_bytes=").append(s.dirtyBytes())
                    .append(" standalone=").append(s.standalone() ? "yes" : "no")
                    .append(" backing=").append(s.backing() == null ? NONE : encodeImage(s.backing()))
                    .append(" job=").append(jobWord(s.job()))
                    .append(" job_id=").append(s.jobId())
                    .append(" state=").append(stateWord(s.state()))
                    .append(" done_bytes=").append(s.doneBytes())
                    .append(" total_bytes=").append(s.totalBytes())
                    .append(" speed=").append(speedWord(s))
                    .append(" rate=").append(s.rateBytesPerSecond())
                    .append(" auto_window=").append(autoWindow(s))
                    .append(" eta=").append(s.etaSeconds() < 0 ? NONE : Long.toString(s.etaSeconds()))
                    .append(" on_error=").append(s.onError() == null ? NONE : s.onError().word())
                    .append(" unreadable=");
            List<long[]> unreadable = s.unreadable();
            if (unreadable == null || unreadable.isEmpty()) {
                b.append(NONE);
            } else {
                for (int i = 0; i < unreadable.size(); i++) {
                    long[] e = unreadable.get(i);
                    b.append(i == 0 ? "" : ",").append(e[0]).append('+').append(e[1]);
                }
            }
            String commandError = cleanError(s.commandError());
            b.append(" command_error=").append(commandError == null ? NONE : encodeImage(commandError));
            b.append(" prefetch=").append(s.prefetch().word())
                    .append(" prefetch_done=").append(s.prefetchDone())
                    .append(" prefetch_total=").append(s.prefetchTotal());
            appendCounters(b, s.counters());
            String error = cleanError(s.error());
            b.append(" error=").append(error == null ? NONE : error).append('\n');
        }
        return b.toString();
    }

    /** The JSON form: an array with one object per leaf, one object a line. */
    public static String renderJson(List<LeafStatus> leaves) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < leaves.size(); i++) {
            LeafStatus s = leaves.get(i);
            b.append(i == 0 ? "\n  {" : ",\n  {");
            b.append("\"image\":");
            jsonString(b, s.image());
            b.append(",\"size\":").append(s.size())
                    .append(",\"cluster_size\":").append(s.clusterSize())
                    .append(",\"local_bytes\":").append(s.localBytes())
                    .append(",\"dirty_bytes\":").append(s.dirtyBytes())
                    .append(",\"standalone\":").append(s.standalone())
                    .append(",\"backing\":");
            jsonString(b, s.backing());
            b.append(",\"job\":\"").append(jobWord(s.job()))
                    .append("\",\"job_id\":").append(s.jobId())
                    .append(",\"state\":\"").append(stateWord(s.state()))
                    .append("\",\"done_bytes\":").append(s.doneBytes())
                    .append(",\"total_bytes\":").append(s.totalBytes())
                    .append(",\"speed\":").append(isAuto(s) ? "\"" + speedWord(s) + "\"" : speedWord(s))
                    .append(",\"rate\":").append(s.rateBytesPerSecond())
                    .append(",\"auto_window\":").append(isAuto(s) ? autoWindow(s) : "null")
                    .append(",\"eta\":").append(s.etaSeconds() < 0 ? "null" : Long.toString(s.etaSeconds()))
                    .append(",\"on_error\":").append(s.onError() == null ? "null" : "\"" + s.onError().word() + "\"")
                    .append(",\"unreadable\":[");
            List<long[]> unreadable = s.unreadable() == null ? List.of() : s.unreadable();
            for (int j = 0; j < unreadable.size(); j++) {
                long[] e = unreadable.get(j);
                b.append(j == 0 ? "" : ",").append("{\"offset\":").append(e[0])
                        .append(",\"length\":").append(e[1]).append('}');
            }
            b.append("],\"command_error\":");
            jsonString(b, s.commandError());
            b.append(",\"prefetch\":\"").append(s.prefetch().word())
                    .append("\",\"prefetch_done\":").append(s.prefetchDone())
                    .append(",\"prefetch_total\":").append(s.prefetchTotal());
            LeafCounters c = s.counters();
            b.append(",\"fetched\":{\"copy_on_read\":").append(c.fetchedCopyOnRead())
                    .append(",\"read_ahead\":").append(c.fetchedReadAhead())
                    .append(",\"stream\":").append(c.fetchedStream())
                    .append(",\"prefetch\":").append(c.fetchedPrefetch())
                    .append("},\"backing_calls\":").append(c.backingCalls())
                    .append(",\"backing_ns\":").append(c.latencySumNanos())
                    .append(",\"backing_latency\":[");
            long[] buckets = c.latencyBuckets();
            for (int j = 0; j < buckets.length; j++) {
                b.append(j == 0 ? "" : ",").append(buckets[j]);
            }
            b.append("],\"backing_errors\":{\"timeout\":").append(c.timeouts())
                    .append(",\"io\":").append(c.ioErrors()).append('}');
            b.append(",\"error\":");
            jsonString(b, s.error());
            b.append('}');
        }
        b.append(leaves.isEmpty() ? "]\n" : "\n]\n");
        return b.toString();
    }

    /**
     * Reads the text form back: one map per non-blank line, keys in the order they appear, values as
     * text ({@code image}, {@code backing} and {@code command_error} percent-decoded). Unknown keys are kept, so a newer daemon's fields do not break
     * an older CLI; a token without {@code =} is skipped; {@code error} takes the rest of its line.
     */
    public static List<Map<String, String>> parse(String statusText) {
        List<Map<String, String>> result = new ArrayList<>();
        for (String line : statusText.split("\n", -1)) {
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            Map<String, String> fields = new LinkedHashMap<>();
            int i = 0;
            int n = line.length();
            while (i < n) {
                while (i < n && line.charAt(i) == ' ') {
                    i++;
                }
                int start = i;
                if (line.startsWith("error=", start)) {
                    fields.put("error", line.substring(start + "error=".length()));
                    break;
                }
                while (i < n && line.charAt(i) != ' ') {
                    i++;
                }
                String token = line.substring(start, i);
                int eq = token.indexOf('=');
                if (eq > 0) {
                    String key = token.substring(0, eq);
                    String value = token.substring(eq + 1);
                    fields.put(key, key.equals("image") || key.equals("command_error") || key.equals("backing") ? decodeImage(value) : value);
                }
            }
            if (!fields.isEmpty()) {
                result.add(fields);
            }
        }
        return result;
    }

    private static boolean isAuto(LeafStatus s) {
        return s.speedSetting() != null && s.speedSetting().isAuto();
    }

    /** {@code speed=}: auto's word, or the limit in bytes/s. */
    private static String speedWord(LeafStatus s) {
        return isAuto(s) ? s.speedSetting().word() : Long.toString(s.speed());
    }

    private static String autoWindow(LeafStatus s) {
        return isAuto(s) && s.autoWindow() >= 0 ? String.format(java.util.Locale.ROOT, "%.2f", s.autoWindow()) : NONE;
    }

    private static void appendCounters(StringBuilder b, LeafCounters c) {
        b.append(" fetched=copy_on_read:").append(c.fetchedCopyOnRead())
                .append(",read_ahead:").append(c.fetchedReadAhead())
                .append(",stream:").append(c.fetchedStream())
                .append(",prefetch:").append(c.fetchedPrefetch())
                .append(" backing_calls=").append(c.backingCalls())
                .append(" backing_ns=").append(c.latencySumNanos())
                .append(" backing_latency=");
        long[] buckets = c.latencyBuckets();
        for (int i = 0; i < buckets.length; i++) {
            b.append(i == 0 ? "" : ",").append(buckets[i]);
        }
        b.append(" backing_errors=timeout:").append(c.timeouts()).append(",io:").append(c.ioErrors());
    }

    /**
     * The counters of one parsed line ({@link #parse}); a field that is absent or malformed counts zeros, so a
     * status from an older daemon reads as no counters rather than failing.
     */
    public static LeafCounters counters(Map<String, String> line) {
        Map<String, Long> fetched = pairs(line.get("fetched"));
        Map<String, Long> errors = pairs(line.get("backing_errors"));
        long[] buckets = new long[LeafCounters.LATENCY_BOUNDS_SECONDS.length + 1];
        String latency = line.get("backing_latency");
        if (latency != null) {
            String[] parts = latency.split(",", -1);
            if (parts.length == buckets.length) {
                for (int i = 0; i < parts.length; i++) {
                    buckets[i] = number(parts[i]);
                }
            }
        }
        return new LeafCounters(fetched.getOrDefault("copy_on_read", 0L), fetched.getOrDefault("read_ahead", 0L),
                fetched.getOrDefault("stream", 0L), fetched.getOrDefault("prefetch", 0L), buckets,
                line.get("backing_ns") == null ? 0 : number(line.get("backing_ns")),
                errors.getOrDefault("timeout", 0L), errors.getOrDefault("io", 0L));
    }

    /** {@code key:N,key:N} as a map; malformed entries are skipped. */
    private static Map<String, Long> pairs(String value) {
        Map<String, Long> out = new LinkedHashMap<>();
        if (value == null) {
            return out;
        }
        for (String e : value.split(",")) {
            int colon = e.indexOf(':');
            if (colon > 0) {
                out.put(e.substring(0, colon), number(e.substring(colon + 1)));
            }
        }
        return out;
    }

    /** A non-negative decimal count, 0 when it is not one. */
    private static long number(String v) {
        if (v.isEmpty() || v.length() > 19 || !v.chars().allMatch(ch -> ch >= '0' && ch <= '9')) {
            return 0;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private static String jobWord(JobKind job) {
        return (job == null ? JobKind.NONE : job).word();
    }

    private static String stateWord(JobState state) {
        return (state == null ? JobState.IDLE : state).word();
    }

    /** The error as one line: control characters become spaces; null when there is no error. */
    static String cleanError(String error) {
        if (error == null) {
            return null;
        }
        StringBuilder b = new StringBuilder(error.length());
        for (int i = 0; i < error.length(); i++) {
            char c = error.charAt(i);
            if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                b.append(' ');
            } else if (Character.isHighSurrogate(c) && i + 1 < error.length()
                    && Character.isLowSurrogate(error.charAt(i + 1))) {
                b.append(c).append(error.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                b.append('?');
            } else {
                b.append(c);
            }
        }
        String clean = b.toString().strip();
        return clean.isEmpty() ? null : clean;
    }

    private static String encodeImage(String image) {
        return image == null || image.isEmpty() ? NONE : ControlParser.encodeImage(image);
    }

    /** Decodes an {@code image=} value (the inverse of {@link ControlParser#encodeImage}; a stray '%' stays). */
    public static String decodeImage(String value) {
        if (value.indexOf('%') < 0) {
            return value;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int i = 0;
        while (i < value.length()) {
            char c = value.charAt(i);
            if (c == '%' && i + 2 < value.length() && isHex(value.charAt(i + 1)) && isHex(value.charAt(i + 2))) {
                out.write(Integer.parseInt(value, i + 1, i + 3, 16));
                i += 3;
            } else {
                int cp = value.codePointAt(i);
                byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
                out.write(bytes, 0, bytes.length);
                i += Character.charCount(cp);
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    private static boolean isHex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
    }

    /** Appends {@code s} as a JSON string literal (or {@code null}); shared by every JSON corfs prints. */
    public static void jsonString(StringBuilder b, String s) {
        if (s == null) {
            b.append("null");
            return;
        }
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                default -> {
                    boolean pairedSurrogate = Character.isHighSurrogate(c) && i + 1 < s.length()
                            && Character.isLowSurrogate(s.charAt(i + 1));
                    if (pairedSurrogate) {
                        b.append(c).append(s.charAt(++i));
                    } else if (c < 0x20 || (c >= 0x7f && c < 0xa0) || c == '\u2028' || c == '\u2029'
                            || Character.isSurrogate(c)) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }
}
