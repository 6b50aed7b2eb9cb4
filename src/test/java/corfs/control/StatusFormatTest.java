package corfs.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafCounters;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

@DisplayName("StatusFormat")
class StatusFormatTest {

    static LeafStatus idle(String image) {
        return new LeafStatus(image, 1L << 30, 65536, 0, 0, false, JobKind.NONE, JobState.IDLE,
                0, 0, 0, 0, 0, -1, OnError.STOP, null, null, List.of(), "/srv/base.raw");
    }

    static LeafStatus running() {
        return new LeafStatus("b.raw", 10L << 30, 1 << 20, 5L << 30, 4096, false, JobKind.STREAM, JobState.RUNNING,
                7, 5L << 30, 10L << 30, 100L << 20, 99L << 20, 51, OnError.SKIP,
                "backing read failed at offset 65536:\n\tInput/output error\u0000 (EIO)\r\n",
                "'speed b.raw 1.5Q': bad rate 100%",
                List.of(new long[] {65536, 65536}, new long[] {1L << 30, 1L << 20}),
                "https://REDACTED@images.example/b raw%.img?X-Amz-Signature=REDACTED");
    }

    @Nested
    @DisplayName("text form")
    class Text {
        @Test
        @DisplayName("an idle leaf renders every field in order")
        void idleLine() {
            assertEquals("image=a.img size=1073741824 cluster_size=65536 local_bytes=0 dirty_bytes=0 standalone=no backing=/srv/base.raw"
                    + " job=none job_id=0 state=idle done_bytes=0 total_bytes=0 speed=0 rate=0 auto_window=- eta=- on_error=stop"
                    + " unreadable=- command_error=- prefetch=none prefetch_done=0 prefetch_total=0"
                    + " fetched=copy_on_read:0,read_ahead:0,stream:0,prefetch:0"
                    + " backing_calls=0 backing_ns=0 backing_latency=0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"
                    + " backing_errors=timeout:0,io:0 error=-\n",
                    StatusFormat.render(List.of(idle("a.img"))));
        }

        @Test
        @DisplayName("the prefetch fields come after command_error, before error, in text and JSON")
        void prefetch() {
            LeafStatus s = idle("a.img").withPrefetch(corfs.vocabulary.PrefetchState.RUNNING, 3L << 20, 8L << 20);
            String text = StatusFormat.render(List.of(s));
            assertTrue(text.contains(" command_error=- prefetch=running prefetch_done=3145728 prefetch_total=8388608"
                    + " fetched="), text);
            Map<String, String> fields = StatusFormat.parse(text).get(0);
            assertEquals("running", fields.get("prefetch"));
            assertEquals("8388608", fields.get("prefetch_total"));
            assertTrue(StatusFormat.renderJson(List.of(s)).contains(
                    "\"prefetch\":\"running\",\"prefetch_done\":3145728,\"prefetch_total\":8388608,\"fetched\":"));
            String prom = PrometheusFormat.render("/mnt", List.of(s));
            assertTrue(prom.contains("corfs_prefetch_done_bytes{mountpoint=\"/mnt\",image=\"a.img\"} 3145728\n"), prom);
            assertTrue(prom.contains("corfs_prefetch_state{mountpoint=\"/mnt\",image=\"a.img\",state=\"running\"} 1\n"), prom);
            assertTrue(prom.contains("corfs_prefetch_state{mountpoint=\"/mnt\",image=\"a.img\",state=\"none\"} 0\n"), prom);
        }

        @Test
        @DisplayName("speed=auto: the setting as the control file writes it, the window, the rate kept to in JSON too")
        void auto() {
            LeafStatus r = running();
            LeafStatus s = new LeafStatus(r.image(), r.size(), r.clusterSize(), r.localBytes(), r.dirtyBytes(), false,
                    r.job(), r.state(), r.jobId(), r.doneBytes(), r.totalBytes(), 3L << 20, r.rateBytesPerSecond(),
                    r.etaSeconds(), r.onError(), null, null, List.of(), null, JobSpeed.auto(5_000), 2.5);
            Map<String, String> f = StatusFormat.parse(StatusFormat.render(List.of(s))).get(0);
            assertEquals("auto:5ms", f.get("speed"));
            assertEquals("2.50", f.get("auto_window"));
            assertEquals(StatusFormat.FIELDS, new ArrayList<>(f.keySet()));
            String json = StatusFormat.renderJson(List.of(s, idle("a")));
            assertTrue(json.contains("\"speed\":\"auto:5ms\",\"rate\":" + (99L << 20) + ",\"auto_window\":2.50,"), json);
            assertTrue(json.contains("\"speed\":0,\"rate\":0,\"auto_window\":null,"), json);
            LeafStatus d = new LeafStatus("a", 1, 4096, 0, 0, false, JobKind.STREAM, JobState.PAUSED, 1, 0, 1, 0, 0, -1,
                    OnError.STOP, null, null, List.of(), null, JobSpeed.AUTO, 0.01);
            Map<String, String> g = StatusFormat.parse(StatusFormat.render(List.of(d))).get(0);
            assertEquals("auto", g.get("speed"));
            assertEquals("0.01", g.get("auto_window"));
        }

        @Test
        @DisplayName("the counters read back as rendered; a line without them (an older daemon) reads as zeros")
        void counters() {
            long[] buckets = new long[LeafCounters.LATENCY_BOUNDS_SECONDS.length + 1];
            buckets[0] = 5;
            buckets[3] = 2;
            buckets[buckets.length - 1] = 1;
            LeafCounters c = new LeafCounters(65536, 1L << 20, 3L << 30, 7, buckets, 12_345_678_901L, 1, 2);
            String text = StatusFormat.render(List.of(running().withCounters(c)));
            assertTrue(text.contains(" fetched=copy_on_read:65536,read_ahead:1048576,stream:3221225472,prefetch:7"
                    + " backing_calls=8 backing_ns=12345678901 backing_latency=5,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0,1"
                    + " backing_errors=timeout:1,io:2 error="), text);
            assertEquals(c, StatusFormat.counters(StatusFormat.parse(text).get(0)));
            assertEquals(LeafCounters.NONE, StatusFormat.counters(StatusFormat.parse(
                    "image=a size=1 backing_latency=1,2 fetched=stream:x error=-\n").get(0)));
        }

        @Test
        @DisplayName("keys appear in the documented order")
        void order() {
            Map<String, String> fields = StatusFormat.parse(StatusFormat.render(List.of(running()))).get(0);
            assertEquals(StatusFormat.FIELDS, new ArrayList<>(fields.keySet()));
        }

        @Test
        @DisplayName("the error stays on one line and keeps its spaces")
        void errorOneLine() {
            String text = StatusFormat.render(List.of(running(), idle("a.img")));
            assertEquals(2, text.split("\n").length);
            assertFalse(text.chars().anyMatch(c -> c != '\n' && Character.isISOControl(c)), text);
            assertTrue(text.contains(" unreadable=65536+65536,1073741824+1048576"
                    + " command_error='speed%20b.raw%201.5Q':%20bad%20rate%20100%25 prefetch=none prefetch_done=0"
                    + " prefetch_total=0 fetched="), text);
            assertTrue(text.contains(" backing_errors=timeout:0,io:0 error=backing read failed at offset"
                    + " 65536:  Input/output error  (EIO)\n"), text);
            Map<String, String> fields = StatusFormat.parse(text).get(0);
            assertEquals("'speed b.raw 1.5Q': bad rate 100%", fields.get("command_error"), "decoded");
            assertEquals("7", fields.get("job_id"));
        }

        @Test
        @DisplayName("no leaves render as empty text and parse as no maps")
        void empty() {
            assertEquals("", StatusFormat.render(List.of()));
            assertEquals(List.of(), StatusFormat.parse(""));
        }

        @Test
        @DisplayName("render then parse gives back every value")
        void roundTrip() {
            List<Map<String, String>> parsed = StatusFormat.parse(
                    StatusFormat.render(List.of(running(), idle("my disk%1.img"))));
            assertEquals(2, parsed.size());
            Map<String, String> r = parsed.get(0);
            assertEquals("b.raw", r.get("image"));
            assertEquals(Long.toString(10L << 30), r.get("size"));
            assertEquals("1048576", r.get("cluster_size"));
            assertEquals("yes".equals(r.get("standalone")), false);
            assertEquals("stream", r.get("job"));
            assertEquals("running", r.get("state"));
            assertEquals(Long.toString(100L << 20), r.get("speed"));
            assertEquals(Long.toString(99L << 20), r.get("rate"));
            assertEquals("51", r.get("eta"));
            assertEquals("skip", r.get("on_error"));
            assertEquals("65536+65536,1073741824+1048576", r.get("unreadable"));
            assertEquals("backing read failed at offset 65536:  Input/output error  (EIO)", r.get("error"));
            Map<String, String> a = parsed.get(1);
            assertEquals("my disk%1.img", a.get("image"), "a name with a space and a % survives");
            assertEquals("/srv/base.raw", a.get("backing"));
            assertEquals("https://REDACTED@images.example/b raw%.img?X-Amz-Signature=REDACTED", r.get("backing"),
                    "a SPEC with a space and a % survives");
            assertEquals("-", a.get("error"));
            assertEquals("-", a.get("eta"));
        }

        @Test
        @DisplayName("an error that looks like fields is kept whole")
        void trickyError() {
            LeafStatus s = new LeafStatus("a", 1, 4096, 0, 0, true, JobKind.COMMIT, JobState.FAILED, 0, 0, 0, 0, 0, -1,
                    null, "rejected 'speed a.img 1.5M' image=x error=y", null, null, null);
            Map<String, String> f = StatusFormat.parse(StatusFormat.render(List.of(s))).get(0);
            assertEquals("a", f.get("image"));
            assertEquals("yes", f.get("standalone"));
            assertEquals("failed", f.get("state"));
            assertEquals("-", f.get("on_error"));
            assertEquals("rejected 'speed a.img 1.5M' image=x error=y", f.get("error"));
        }

        @Test
        @DisplayName("parse tolerates unknown keys, stray tokens, CRLF and extra spaces")
        void tolerant() {
            List<Map<String, String>> parsed = StatusFormat.parse(
                    "image=a  new_key=1 stray state=running\r\n\nimage=b error=x  y\n");
            assertEquals(2, parsed.size());
            assertEquals(Map.of("image", "a", "new_key", "1", "state", "running"), parsed.get(0));
            assertEquals("x  y", parsed.get(1).get("error"));
        }
    }

    @Nested
    @DisplayName("JSON form")
    class JsonForm {
        @Test
        @DisplayName("is an array of objects with typed values")
        void shape() {
            Object parsed = new Json(StatusFormat.renderJson(List.of(running(), idle("q\"uo\\te\u0001.img")))).parse();
            List<?> array = (List<?>) parsed;
            assertEquals(2, array.size());
            Map<?, ?> r = (Map<?, ?>) array.get(0);
            assertEquals(StatusFormat.FIELDS, new ArrayList<>(r.keySet()));
            assertEquals("b.raw", r.get("image"));
            assertEquals(10L << 30, r.get("size"));
            assertEquals(1L << 20, r.get("cluster_size"));
            assertEquals(Boolean.FALSE, r.get("standalone"));
            assertEquals("stream", r.get("job"));
            assertEquals("running", r.get("state"));
            assertEquals(51L, r.get("eta"));
            assertEquals("skip", r.get("on_error"));
            assertEquals(List.of(Map.of("offset", 65536L, "length", 65536L),
                    Map.of("offset", 1L << 30, "length", 1L << 20)), r.get("unreadable"));
            assertEquals(running().error(), r.get("error"), "JSON keeps the error exactly");
            Map<?, ?> a = (Map<?, ?>) array.get(1);
            assertEquals("q\"uo\\te\u0001.img", a.get("image"));
            assertNull(a.get("eta"));
            assertTrue(a.containsKey("eta"));
            assertNull(a.get("error"));
            assertEquals(List.of(), a.get("unreadable"));
        }

        @Test
        @DisplayName("escapes control characters, line separators and lone surrogates")
        void escapes() {
            LeafStatus s = new LeafStatus("x", 0, 4096, 0, 0, false, null, null, 0, 0, 0, 0, 0, -1, null,
                    "a\u2028b\u007fc\uD800d😀", null, null, null);
            String json = StatusFormat.renderJson(List.of(s));
            assertTrue(json.contains("\"a\\u2028b\\u007fc\\ud800d😀\""), json);
            Map<?, ?> m = (Map<?, ?>) ((List<?>) new Json(json).parse()).get(0);
            assertEquals("none", m.get("job"));
            assertEquals("idle", m.get("state"));
            assertNull(m.get("on_error"));
        }

        @Test
        @DisplayName("no leaves is an empty array")
        void empty() {
            assertEquals(List.of(), new Json(StatusFormat.renderJson(List.of())).parse());
        }
    }

    /** A strict little JSON reader for the tests: objects keep key order, numbers are longs. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object parse() {
            Object v = value();
            ws();
            if (i != s.length()) {
                throw new AssertionError("trailing text at " + i + " in " + s);
            }
            return v;
        }

        private Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (peek('}')) {
                    return m;
                }
                do {
                    ws();
                    String key = string();
                    ws();
                    expect(':');
                    if (m.put(key, value()) != null) {
                        throw new AssertionError("duplicate key " + key);
                    }
                    ws();
                } while (peek(','));
                expect('}');
                return m;
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (peek(']')) {
                    return l;
                }
                do {
                    l.add(value());
                    ws();
                } while (peek(','));
                expect(']');
                return l;
            }
            if (c == '"') {
                return string();
            }
            for (String word : new String[] {"true", "false", "null"}) {
                if (s.startsWith(word, i)) {
                    i += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            int start = i;
            if (s.charAt(i) == '-') {
                i++;
            }
            while (i < s.length() && Character.isDigit(s.charAt(i))) {
                i++;
            }
            if (start == i) {
                throw new AssertionError("unexpected '" + c + "' at " + i + " in " + s);
            }
            return Long.parseLong(s.substring(start, i));
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c < 0x20) {
                    throw new AssertionError("raw control character in string at " + i);
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'u' -> {
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> throw new AssertionError("bad escape \\" + e);
                }
            }
        }

        private void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw new AssertionError("expected '" + c + "' at " + i + " in " + s);
            }
        }
    }
}
