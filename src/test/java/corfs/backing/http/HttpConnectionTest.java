package corfs.backing.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

@DisplayName("HTTP/1.1 connections of the range reader, against a hostile scripted server")
class HttpConnectionTest {
    private static final Duration GUARD = Duration.ofSeconds(60);
    private byte[] content;
    private ScriptedServer server;

    @BeforeEach
    void start() throws IOException {
        content = new byte[256 * 1024];
        new Random(7).nextBytes(content);
        server = new ScriptedServer(content);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private HttpRangeReader open(int timeoutSeconds) throws IOException {
        return HttpRangeReader.open(server.uri(), new HttpOptions(Duration.ofSeconds(timeoutSeconds), 1, null, null));
    }

    private void assertRange(HttpRangeReader r, int offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        r.readFully(b, offset);
        assertEquals(length, b.position());
        byte[] got = new byte[length];
        b.flip().get(got);
        assertArrayEquals(Arrays.copyOfRange(content, offset, offset + length), got, "bytes at " + offset);
    }

    /** Reads into a buffer full of 0x55 and expects a failure naming {@code words}, the buffer untouched. */
    private void assertFails(HttpRangeReader r, int offset, int length, String words) {
        ByteBuffer b = ByteBuffer.allocate(length);
        Arrays.fill(b.array(), (byte) 0x55);
        CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(b, offset));
        assertTrue(e.getMessage().contains(words), e.getMessage());
        assertEquals(0, b.position());
        byte[] untouched = new byte[length];
        Arrays.fill(untouched, (byte) 0x55);
        if (!words.contains("within")) {
            assertArrayEquals(untouched, b.array(), "bytes landed in the buffer of a refused reply");
        }
    }

    @Nested
    @DisplayName("keep-alive")
    class KeepAlive {
        @Test
        @DisplayName("after good replies the same connection serves every later read")
        void reusesAfterAGoodReply() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(10)) {
                    for (int i = 0; i < 8; i++) {
                        assertRange(r, i * 1000, 5000);
                    }
                    assertEquals(1, server.dataConnections(), server.requests.toString());
                }
            });
        }

        @Test
        @DisplayName("a kept-alive connection the server closed is replaced at once by a new one, once")
        void closedKeptAliveIsReplaced() {
            assertTimeoutPreemptively(GUARD, () -> {
                // every connection answers one request, then closes without saying so
                server.script = req -> new ScriptedServer.Reply(server.good(req).bytes(), req.conditional());
                try (HttpRangeReader r = open(10)) {
                    for (int i = 0; i < 4; i++) {
                        long t0 = System.nanoTime();
                        assertRange(r, i * 1000, 3000);
                        // no backoff: the replacement is immediate
                        assertTrue(System.nanoTime() - t0 < 2_000_000_000L);
                    }
                    assertEquals(4, server.dataConnections());
                }
            });
        }

        @Test
        @DisplayName("Connection: close and bytes past the body: the connection is not reused")
        void doubtfulFramingIsNotReused() {
            assertTimeoutPreemptively(GUARD, () -> {
                server.script = req -> {
                    if (!req.conditional()) {
                        return server.good(req);
                    }
                    String extra = req.index() == 1 && req.connection() % 2 == 0 ? "Connection: close\r\n" : "";
                    byte[] ok = server.reply(req, server.head206(req, req.first(), req.last(),
                            req.last() - req.first() + 1, extra), req.first(), (int) (req.last() - req.first() + 1));
                    byte[] withJunk = Arrays.copyOf(ok, ok.length + 3);
                    return new ScriptedServer.Reply(extra.isEmpty() ? withJunk : ok, false);
                };
                try (HttpRangeReader r = open(10)) {
                    for (int i = 0; i < 4; i++) {
                        assertRange(r, i * 1000, 3000);
                    }
                    assertEquals(4, server.dataConnections(), server.requests.toString());
                }
            });
        }
    }

    @Nested
    @DisplayName("a hostile reply is an error, never data")
    class Hostile {
        private void answerData(java.util.function.Function<ScriptedServer.Request, ScriptedServer.Reply> f) {
            server.script = req -> req.conditional() ? f.apply(req) : server.good(req);
        }

        private ScriptedServer.Reply head(String head) {
            return new ScriptedServer.Reply(head.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), true);
        }

        @Test
        @DisplayName("a header line over 8 KiB, more than 100 fields, a head over 64 KiB: refused at once")
        void oversizedHeads() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(30)) {
                    answerData(req -> head(server.head206(req, req.first(), req.last(), req.last() - req.first() + 1,
                            "X-Big: " + "a".repeat(9000) + "\r\n")));
                    assertFails(r, 0, 1000, "malformed reply");
                    answerData(req -> head(server.head206(req, req.first(), req.last(), req.last() - req.first() + 1,
                            "X-Many: 1\r\n".repeat(101))));
                    assertFails(r, 0, 1000, "malformed reply");
                    answerData(req -> head(server.head206(req, req.first(), req.last(), req.last() - req.first() + 1,
                            ("X-Long: " + "b".repeat(8000) + "\r\n").repeat(9))));
                    assertFails(r, 0, 1000, "malformed reply");
                    server.script = server::good;
                    assertRange(r, 0, 1000);
                }
            });
        }

        @Test
        @DisplayName("bare LF, a folded line, a bad status line, two Content-Lengths, a foreign transfer coding")
        void malformedLines() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(30)) {
                    for (String bad : new String[] {"X-A: 1\n", "X-A: 1\r\n folded\r\n", "Content-Length: 7\r\n",
                            "Transfer-Encoding: gzip\r\n", "Bad Name: 1\r\n", "X-Nul: a\u0000b\r\n"}) {
                        answerData(req -> head(server.head206(req, req.first(), req.last(),
                                req.last() - req.first() + 1, bad)));
                        assertFails(r, 0, 1000, "malformed reply");
                    }
                    answerData(req -> head("HTTP/1.1 2O6 Partial\r\n\r\n"));
                    assertFails(r, 0, 1000, "malformed reply");
                    answerData(req -> head("ICY 206 OK\r\n\r\n"));
                    assertFails(r, 0, 1000, "malformed reply");
                    server.script = server::good;
                    assertRange(r, 0, 1000);
                }
            });
        }

        @Test
        @DisplayName("a Content-Range that is not the range asked, a Content-Length that is not its length")
        void wrongContentRange() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(30)) {
                    answerData(req -> new ScriptedServer.Reply(server.reply(req, server.head206(req, req.first() + 1,
                            req.last() + 1, req.last() - req.first() + 1, ""), req.first() + 1,
                            (int) (req.last() - req.first() + 1)), false));
                    assertFails(r, 0, 1000, "Content-Range");
                    answerData(req -> new ScriptedServer.Reply(server.reply(req, server.head206(req, req.first(),
                            req.last(), req.last() - req.first(), ""), req.first(),
                            (int) (req.last() - req.first())), false));
                    assertFails(r, 0, 1000, "announced a body");
                    server.script = server::good;
                    assertRange(r, 0, 1000);
                }
            });
        }

        @Test
        @DisplayName("a body cut short, then the connection closed, every time: EIO at the deadline, no wrong byte")
        void shortBodyThenClose() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(2)) {
                    answerData(req -> {
                        int len = (int) (req.last() - req.first() + 1);
                        return new ScriptedServer.Reply(server.reply(req, server.head206(req, req.first(), req.last(),
                                len, ""), req.first(), Math.max(0, len / 2)), true);
                    });
                    ByteBuffer b = ByteBuffer.allocate(100_000);
                    CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(b, 0));
                    assertTrue(e.getMessage().contains("within 2 s"), e.getMessage());
                    assertEquals(0, b.position());
                    // what did land is the object's bytes, never anything else
                    for (int i = 0; i < 100_000; i++) {
                        if (b.get(i) != 0 && b.get(i) != content[i]) {
                            throw new AssertionError("a wrong byte at " + i);
                        }
                    }
                    server.script = server::good;
                    assertRange(r, 0, 100_000);
                }
            });
        }

        @Test
        @DisplayName("a chunked 206 with a malformed chunk size is refused; a well-formed one is read")
        void chunked() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(30)) {
                    answerData(req -> {
                        String h = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + req.first() + "-"
                                + req.last() + "/" + content.length + "\r\nETag: " + server.etag
                                + "\r\nTransfer-Encoding: chunked\r\n\r\n";
                        int len = (int) (req.last() - req.first() + 1);
                        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
                        o.writeBytes(h.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                        o.writeBytes((Integer.toHexString(len) + "\r\n").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                        o.write(content, (int) req.first(), len);
                        o.writeBytes("\r\n0\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                        return new ScriptedServer.Reply(o.toByteArray(), false);
                    });
                    assertRange(r, 10, 5000);
                    assertRange(r, 20, 5000);
                    assertEquals(1, server.dataConnections());
                    answerData(req -> head("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + req.first()
                            + "-" + req.last() + "/" + content.length + "\r\nETag: " + server.etag
                            + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
                    assertFails(r, 0, 1000, "malformed reply");
                }
            });
        }

        @Test
        @DisplayName("412 on a kept-alive connection: 'backing changed', sticky")
        void preconditionFailedIsSticky() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = open(30)) {
                    assertRange(r, 0, 1000);
                    answerData(req -> new ScriptedServer.Reply(
                            "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n".getBytes(
                                    java.nio.charset.StandardCharsets.ISO_8859_1), false));
                    assertFails(r, 0, 1000, "backing changed");
                    server.script = server::good;
                    assertFails(r, 0, 1000, "backing changed");
                }
            });
        }
    }
}
