package corfs.control;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * Random and malformed input against the control file, checked against an independent model: a
 * regex-based oracle of the grammar (written separately from {@link ControlParser}) and a model of each
 * handle's pending line. Seeded: set {@code -Dcorfs.fuzz.seed=N} to replay a failure, and
 * {@code -Dcorfs.fuzz.writes=N} to run longer.
 */
@DisplayName("ControlFile fuzz")
class ControlFileFuzzTest {

    private static final long SEED = Long.getLong("corfs.fuzz.seed", System.nanoTime());
    private static final int WRITES_PER_THREAD = Integer.getInteger("corfs.fuzz.writes", 3000);
    private static final int THREADS = 8;

    @Nested
    @DisplayName("the parser agrees with an independent oracle")
    class Differential {
        @Test
        @DisplayName("on 50000 generated and mutated lines")
        void parserMatchesOracle() {
            Random random = new Random(SEED);
            for (int i = 0; i < 50_000; i++) {
                byte[] bytes = Generator.line(random);
                String line;
                try {
                    line = strictDecode(bytes);
                } catch (CharacterCodingException e) {
                    continue;
                }
                for (String part : line.split("\n", -1)) {
                    Oracle.Verdict expected = Oracle.judge(part);
                    try {
                        Optional<ControlCommand> parsed = ControlParser.parse(part);
                        if (expected == Oracle.Verdict.MALFORMED) {
                            fail("seed " + SEED + ": parser accepted malformed '" + printable(part) + "' as " + parsed);
                        }
                        assertEquals(expected == Oracle.Verdict.BLANK, parsed.isEmpty(),
                                () -> "seed " + SEED + ": '" + printable(part) + "'");
                        parsed.ifPresent(c -> assertEquals(parsed, safeParse(ControlParser.format(c)),
                                () -> "seed " + SEED + ": format does not round-trip for '" + printable(part) + "'"));
                    } catch (CorfsException e) {
                        assertEquals(Reason.INVALID_ARGUMENT, e.reason());
                        if (expected != Oracle.Verdict.MALFORMED) {
                            fail("seed " + SEED + ": parser rejected well-formed '" + printable(part) + "': " + e.getMessage());
                        }
                    }
                }
            }
        }
    }

    @Nested
    @DisplayName("many writers at once")
    class Concurrent {
        @Test
        @DisplayName("bad lines fail with INVALID_ARGUMENT, nothing else escapes, only well-formed lines execute")
        void fuzz() {
            assertTimeoutPreemptively(Duration.ofMinutes(2), () -> {
                ControlFileTest.FakeTarget target = new ControlFileTest.FakeTarget();
                ControlFile control = new ControlFile(target);
                ExecutorService pool = Executors.newFixedThreadPool(THREADS);
                try {
                    List<Future<int[]>> results = new ArrayList<>();
                    for (int t = 0; t < THREADS; t++) {
                        long seed = SEED + t;
                        results.add(pool.submit(() -> new Writer(control, target, seed).run()));
                    }
                    int executed = 0;
                    int rejected = 0;
                    for (Future<int[]> f : results) {
                        int[] counts = f.get();
                        executed += counts[0];
                        rejected += counts[1];
                    }
                    assertEquals(executed, target.executed.size(), "seed " + SEED);
                    assertTrue(rejected > THREADS * WRITES_PER_THREAD / 10, "seed " + SEED + ": too few rejections to mean anything");
                    assertTrue(executed > THREADS * WRITES_PER_THREAD / 10, "seed " + SEED + ": too few commands executed");
                    assertEquals(rejected, target.errors.size(), "seed " + SEED + ": each rejection is recorded once");
                    assertEquals(0, control.openHandles(), "seed " + SEED);
                } finally {
                    pool.shutdownNow();
                }
            }, () -> "seed " + SEED);
        }
    }

    /** One writer thread: random writes through its own handle, each checked against the model. */
    private static final class Writer {
        private final ControlFile control;
        private final ControlFileTest.FakeTarget target;
        private final long seed;
        private final Random random;
        private final ByteArrayOutputStream modelPending = new ByteArrayOutputStream();
        /** Canonical forms of the well-formed lines this thread wrote. */
        private final Set<String> written = new HashSet<>();

        Writer(ControlFile control, ControlFileTest.FakeTarget target, long seed) {
            this.control = control;
            this.target = target;
            this.seed = seed;
            this.random = new Random(seed);
        }

        /** Returns {executed commands, rejected writes}. */
        int[] run() throws IOException {
            long fh = control.openHandle().id();
            int executed = 0;
            int rejected = 0;
            for (int w = 0; w < WRITES_PER_THREAD; w++) {
                boolean flush = random.nextInt(20) == 0;
                byte[] data = flush ? new byte[0] : Generator.write(random);
                Expectation expected = flush ? expectFlush() : expectWrite(data);
                int before = executedByMe();
                String where = "seed " + seed + " write " + w + " '" + printable(new String(data, UTF_8)) + "'";
                try {
                    if (flush) {
                        control.flush(fh);
                    } else {
                        assertEquals(data.length, control.write(fh, ByteBuffer.wrap(data)), where);
                    }
                    if (expected.malformed) {
                        fail(where + ": accepted, but the model says it holds a malformed line");
                    }
                } catch (CorfsException e) {
                    if (e.reason() != Reason.INVALID_ARGUMENT) {
                        fail(where + ": " + e.reason() + " " + e.getMessage());
                    }
                    if (!expected.malformed) {
                        fail(where + ": rejected (" + e.getMessage() + ") but the model says it is well-formed");
                    }
                    rejected++;
                } catch (IOException | RuntimeException e) {
                    throw new AssertionError(where + ": unexpected " + e, e);
                }
                List<ControlCommand> ran = myCommands().subList(before, executedByMe());
                assertEquals(expected.malformed ? List.of() : expected.commands, ran, where);
                executed += ran.size();
            }
            // Every executed command re-renders to the canonical form of a line this thread wrote.
            for (ControlCommand c : myCommands()) {
                assertTrue(written.contains(ControlParser.format(c)),
                        "seed " + seed + ": executed '" + ControlParser.format(c) + "', which was never written");
            }
            control.release(fh);
            return new int[] {executed, rejected};
        }

        private int executedByMe() {
            return myCommands().size();
        }

        private List<ControlCommand> myCommands() {
            return target.byThread.getOrDefault(Thread.currentThread(), List.of());
        }

        private record Expectation(boolean malformed, List<ControlCommand> commands) { }

        /** The model of {@link ControlFile#write}: whole write judged first; pending kept only on success. */
        private Expectation expectWrite(byte[] data) {
            byte[] all = concat(modelPending.toByteArray(), data);
            List<ControlCommand> commands = new ArrayList<>();
            boolean malformed = false;
            int start = 0;
            for (int i = 0; i < all.length; i++) {
                if (all[i] == '\n') {
                    malformed |= !judgeLine(java.util.Arrays.copyOfRange(all, start, i), commands);
                    start = i + 1;
                }
            }
            byte[] tail = java.util.Arrays.copyOfRange(all, start, all.length);
            // An unterminated rest may hold 4096 bytes and a '\r' that a later '\n' would make a CRLF.
            malformed |= tail.length > ControlParser.MAX_LINE_BYTES + 1;
            modelPending.reset();
            if (!malformed) {
                modelPending.writeBytes(tail);
            }
            return new Expectation(malformed, malformed ? List.of() : commands);
        }

        private Expectation expectFlush() {
            byte[] line = modelPending.toByteArray();
            modelPending.reset();
            List<ControlCommand> commands = new ArrayList<>();
            boolean ok = line.length == 0 || judgeLine(line, commands);
            return new Expectation(!ok, ok ? commands : List.of());
        }

        /** Judges one line with the oracle; adds its command when it is one. False when malformed. */
        private boolean judgeLine(byte[] bytes, List<ControlCommand> commands) {
            if (bytes.length > 0 && bytes[bytes.length - 1] == '\r') {
                bytes = java.util.Arrays.copyOf(bytes, bytes.length - 1);
            }
            if (bytes.length > ControlParser.MAX_LINE_BYTES) {
                return false;
            }
            String line;
            try {
                line = strictDecode(bytes);
            } catch (CharacterCodingException e) {
                return false;
            }
            Oracle.Verdict v = Oracle.judge(line);
            if (v == Oracle.Verdict.WELL_FORMED) {
                ControlCommand c = safeParse(line).orElseThrow();
                written.add(ControlParser.format(c));
                commands.add(c);
            }
            return v != Oracle.Verdict.MALFORMED;
        }
    }

    /** The grammar of the control file, restated with regular expressions and BigInteger arithmetic. */
    static final class Oracle {
        enum Verdict { WELL_FORMED, BLANK, MALFORMED }

        private static final Pattern BAD_CHARS = Pattern.compile("[\\x00-\\x08\\x0A-\\x1F\\x7F-\\x9F]");
        private static final Pattern RATE = Pattern.compile("([0-9]+)(?:([KMGkmg])(?:iB)?)?");
        private static final Pattern PERCENT = Pattern.compile("%[0-9A-Fa-f]{2}");
        private static final Pattern ON_ERROR = Pattern.compile("stop|retry|skip");
        private static final BigInteger MAX = BigInteger.valueOf(Long.MAX_VALUE);

        static Verdict judge(String line) {
            if (line.getBytes(UTF_8).length > ControlParser.MAX_LINE_BYTES || BAD_CHARS.matcher(line).find()) {
                return Verdict.MALFORMED;
            }
            String trimmed = line.replaceAll("^[ \\t]+|[ \\t]+$", "");
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                return Verdict.BLANK;
            }
            String[] t = trimmed.split("[ \\t]+");
            boolean ok = switch (t[0]) {
                case "stream", "commit" -> startArgs(t);
                case "pause", "resume", "cancel" -> t.length == 1 || (t.length == 2 && image(t[1]));
                case "speed" -> (t.length == 2 && rate(t[1]))
                        || (t.length == 3 && image(t[1]) && rate(t[2]));
                default -> false;
            };
            return ok ? Verdict.WELL_FORMED : Verdict.MALFORMED;
        }

        private static boolean startArgs(String[] t) {
            int i = 1;
            if (i < t.length && !t[i].startsWith("speed=") && !t[i].startsWith("on_error=")) {
                if (!image(t[i])) {
                    return false;
                }
                i++;
            }
            Set<String> seen = new HashSet<>();
            for (; i < t.length; i++) {
                boolean good = (t[i].startsWith("speed=") && rate(t[i].substring(6)) && seen.add("speed"))
                        || (t[i].startsWith("on_error=") && ON_ERROR.matcher(t[i].substring(9)).matches()
                            && seen.add("on_error"));
                if (!good) {
                    return false;
                }
            }
            return true;
        }

        /** An IMAGE token: %XX decoded (other text as UTF-8) must be valid UTF-8 without NUL or '/'. */
        private static boolean image(String token) {
            java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
            var m = PERCENT.matcher(token);
            int at = 0;
            while (m.find()) {
                bytes.writeBytes(token.substring(at, m.start()).getBytes(UTF_8));
                bytes.write(Integer.parseInt(m.group().substring(1), 16));
                at = m.end();
            }
            bytes.writeBytes(token.substring(at).getBytes(UTF_8));
            try {
                String name = UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes.toByteArray())).toString();
                return !name.contains("\0") && !name.contains("/");
            } catch (java.nio.charset.CharacterCodingException e) {
                return false;
            }
        }

        private static boolean rate(String s) {
            var m = RATE.matcher(s);
            if (!m.matches()) {
                return false;
            }
            BigInteger value = new BigInteger(m.group(1));
            if (m.group(2) != null) {
                int shift = "KMG".indexOf(Character.toUpperCase(m.group(2).charAt(0))) * 10 + 10;
                value = value.shiftLeft(shift);
            }
            return value.compareTo(MAX) <= 0;
        }
    }

    /** Random writes: garbage, valid commands, mutated commands, split lines, huge lines. */
    static final class Generator {
        private static final String[] VERBS = {"stream", "commit", "pause", "resume", "cancel", "speed"};
        private static final String[] IMAGES = {"a.img", "b.raw", "10M", "0", "disk-é.raw", "😀", "#x", "x#",
            "my%20disk.raw", "a=b.raw", "50%25.raw", "50%.raw", "%2F", "%00x", "%FF", "speed%3D1M"};
        private static final String[] RATES = {"0", "1", "10M", "4k", "1GiB", "9223372036854775807",
            "9223372036854775808", "8589934592G", "-1", "1.5M", "10MB", "07", ""};
        private static final byte[] SPICE = {0, '\n', '\r', '\t', ' ', ' ', '=', '#', '%', (byte) 0xC3, (byte) 0xA9,
            (byte) 0xFF, (byte) 0x80, (byte) 0xE2, 0x1b, 0x7f, 'x', '1', 'K', '.', '-', 's', 'p'};

        static byte[] write(Random r) {
            int kind = r.nextInt(100);
            if (kind < 15) {
                return garbage(r);
            }
            if (kind < 25) {
                // A fragment of a line: the rest comes in later writes.
                byte[] line = line(r);
                return java.util.Arrays.copyOf(line, r.nextInt(line.length + 1));
            }
            if (kind == 25) {
                byte[] huge = new byte[r.nextBoolean() ? 1 << 20 : 4090 + r.nextInt(12)];
                java.util.Arrays.fill(huge, (byte) 'a');
                if (r.nextBoolean()) {
                    huge[r.nextInt(huge.length)] = '\n';
                }
                return huge;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            int lines = 1 + (r.nextInt(4) == 0 ? r.nextInt(4) : 0);
            for (int i = 0; i < lines; i++) {
                out.writeBytes(line(r));
                if (r.nextInt(10) != 0) {
                    out.write(r.nextInt(8) == 0 ? '\r' : '\n');
                    if (r.nextInt(8) == 0) {
                        out.write('\n');
                    }
                }
            }
            return out.toByteArray();
        }

        /** One line without its terminator: valid half the time, mutated otherwise. */
        static byte[] line(Random r) {
            byte[] line = valid(r).getBytes(UTF_8);
            return r.nextBoolean() ? line : mutate(r, line);
        }

        static String valid(Random r) {
            String verb = VERBS[r.nextInt(VERBS.length)];
            StringBuilder b = new StringBuilder(r.nextInt(5) == 0 ? " \t" : "").append(verb);
            String sep = r.nextInt(5) == 0 ? " \t " : " ";
            if (r.nextBoolean()) {
                b.append(sep).append(IMAGES[r.nextInt(IMAGES.length)]);
            }
            switch (verb) {
                case "stream", "commit" -> {
                    if (r.nextBoolean()) {
                        b.append(sep).append("speed=").append(RATES[r.nextInt(RATES.length)]);
                    }
                    if (r.nextBoolean()) {
                        b.append(sep).append("on_error=").append(r.nextInt(8) == 0 ? "never" : OnErrorWords.pick(r));
                    }
                }
                case "speed" -> b.append(sep).append(RATES[r.nextInt(RATES.length)]);
                default -> { }
            }
            if (r.nextInt(10) == 0) {
                b.append(r.nextBoolean() ? "  # trailing" : " extra");
            }
            return b.toString();
        }

        static byte[] mutate(Random r, byte[] line) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.writeBytes(line);
            int mutations = 1 + r.nextInt(3);
            for (int m = 0; m < mutations; m++) {
                byte[] b = out.toByteArray();
                out.reset();
                int at = b.length == 0 ? 0 : r.nextInt(b.length);
                switch (r.nextInt(5)) {
                    case 0 -> { // insert
                        out.write(b, 0, at);
                        out.write(SPICE[r.nextInt(SPICE.length)]);
                        out.write(b, at, b.length - at);
                    }
                    case 1 -> { // delete
                        out.write(b, 0, at);
                        if (at < b.length) {
                            out.write(b, at + 1, b.length - at - 1);
                        }
                    }
                    case 2 -> { // replace
                        out.writeBytes(b);
                        if (b.length > 0) {
                            byte[] c = out.toByteArray();
                            c[at] = r.nextBoolean() ? SPICE[r.nextInt(SPICE.length)] : (byte) r.nextInt(256);
                            out.reset();
                            out.writeBytes(c);
                        }
                    }
                    case 3 -> { // duplicate a piece
                        out.writeBytes(b);
                        out.write(b, at, Math.min(b.length - at, r.nextInt(8)));
                    }
                    default -> out.writeBytes(new String(b, UTF_8).toUpperCase(java.util.Locale.ROOT).getBytes(UTF_8));
                }
            }
            return out.toByteArray();
        }

        static byte[] garbage(Random r) {
            byte[] b = new byte[r.nextInt(64)];
            for (int i = 0; i < b.length; i++) {
                b[i] = r.nextInt(3) == 0 ? SPICE[r.nextInt(SPICE.length)] : (byte) r.nextInt(256);
            }
            return b;
        }
    }

    private static final class OnErrorWords {
        static String pick(Random r) {
            return corfs.vocabulary.OnError.values()[r.nextInt(3)].word();
        }
    }

    static String strictDecode(byte[] bytes) throws CharacterCodingException {
        return UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
    }

    static Optional<ControlCommand> safeParse(String line) {
        try {
            return ControlParser.parse(line);
        } catch (CorfsException e) {
            throw new AssertionError("seed " + SEED + ": '" + printable(line) + "' should parse: " + e.getMessage(), e);
        }
    }

    static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : (s.length() > 120 ? s.substring(0, 120) + "..." : s).toCharArray()) {
            b.append(c < 0x20 || (c >= 0x7f && c < 0xa0) ? String.format("\\x%02x", (int) c) : String.valueOf(c));
        }
        return b.toString();
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
