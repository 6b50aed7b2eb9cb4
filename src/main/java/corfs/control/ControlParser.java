package corfs.control;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.OnError;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Parses one line written to the control file into a {@link ControlCommand}.
 *
 * <h2>Grammar</h2>
 * <pre>
 * line     = [WS] [command] [WS]            ; blank, or a comment starting with '#'
 * command  = ("stream" | "commit") [IMAGE] *(WS option)
 *          | ("pause" | "resume" | "cancel") [IMAGE]
 *          | "speed" [IMAGE] SPEED
 *          | "prioritize" [IMAGE] 1*(WS RANGE)           ; at most {@value #MAX_PRIORITY_RANGES} ranges
 *          | "prefetch" [IMAGE] (FILE | "cancel")
 * option   = "speed=" SPEED | "on_error=" ("stop" | "retry" | "skip")  ; each at most once, any order
 * SPEED    = RATE | AUTO                                  ; AUTO for stream and speed, not for commit
 * RATE     = SIZE                                         ; bytes per second, 0 = unlimited
 * AUTO     = "auto" [":" 1*DIGIT ("ms" | "us" | "s")]     ; queueing-delay target, 1 ms to 10 s, default 20 ms
 * RANGE    = SIZE ["+" SIZE]                              ; OFFSET[+LENGTH] in bytes; LENGTH default: one cluster
 * SIZE     = 1*DIGIT [("K" | "M" | "G" | "k" | "m" | "g") ["iB"]]      ; powers of 1024
 * IMAGE    = any token; after stream/commit, one that does not start with "speed=" or "on_error="
 * FILE     = a token that percent-decodes (like IMAGE) to an absolute path: it starts with "/"
 * WS       = 1*(' ' | '\t')
 * </pre>
 * Verbs, keys and on_error words are lower case. The image comes right after the verb: a bare token
 * after an option is rejected. After {@code stream}/{@code commit} the first token is the IMAGE unless it
 * starts with a known key ({@code speed=}, {@code on_error=}); so {@code stream a=b.raw} names the image
 * {@code a=b.raw}. {@code pause}, {@code resume} and {@code cancel} take their one token as the IMAGE.
 * {@code speed} with one argument reads it as the RATE ({@code speed 10M}); with two, the first is the
 * IMAGE ({@code speed a.img 10M}, {@code speed a.img auto:5ms}).
 *
 * <p>{@code prioritize} makes the running (or paused) stream fetch the clusters of its ranges that are
 * not local, in the order given, before it goes on from where it was ({@code prioritize 1G+64M 0}). Its
 * first token is a RANGE when it reads as one or is the only one, else the IMAGE: an image whose name reads as a RANGE is
 * written with a character percent-encoded ({@code %31G} for {@code 1G}). A LENGTH of 0, an OFFSET+LENGTH
 * past {@link Long#MAX_VALUE} or more than {@value #MAX_PRIORITY_RANGES} ranges are rejected here; a
 * range past the end of the disk is rejected by the job (INVALID_ARGUMENT), before any range is queued.
 *
 * <p>{@code prefetch} with one argument reads it as the FILE, or {@code cancel}; with two, the first is the
 * IMAGE ({@code prefetch a.img /var/lib/profiles/a.profile}). FILE is percent-decoded like IMAGE (a path
 * with a space is written {@code %20}) and must be absolute (the daemon's working directory is not the
 * writer's); a decoded FILE holding NUL is rejected.
 *
 * <p>An IMAGE token is percent-decoded ({@code %XX}, UTF-8 bytes; a {@code %} not followed by two hex
 * digits stays as it is), exactly as the status encodes {@code image=} ({@link #encodeImage}), so the name
 * the status shows works in a command; {@code my%20disk.raw} names {@code my disk.raw}, and an image whose
 * name starts with {@code speed=} is written {@code speed%3D...}. A decoded name that is not valid UTF-8 or
 * holds NUL or {@code /} is rejected.
 *
 * <p>Rejected with {@link Reason#INVALID_ARGUMENT} and a message that names the offending token: unknown
 * verbs and options, missing or extra arguments, duplicate options, bad rates (negative, fractional,
 * overflowing, unknown suffix), control characters (including NUL, CR and LF), unpaired surrogates
 * (text that was not valid UTF-8 is rejected earlier, by the strict decoder in {@link ControlFile}), and
 * lines longer than {@value #MAX_LINE_BYTES} bytes in UTF-8.
 *
 * <p>Stateless and thread-safe.
 */
public final class ControlParser {

    /** The longest line accepted, in UTF-8 bytes, not counting the line terminator. */
    public static final int MAX_LINE_BYTES = 4096;

    /** The most ranges one {@code prioritize} line may name. */
    public static final int MAX_PRIORITY_RANGES = 64;

    /** Offending tokens are quoted in messages up to this many characters. */
    private static final int QUOTE_LIMIT = 40;

    private ControlParser() {
    }

    /**
     * Parses one line (without its terminator).
     *
     * @return the command, or {@link Optional#empty()} for a blank line or a comment
     * @throws CorfsException with {@link Reason#INVALID_ARGUMENT} when the line is malformed
     */
    public static Optional<ControlCommand> parse(String line) throws CorfsException {
        if (line == null) {
            throw invalid("no command line");
        }
        checkLength(line);
        checkCharacters(line);
        List<String> tokens = tokenize(line);
        if (tokens.isEmpty() || tokens.get(0).startsWith("#")) {
            return Optional.empty();
        }
        String verb = tokens.get(0);
        List<String> args = tokens.subList(1, tokens.size());
        return Optional.of(switch (verb) {
            case "stream", "commit" -> parseStart(verb, args);
            case "pause" -> new ControlCommand.Pause(onlyImage(verb, args));
            case "resume" -> new ControlCommand.Resume(onlyImage(verb, args));
            case "cancel" -> new ControlCommand.Cancel(onlyImage(verb, args));
            case "speed" -> parseSpeed(args);
            case "prioritize" -> parsePrioritize(args);
            case "prefetch" -> parsePrefetch(args);
            default -> throw invalid("unknown command " + quote(verb)
                    + " (expected stream, commit, pause, resume, cancel, speed, prioritize or prefetch)");
        });
    }

    /**
     * Parses a RATE: a non-negative decimal integer with an optional binary suffix K, M or G (also k, m,
     * g and KiB, MiB, GiB), in bytes per second; 0 means unlimited.
     *
     * @throws CorfsException with {@link Reason#INVALID_ARGUMENT} for anything else, or a value past
     *         {@link Long#MAX_VALUE}
     */
    public static long parseRate(String text) throws CorfsException {
        if (text == null || text.isEmpty()) {
            throw invalid("missing rate");
        }
        long value = parseSize(text);
        if (value < 0) {
            throw value == -1 ? badRate(text) : invalid("rate " + quote(text) + " is too large");
        }
        return value;
    }

    /**
     * Parses a SPEED: a RATE, or {@code auto} with an optional {@code :TARGET} ({@code auto:5ms};
     * units ms, us, s; {@value JobSpeed#MIN_TARGET_MICROS} us to {@value JobSpeed#MAX_TARGET_MICROS} us).
     *
     * @throws CorfsException with {@link Reason#INVALID_ARGUMENT} for anything else
     */
    public static JobSpeed parseSpeed(String text) throws CorfsException {
        if (text == null || !text.startsWith("auto")) {
            return JobSpeed.fixed(parseRate(text));
        }
        if (text.equals("auto")) {
            return JobSpeed.AUTO;
        }
        if (text.charAt(4) != ':') {
            throw badAuto(text);
        }
        String t = text.substring(5);
        int end = 0;
        while (end < t.length() && t.charAt(end) >= '0' && t.charAt(end) <= '9') {
            end++;
        }
        if (end == 0 || end > 9) { // nine digits: no overflow below, and nothing in bounds is longer
            throw badAuto(text);
        }
        long n = Long.parseLong(t, 0, end, 10);
        long micros = switch (t.substring(end)) {
            case "us" -> n;
            case "ms" -> n * 1_000;
            case "s" -> n * 1_000_000;
            default -> throw badAuto(text);
        };
        if (micros < JobSpeed.MIN_TARGET_MICROS || micros > JobSpeed.MAX_TARGET_MICROS) {
            throw invalid("auto target " + quote(text) + " is out of bounds (1ms to 10s)");
        }
        return JobSpeed.auto(micros);
    }

    private static CorfsException badAuto(String text) {
        return invalid("bad speed " + quote(text) + " (expected auto or auto:TARGET such as auto:20ms; units ms, us, s)");
    }

    /** A SIZE (digits and K/M/G suffix), or -1 when malformed, -2 when past {@link Long#MAX_VALUE}. */
    private static long parseSize(String text) {
        int end = 0;
        while (end < text.length() && text.charAt(end) >= '0' && text.charAt(end) <= '9') {
            end++;
        }
        if (end == 0) {
            return -1;
        }
        String suffix = text.substring(end);
        int shift = switch (suffix) {
            case "" -> 0;
            case "K", "k", "KiB", "kiB" -> 10;
            case "M", "m", "MiB", "miB" -> 20;
            case "G", "g", "GiB", "giB" -> 30;
            default -> -1;
        };
        if (shift < 0) {
            return -1;
        }
        long value;
        try {
            value = Long.parseLong(text, 0, end, 10);
        } catch (NumberFormatException e) {
            return -2;
        }
        if (shift > 0 && value > (Long.MAX_VALUE >> shift)) {
            return -2;
        }
        return value << shift;
    }

    /** True when {@code text} is a valid RATE. */
    public static boolean isRate(String text) {
        try {
            parseRate(text);
            return true;
        } catch (CorfsException e) {
            return false;
        }
    }

    /**
     * The canonical line for a command: the inverse of {@link #parse}, with rates in plain bytes and
     * options in the order speed, on_error, the image encoded by {@link #encodeImage}.
     * {@code parse(format(c)).get().equals(c)} holds for every command whose image is a file name (valid
     * UTF-8 text without NUL or {@code /}).
     */
    public static String format(ControlCommand command) {
        StringBuilder b = new StringBuilder(verb(command));
        if (command.image() != null) {
            String image = encodeImage(command.image());
            if (command instanceof ControlCommand.Prioritize && isRange(image)) { // would read as a RANGE
                image = "%" + HEX[image.charAt(0) >> 4] + HEX[image.charAt(0) & 0xf] + image.substring(1);
            }
            b.append(' ').append(image);
        }
        if (command instanceof ControlCommand.Stream s) {
            appendOptions(b, s.speed() == null ? null : s.speed().word(), s.onError());
        } else if (command instanceof ControlCommand.Commit c) {
            appendOptions(b, c.speed() == null ? null : c.speed().toString(), c.onError());
        } else if (command instanceof ControlCommand.Speed s) {
            b.append(' ').append(s.speed().word());
        } else if (command instanceof ControlCommand.Prioritize p) {
            for (ControlCommand.Range r : p.ranges()) {
                b.append(' ').append(r.offset());
                if (r.length() != null) {
                    b.append('+').append(r.length());
                }
            }
        } else if (command instanceof ControlCommand.Prefetch p) {
            b.append(' ').append(encodeImage(p.file()));
        } else if (command instanceof ControlCommand.PrefetchCancel) {
            b.append(" cancel");
        }
        return b.toString();
    }

    /** The verb of a command, as written in the control file. */
    public static String verb(ControlCommand command) {
        if (command instanceof ControlCommand.Stream) {
            return "stream";
        } else if (command instanceof ControlCommand.Commit) {
            return "commit";
        } else if (command instanceof ControlCommand.Pause) {
            return "pause";
        } else if (command instanceof ControlCommand.Resume) {
            return "resume";
        } else if (command instanceof ControlCommand.Cancel) {
            return "cancel";
        } else if (command instanceof ControlCommand.Speed) {
            return "speed";
        } else if (command instanceof ControlCommand.Prefetch || command instanceof ControlCommand.PrefetchCancel) {
            return "prefetch";
        } else if (command instanceof ControlCommand.Prioritize) {
            return "prioritize";
        }
        throw new AssertionError("unknown command " + command);
    }

    private static void appendOptions(StringBuilder b, String speed, OnError onError) {
        if (speed != null) {
            b.append(" speed=").append(speed);
        }
        if (onError != null) {
            b.append(" on_error=").append(onError.word());
        }
    }

    private static ControlCommand parseStart(String verb, List<String> args) throws CorfsException {
        String image = null;
        JobSpeed speed = null;
        OnError onError = null;
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            int eq = arg.indexOf('=');
            if (i == 0 && !arg.startsWith("speed=") && !arg.startsWith("on_error=")) {
                image = decodeImage(verb, arg);
                continue;
            }
            if (eq < 0) {
                throw invalid(verb + ": unexpected argument " + quote(arg)
                        + " (the image comes first, then speed=RATE and on_error=stop|retry|skip)");
            }
            String key = arg.substring(0, eq);
            String value = arg.substring(eq + 1);
            switch (key) {
                case "speed" -> {
                    if (speed != null) {
                        throw invalid(verb + ": speed given twice");
                    }
                    if (!verb.equals("stream") && value.startsWith("auto")) {
                        throw invalid(verb + ": speed " + quote(value) + " is for streams (a commit takes a RATE)");
                    }
                    speed = verb.equals("stream") ? parseSpeed(value) : JobSpeed.fixed(parseRate(value));
                }
                case "on_error" -> {
                    if (onError != null) {
                        throw invalid(verb + ": on_error given twice");
                    }
                    onError = parseOnError(value);
                }
                default -> throw invalid(verb + ": unknown option " + quote(key)
                        + " (expected speed=RATE or on_error=stop|retry|skip)");
            }
        }
        return verb.equals("stream")
                ? new ControlCommand.Stream(image, speed, onError)
                : new ControlCommand.Commit(image, speed == null ? null : speed.bytesPerSecond(), onError);
    }

    private static OnError parseOnError(String value) throws CorfsException {
        for (OnError o : OnError.values()) {
            if (o.word().equals(value)) {
                return o;
            }
        }
        throw invalid("on_error must be stop, retry or skip, not " + quote(value));
    }

    private static String onlyImage(String verb, List<String> args) throws CorfsException {
        if (args.size() > 1) {
            throw invalid(verb + ": unexpected argument " + quote(args.get(1)) + " (usage: " + verb + " [IMAGE])");
        }
        return args.isEmpty() ? null : image(verb, args.get(0));
    }

    private static ControlCommand parseSpeed(List<String> args) throws CorfsException {
        return switch (args.size()) {
            case 0 -> throw invalid("speed: missing RATE (usage: speed [IMAGE] RATE|auto[:TARGET])");
            case 1 -> new ControlCommand.Speed(null, parseSpeed(args.get(0)));
            case 2 -> new ControlCommand.Speed(image("speed", args.get(0)), parseSpeed(args.get(1)));
            default -> throw invalid("speed: unexpected argument " + quote(args.get(2))
                    + " (usage: speed [IMAGE] RATE|auto[:TARGET])");
        };
    }

    private static ControlCommand parsePrioritize(List<String> args) throws CorfsException {
        String image = null;
        int from = 0;
        if (args.size() > 1 && !isRange(args.get(0))) { // one token alone is a RANGE (an IMAGE alone is useless)
            image = image("prioritize", args.get(0));
            from = 1;
        }
        if (args.size() == from) {
            throw invalid("prioritize: missing RANGE (usage: prioritize [IMAGE] OFFSET[+LENGTH]...)");
        }
        if (args.size() - from > MAX_PRIORITY_RANGES) {
            throw invalid("prioritize: " + (args.size() - from) + " ranges, more than " + MAX_PRIORITY_RANGES);
        }
        List<ControlCommand.Range> ranges = new ArrayList<>();
        for (String a : args.subList(from, args.size())) {
            ranges.add(parseRange(a));
        }
        return new ControlCommand.Prioritize(image, ranges);
    }

    /** True when {@code token} is a valid RANGE: then it is not an IMAGE. */
    public static boolean isRange(String token) {
        try {
            parseRange(token);
            return true;
        } catch (CorfsException e) {
            return false;
        }
    }

    /**
     * Parses a RANGE, {@code OFFSET[+LENGTH]} (SIZEs, K/M/G suffixes): LENGTH null when left out (one
     * cluster).
     *
     * @throws CorfsException with {@link Reason#INVALID_ARGUMENT} when malformed, of length 0, or when
     *         OFFSET + LENGTH is past {@link Long#MAX_VALUE}
     */
    public static ControlCommand.Range parseRange(String text) throws CorfsException {
        int plus = text.indexOf('+');
        String off = plus < 0 ? text : text.substring(0, plus);
        long offset = parseSize(off);
        Long length = null;
        if (plus >= 0) {
            long l = parseSize(text.substring(plus + 1));
            if (l == -1) {
                throw badRange(text);
            }
            if (l == 0) {
                throw invalid("prioritize: range " + quote(text) + " has length 0");
            }
            length = l;
            if (l == -2 || (offset >= 0 && offset > Long.MAX_VALUE - l)) {
                throw invalid("prioritize: range " + quote(text) + " ends past 2^63");
            }
        }
        if (offset == -1) {
            throw badRange(text);
        }
        if (offset == -2) {
            throw invalid("prioritize: range " + quote(text) + " ends past 2^63");
        }
        return new ControlCommand.Range(offset, length);
    }

    private static CorfsException badRange(String text) {
        return invalid("prioritize: bad range " + quote(text) + " (expected OFFSET[+LENGTH], sizes with K, M or G)");
    }

    private static ControlCommand parsePrefetch(List<String> args) throws CorfsException {
        if (args.isEmpty()) {
            throw invalid("prefetch: missing FILE (usage: prefetch [IMAGE] FILE, or prefetch [IMAGE] cancel)");
        }
        if (args.size() > 2) {
            throw invalid("prefetch: unexpected argument " + quote(args.get(2))
                    + " (usage: prefetch [IMAGE] FILE, or prefetch [IMAGE] cancel)");
        }
        String image = args.size() == 2 ? image("prefetch", args.get(0)) : null;
        String what = args.get(args.size() - 1);
        if (what.equals("cancel")) {
            return new ControlCommand.PrefetchCancel(image);
        }
        return new ControlCommand.Prefetch(image, decodeFile(what));
    }

    /** A FILE token: percent-decoded like an IMAGE, then required to be an absolute path without NUL. */
    private static String decodeFile(String token) throws CorfsException {
        String path = decodePercent("prefetch", "file", token);
        if (!path.startsWith("/")) {
            throw invalid("prefetch: file " + quote(token) + " is not an absolute path");
        }
        if (path.indexOf('\0') >= 0) {
            throw invalid("prefetch: file " + quote(token) + " decodes to a name with NUL");
        }
        return path;
    }

    private static String image(String verb, String token) throws CorfsException {
        return decodeImage(verb, token);
    }

    /**
     * The image name for a status line or a command: space, tab, {@code %}, {@code =} and control
     * characters (C0, DEL, C1, U+2028, U+2029) percent-encoded as UTF-8 bytes; everything else as it is.
     * The result is one token without {@code =}, which {@link #parse} decodes back to {@code name}.
     */
    public static String encodeImage(String name) {
        StringBuilder b = null;
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == ' ' || c == '%' || c == '=' || Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                if (b == null) {
                    b = new StringBuilder(name.substring(0, i));
                }
                for (byte x : String.valueOf(c).getBytes(StandardCharsets.UTF_8)) {
                    b.append('%').append(HEX[(x >> 4) & 0xf]).append(HEX[x & 0xf]);
                }
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? name : b.toString();
    }

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    private static String decodeImage(String verb, String token) throws CorfsException {
        if (token.indexOf('%') < 0) {
            if (token.indexOf('/') >= 0) {
                throw invalid(verb + ": image " + quote(token) + " holds '/' (an image is a file name)");
            }
            return token;
        }
        String name = decodePercent(verb, "image", token);
        if (name.indexOf('\0') >= 0 || name.indexOf('/') >= 0) {
            throw invalid(verb + ": image " + quote(token) + " decodes to a name with NUL or '/'");
        }
        return name;
    }

    /** {@code %XX} sequences decoded as UTF-8 bytes; a '%' not followed by two hex digits stays. */
    private static String decodePercent(String verb, String what, String token) throws CorfsException {
        if (token.indexOf('%') < 0) {
            return token;
        }
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        int i = 0;
        while (i < token.length()) {
            char c = token.charAt(i);
            if (c == '%' && i + 2 < token.length() && isHex(token.charAt(i + 1)) && isHex(token.charAt(i + 2))) {
                out.write(Integer.parseInt(token, i + 1, i + 3, 16));
                i += 3;
            } else {
                int cp = token.codePointAt(i);
                byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
                out.write(bytes, 0, bytes.length);
                i += Character.charCount(cp);
            }
        }
        String name;
        try {
            name = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                    .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(out.toByteArray())).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw invalid(verb + ": " + what + " " + quote(token) + " does not decode to UTF-8 text");
        }
        return name;
    }

    private static boolean isHex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
    }

    private static void checkLength(String line) throws CorfsException {
        // A UTF-16 unit never encodes to fewer than one byte, so a long string is long in UTF-8 too.
        if (line.length() > MAX_LINE_BYTES
                || line.getBytes(StandardCharsets.UTF_8).length > MAX_LINE_BYTES) {
            throw invalid("command line longer than " + MAX_LINE_BYTES + " bytes");
        }
    }

    private static void checkCharacters(String line) throws CorfsException {
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            if (c == '\t') {
                continue;
            }
            if (Character.isISOControl(c)) {
                throw invalid(String.format("control character U+%04X at column %d", (int) c, i + 1));
            }
            if (Character.isHighSurrogate(c) && i + 1 < line.length() && Character.isLowSurrogate(line.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw invalid("invalid UTF-8 text at column " + (i + 1));
            }
        }
    }

    private static List<String> tokenize(String line) {
        List<String> tokens = new ArrayList<>();
        int i = 0;
        int n = line.length();
        while (i < n) {
            while (i < n && isSpace(line.charAt(i))) {
                i++;
            }
            int start = i;
            while (i < n && !isSpace(line.charAt(i))) {
                i++;
            }
            if (i > start) {
                tokens.add(line.substring(start, i));
            }
        }
        return tokens;
    }

    private static boolean isSpace(char c) {
        return c == ' ' || c == '\t';
    }

    private static CorfsException badRate(String text) {
        return invalid("bad rate " + quote(text)
                + " (expected a non-negative whole number of bytes per second, optionally with K, M or G)");
    }

    private static CorfsException invalid(String message) {
        return new CorfsException(Reason.INVALID_ARGUMENT, message);
    }

    /** Quotes a token for a message, cut to a readable length. Tokens never hold control characters. */
    static String quote(String token) {
        if (token.length() <= QUOTE_LIMIT) {
            return "'" + token + "'";
        }
        int cut = Character.isHighSurrogate(token.charAt(QUOTE_LIMIT - 1)) ? QUOTE_LIMIT - 1 : QUOTE_LIMIT;
        String t = token.substring(0, cut) + "...";
        return "'" + t + "'";
    }
}
