package corfs.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.control.ControlCommand.Cancel;
import corfs.control.ControlCommand.Commit;
import corfs.control.ControlCommand.Pause;
import corfs.control.ControlCommand.Prioritize;
import corfs.control.ControlCommand.Range;
import corfs.control.ControlCommand.Resume;
import corfs.control.ControlCommand.Speed;
import corfs.control.ControlCommand.Stream;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.OnError;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream.Builder;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

@DisplayName("ControlParser")
class ControlParserTest {

    private static final long K = 1024;
    private static final long M = K * K;
    private static final long G = M * K;

    static java.util.stream.Stream<Arguments> validLines() {
        Builder<Arguments> b = java.util.stream.Stream.builder();
        b.add(Arguments.of("stream", new Stream(null, null, null)));
        b.add(Arguments.of("stream a.img", new Stream("a.img", null, null)));
        b.add(Arguments.of("  stream\ta.img  ", new Stream("a.img", null, null)));
        b.add(Arguments.of("stream a.img speed=10M", new Stream("a.img", 10 * M, null)));
        b.add(Arguments.of("stream speed=0", new Stream(null, 0L, null)));
        b.add(Arguments.of("stream on_error=skip speed=4k", new Stream(null, 4 * K, OnError.SKIP)));
        b.add(Arguments.of("stream a.img on_error=retry", new Stream("a.img", null, OnError.RETRY)));
        b.add(Arguments.of("stream 10M", new Stream("10M", null, null)));
        b.add(Arguments.of("commit", new Commit(null, null, null)));
        b.add(Arguments.of("commit b.raw speed=1GiB on_error=stop", new Commit("b.raw", G, OnError.STOP)));
        b.add(Arguments.of("pause", new Pause(null)));
        b.add(Arguments.of("pause a.img", new Pause("a.img")));
        b.add(Arguments.of("resume disk-é.raw", new Resume("disk-é.raw")));
        b.add(Arguments.of("cancel 😀.img", new Cancel("😀.img")));
        b.add(Arguments.of("speed 10M", new Speed(null, 10 * M)));
        b.add(Arguments.of("speed 0", new Speed(null, 0)));
        b.add(Arguments.of("speed a.img 10M", new Speed("a.img", 10 * M)));
        b.add(Arguments.of("speed 10M 20M", new Speed("10M", 20 * M)));
        b.add(Arguments.of("speed a.img 123", new Speed("a.img", 123)));
        // Issue 7, defect 8: IMAGE tokens are percent-decoded, and an unknown KEY=VALUE first is the IMAGE.
        b.add(Arguments.of("stream my%20disk.raw", new Stream("my disk.raw", null, null)));
        b.add(Arguments.of("stream 50%25.raw speed=1K", new Stream("50%.raw", K, null)));
        b.add(Arguments.of("stream 50%.raw", new Stream("50%.raw", null, null)));
        b.add(Arguments.of("stream new%0Aline.raw", new Stream("new\nline.raw", null, null)));
        b.add(Arguments.of("stream a=b.raw on_error=skip", new Stream("a=b.raw", null, OnError.SKIP)));
        b.add(Arguments.of("commit a%3Db.raw", new Commit("a=b.raw", null, null)));
        b.add(Arguments.of("stream speed%3D1M", new Stream("speed=1M", null, null)));
        b.add(Arguments.of("stream foo=bar", new Stream("foo=bar", null, null)));
        b.add(Arguments.of("pause a=b", new Pause("a=b")));
        b.add(Arguments.of("cancel speed=1", new Cancel("speed=1")));
        b.add(Arguments.of("resume %C3%A9t%C3%A9.raw", new Resume("été.raw")));
        b.add(Arguments.of("speed x=y 10M", new Speed("x=y", 10 * M)));
        b.add(Arguments.of("speed my%20disk.raw 10M", new Speed("my disk.raw", 10 * M)));
        b.add(Arguments.of("prefetch /var/lib/boot.profile", new ControlCommand.Prefetch(null, "/var/lib/boot.profile")));
        b.add(Arguments.of("prefetch a.img /p/my%20boot.profile", new ControlCommand.Prefetch("a.img", "/p/my boot.profile")));
        b.add(Arguments.of("prefetch /p/a%3Db", new ControlCommand.Prefetch(null, "/p/a=b")));
        b.add(Arguments.of("prefetch cancel", new ControlCommand.PrefetchCancel(null)));
        b.add(Arguments.of("prefetch a.img cancel", new ControlCommand.PrefetchCancel("a.img")));
        b.add(Arguments.of("prefetch cancel cancel", new ControlCommand.PrefetchCancel("cancel")));
        b.add(Arguments.of("prefetch cancel /x", new ControlCommand.Prefetch("cancel", "/x")));
        // Issue 10: speed=auto[:TARGET] for a stream, and prioritize.
        b.add(Arguments.of("stream speed=auto", new Stream(null, JobSpeed.AUTO, null)));
        b.add(Arguments.of("stream a.img speed=auto:5ms on_error=retry",
                new Stream("a.img", JobSpeed.auto(5_000), OnError.RETRY)));
        b.add(Arguments.of("stream speed=auto:20ms", new Stream(null, JobSpeed.AUTO, null)));
        b.add(Arguments.of("stream speed=auto:1ms", new Stream(null, JobSpeed.auto(1_000), null)));
        b.add(Arguments.of("stream speed=auto:10s", new Stream(null, JobSpeed.auto(10_000_000), null)));
        b.add(Arguments.of("stream speed=auto:1500us", new Stream(null, JobSpeed.auto(1_500), null)));
        b.add(Arguments.of("stream auto", new Stream("auto", null, null)));
        b.add(Arguments.of("speed auto", new Speed(null, JobSpeed.AUTO)));
        b.add(Arguments.of("speed a.img auto:250ms", new Speed("a.img", JobSpeed.auto(250_000))));
        b.add(Arguments.of("speed auto auto:2s", new Speed("auto", JobSpeed.auto(2_000_000))));
        b.add(Arguments.of("prioritize 0", new Prioritize(null, List.of(new Range(0, null)))));
        b.add(Arguments.of("prioritize 1G+64M 4096 0+1", new Prioritize(null,
                List.of(new Range(G, 64 * M), new Range(4096, null), new Range(0, 1L)))));
        b.add(Arguments.of("prioritize a.img 10M+1K", new Prioritize("a.img", List.of(new Range(10 * M, K)))));
        b.add(Arguments.of("prioritize %31G 0", new Prioritize("1G", List.of(new Range(0, null)))));
        b.add(Arguments.of("prioritize 1.raw 0", new Prioritize("1.raw", List.of(new Range(0, null)))));
        b.add(Arguments.of("prioritize 9223372036854775806+1", new Prioritize(null,
                List.of(new Range(Long.MAX_VALUE - 1, 1L)))));
        b.add(Arguments.of("prioritize x " + "0 ".repeat(ControlParser.MAX_PRIORITY_RANGES).strip(),
                new Prioritize("x", java.util.Collections.nCopies(ControlParser.MAX_PRIORITY_RANGES,
                        new Range(0, null)))));
        return b.build();
    }

    @Nested
    @DisplayName("accepts")
    class Accepts {
        @ParameterizedTest(name = "[{index}] \"{0}\"")
        @MethodSource("corfs.control.ControlParserTest#validLines")
        @DisplayName("well-formed lines")
        void wellFormed(String line, ControlCommand expected) throws CorfsException {
            assertEquals(Optional.of(expected), ControlParser.parse(line));
        }

        @ParameterizedTest(name = "[{index}] \"{0}\"")
        @MethodSource("corfs.control.ControlParserTest#validLines")
        @DisplayName("format(parse(line)) parses back to the same command")
        void roundTrip(String line, ControlCommand expected) throws CorfsException {
            ControlCommand parsed = ControlParser.parse(line).orElseThrow();
            assertEquals(Optional.of(parsed), ControlParser.parse(ControlParser.format(parsed)));
            assertEquals(expected, parsed);
        }

        @ParameterizedTest(name = "[{index}] \"{0}\"")
        @ValueSource(strings = {"", " ", "\t\t", "#", "# a comment", "   # indented comment", "#stream a.img"})
        @DisplayName("blank lines and comments as empty")
        void blank(String line) throws CorfsException {
            assertEquals(Optional.empty(), ControlParser.parse(line));
        }

        @Test
        @DisplayName("a line of exactly 4096 bytes")
        void longestLine() throws CorfsException {
            String image = "x".repeat(ControlParser.MAX_LINE_BYTES - "pause ".length());
            assertEquals(Optional.of(new Pause(image)), ControlParser.parse("pause " + image));
        }
    }

    @Nested
    @DisplayName("rejects with INVALID_ARGUMENT")
    class Rejects {
        @ParameterizedTest(name = "[{index}] \"{0}\"")
        @ValueSource(strings = {
            "strem", "STREAM", "Stream a.img", "stream,", "status", "-", "=", "speed=1M",
            "stream a.img b.img", "stream speed=1M a.img", "stream a.img speed=", "stream speed=-1",
            "stream speed=1.5M", "stream speed=1M speed=2M", "stream on_error=ignore", "stream on_error=STOP",
            "stream on_error=stop on_error=skip", "stream a.img foo=bar", "stream a.img =x", "stream a.img speed",
            "commit a.img b.img", "commit a.img speed=10X",
            "pause a.img b.img", "resume a b", "cancel x y z",
            "speed", "speed a.img", "speed -1", "speed 1.5", "speed 10MB", "speed 10 M", "speed a.img 10M x",
            "speed a.img speed=10M", "speed speed=10M", "speed 0x10", "speed +5", "speed 1e6",
            "stream a%00b", "pause a%2Fb", "cancel %FF.raw", "speed %C3 1M", "stream ..%2F..%2Fetc", "stream ../x", "pause a/b",
            "speed 10T", "speed 10KIB", "speed ١٢٣",
            "stream speed=Auto", "stream speed=auto:", "stream speed=auto:5", "stream speed=auto:5m",
            "stream speed=auto:5MS", "stream speed=auto:0ms", "stream speed=auto:999us", "stream speed=auto:11s",
            "stream speed=auto:-5ms", "stream speed=auto:1.5ms", "stream speed=auto:99999999999999999999ms",
            "stream speed=auto:5ms:5ms", "stream speed=autox", "stream speed=auto5ms", "commit speed=auto",
            "commit a.img speed=auto:5ms", "speed auto:", "speed a.img auto:0s", "speed auto:20 ms",
            "prioritize", "prioritize a.img", "prioritize 0+0", "prioritize a.img 0+0", "prioritize a.img -1",
            "prioritize a.img 1.5M", "prioritize a.img 0+", "prioritize a.img +4096", "prioritize a.img 0++1",
            "prioritize a.img 0+1+2", "prioritize a.img 0x10", "prioritize a.img 10T", "prioritize a.img 1M-2",
            "prioritize a.img 9223372036854775807+1", "prioritize a.img 8589934592G",
            "prioritize a.img 1+9223372036854775807", "prioritize a.img 99999999999999999999",
            "prioritize a.img 0 x", "prioritize 0 0+0", "prioritize a.img b.img 0",
            "stream\u0000", "stream a\u0000b", "stream\r", "stream a.img\u001b[31m", "pause\u007f",
            "cancel \u0085", "stream\nstream", "pause \uD800", "pause \uDC00x",
            "prefetch", "prefetch boot.profile", "prefetch a.img boot.profile", "prefetch a.img /p x",
            "prefetch a/b /p", "prefetch /p%00x", "prefetch %FF/p", "prefetch a.img", "PREFETCH /p",
        })
        @DisplayName("malformed lines")
        void malformed(String line) {
            CorfsException e = assertThrows(CorfsException.class, () -> ControlParser.parse(line));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertFalse(e.getMessage().isBlank());
        }

        @Test
        @DisplayName("prioritize: more ranges than the limit; speed=auto on a commit says why")
        void prioritizeLimits() {
            assertInvalid("prioritize x " + "0 ".repeat(ControlParser.MAX_PRIORITY_RANGES + 1).strip(),
                    "more than " + ControlParser.MAX_PRIORITY_RANGES);
            assertInvalid("prioritize 0+0", "length 0");
            assertInvalid("prioritize a 1+9223372036854775807", "past 2^63");
            assertInvalid("commit speed=auto", "for streams");
            assertInvalid("stream speed=auto:11s", "out of bounds");
        }

        @Test
        @DisplayName("a line one byte over 4096, counted in UTF-8 bytes")
        void tooLong() {
            String ascii = "pause " + "x".repeat(ControlParser.MAX_LINE_BYTES - "pause ".length() + 1);
            assertInvalid(ascii, "longer than 4096");
            // 2048 two-byte characters plus "pause ": fewer than 4096 chars but more than 4096 bytes.
            String wide = "pause " + "é".repeat(2048);
            assertTrue(wide.length() < ControlParser.MAX_LINE_BYTES);
            assertInvalid(wide, "longer than 4096");
        }

        @Test
        @DisplayName("messages name the offending token, cut to a readable length")
        void messages() {
            assertInvalid("strem a.img", "unknown command 'strem'");
            assertInvalid("stream a.img b.img", "'b.img'");
            assertInvalid("stream on_error=ignore", "'ignore'");
            assertInvalid("speed 1.5M", "'1.5M'");
            CorfsException e = assertThrows(CorfsException.class,
                    () -> ControlParser.parse("x".repeat(1000)));
            assertTrue(e.getMessage().length() < 200, e.getMessage());
        }

        private void assertInvalid(String line, String fragment) {
            CorfsException e = assertThrows(CorfsException.class, () -> ControlParser.parse(line));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains(fragment), () -> "message '" + e.getMessage() + "' lacks '" + fragment + "'");
        }
    }

    @Nested
    @DisplayName("rates")
    class Rates {
        @ParameterizedTest(name = "[{index}] {0} = {1}")
        @CsvSource({
            "0, 0", "1, 1", "007, 7", "1023, 1023",
            "1K, 1024", "1k, 1024", "1KiB, 1024", "1kiB, 1024",
            "10M, 10485760", "10m, 10485760", "10MiB, 10485760",
            "1G, 1073741824", "1g, 1073741824", "2GiB, 2147483648", "0G, 0",
            "9223372036854775807, 9223372036854775807",
            "8589934591G, 9223372035781033984",
            "9007199254740991K, 9223372036854774784",
        })
        @DisplayName("valid rates")
        void valid(String text, long expected) throws CorfsException {
            assertEquals(expected, ControlParser.parseRate(text));
            assertTrue(ControlParser.isRate(text));
        }

        @ParameterizedTest(name = "[{index}] \"{0}\"")
        @ValueSource(strings = {
            "", "-1", "-0", "+1", "1.0", ".5", "1,000", "1_000", "K", "M1", "1KB", "1Ki", "1iB", "1KIB",
            "1T", "1 K", " 1", "1 ", "0x10", "1e3", "NaN", "∞", "１２", "9223372036854775808",
            "99999999999999999999999", "8589934592G", "9007199254740992K", "8796093022208M",
        })
        @DisplayName("negatives, fractions, garbage and overflow")
        void invalid(String text) {
            CorfsException e = assertThrows(CorfsException.class, () -> ControlParser.parseRate(text));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertFalse(ControlParser.isRate(text));
        }
    }
}
