package corfs.backing.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * What a broken or hostile server can send that qemu-nbd and nbdkit never do, through
 * {@link ScriptedNbdServer}: every case ends in a failed request (EIO), never in wrong data, and the
 * connection is failed exactly when the framing can no longer be trusted.
 */
@DisplayName("NBD client against a scripted server")
class NbdProtocolFaultTest {
    private static final Duration GUARD = Duration.ofSeconds(20);
    private static final int SIZE = 1 << 20;

    private static void guarded(Executable body) {
        assertTimeoutPreemptively(GUARD, body);
    }

    private static ScriptedNbdServer server() throws Exception {
        return new ScriptedNbdServer(true, SIZE, NbdProtocol.FLAG_SEND_FLUSH, null);
    }

    private static NbdConnection connect(ScriptedNbdServer s) throws Exception {
        return connect(s, NbdOptions.defaults());
    }

    private static NbdConnection connect(ScriptedNbdServer s, NbdOptions options) throws Exception {
        return NbdClient.connect(NbdUri.parse(s.uri()), options);
    }

    private static byte[] random(int n, int seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static ByteBuffer garbage(int n) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) 0x5a);
        return ByteBuffer.wrap(b);
    }

    /** The exception a future failed with, checked to be an NbdException. */
    private static NbdException failure(CompletableFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
        return assertInstanceOf(NbdException.class, e.getCause());
    }

    private static void assertContains(String expected, Throwable e) {
        assertTrue(e.getMessage().contains(expected), () -> "expected '" + expected + "' in: " + e.getMessage());
    }

    @Test
    @DisplayName("out-of-order replies with interleaved data and hole chunks land in the right buffers")
    void interleaved() {
        guarded(() -> {
            try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                ByteBuffer a = garbage(8192);
                ByteBuffer b = garbage(8192);
                CompletableFuture<Void> fa = c.read(0, a);
                CompletableFuture<Void> fb = c.read(8192, b);
                ScriptedNbdServer.Request ra = s.nextRequest();
                ScriptedNbdServer.Request rb = s.nextRequest();
                byte[] a1 = random(4096, 1);
                byte[] b1 = random(4096, 2);
                byte[] b2 = random(4096, 3);
                s.data(rb.cookie(), false, 12288, b2);
                s.data(ra.cookie(), false, 0, a1);
                s.hole(ra.cookie(), true, 4096, 4096);
                s.data(rb.cookie(), false, 8192, b1);
                s.none(rb.cookie());
                fa.get(10, TimeUnit.SECONDS);
                fb.get(10, TimeUnit.SECONDS);
                byte[] wantA = new byte[8192];
                System.arraycopy(a1, 0, wantA, 0, 4096);
                byte[] wantB = new byte[8192];
                System.arraycopy(b1, 0, wantB, 0, 4096);
                System.arraycopy(b2, 0, wantB, 4096, 4096);
                assertArrayEquals(wantA, a.array(), "the hole half reads as zeros, not the buffer's old bytes");
                assertArrayEquals(wantB, b.array());
                assertTrue(c.isOpen());
            }
        });
    }

    @Nested
    @DisplayName("framing lost: the connection fails with every request on it")
    class FramingLost {
        @Test
        @DisplayName("a reply for a cookie never sent")
        void unknownCookie() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    CompletableFuture<Void> other = c.read(4096, garbage(4096));
                    ScriptedNbdServer.Request r = s.nextRequest();
                    s.data(r.cookie() + 1000, true, 0, new byte[4096]);
                    assertContains("unknown cookie", failure(f));
                    failure(other);
                    assertFalse(c.isOpen());
                    assertContains("connection failed", failure(c.read(0, garbage(512))));
                }
            });
        }

        @Test
        @DisplayName("a data chunk outside its request")
        void outside() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    ByteBuffer dst = garbage(4096);
                    CompletableFuture<Void> f = c.read(0, dst);
                    s.data(s.nextRequest().cookie(), true, 2048, new byte[4096]);
                    assertContains("outside its request", failure(f));
                    assertFalse(c.isOpen());
                }
            });
        }

        @Test
        @DisplayName("a chunk claiming 4 GiB is refused before any allocation or copy")
        void hugeChunk() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    s.chunkHeader(s.nextRequest().cookie(), 1, NbdProtocol.REPLY_TYPE_OFFSET_DATA, 0xFFFFFFFFL);
                    s.out().write(new byte[8]);
                    s.out().flush();
                    assertContains("outside its request", failure(f));
                    assertFalse(c.isOpen());
                }
            });
        }

        @Test
        @DisplayName("overlapping and duplicate data chunks")
        void overlapping() {
            guarded(() -> {
                for (int second : new int[] {2048, 0}) {
                    try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                        CompletableFuture<Void> f = c.read(0, garbage(8192));
                        long cookie = s.nextRequest().cookie();
                        s.data(cookie, false, 0, new byte[4096]);
                        s.data(cookie, true, second, new byte[4096]);
                        assertContains("overlaps", failure(f));
                        assertFalse(c.isOpen());
                    }
                }
            });
        }

        @Test
        @DisplayName("the connection dropped in the middle of a data chunk")
        void droppedMidReply() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(8192));
                    s.chunkHeader(s.nextRequest().cookie(), 1, NbdProtocol.REPLY_TYPE_OFFSET_DATA, 8 + 8192);
                    s.out().write(new byte[8 + 100]);
                    s.out().flush();
                    s.drop();
                    assertContains("the server closed the connection", failure(f));
                    assertFalse(c.isOpen());
                }
            });
        }

        @Test
        @DisplayName("a simple reply to a read after structured replies were negotiated")
        void simpleReplyToStructuredRead() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    s.simpleReply(s.nextRequest().cookie(), 0, new byte[4096]);
                    assertContains("simple reply to a read", failure(f));
                    assertFalse(c.isOpen());
                }
            });
        }

        @Test
        @DisplayName("an error chunk with a 60,000-byte message, and a bad magic")
        void badErrorChunkAndMagic() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    s.error(s.nextRequest().cookie(), true, 5, "x".repeat(60_000));
                    assertContains("error chunk of length", failure(f));
                }
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    s.nextRequest();
                    s.out().write(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
                    s.out().flush();
                    assertContains("bad reply magic", failure(f));
                }
            });
        }

        @Test
        @DisplayName("block status: extents past the request, another context, no extents")
        void badBlockStatus() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<List<NbdExtent>> f = c.blockStatus(0, 8192);
                    s.blockStatus(s.nextRequest().cookie(), ScriptedNbdServer.CONTEXT, 4096, 3, 4096, 0, 4096, 0);
                    assertContains("beyond the requested range", failure(f));
                }
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<List<NbdExtent>> f = c.blockStatus(0, 8192);
                    s.blockStatus(s.nextRequest().cookie(), ScriptedNbdServer.CONTEXT + 1, 8192, 0);
                    assertContains("meta context", failure(f));
                }
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<List<NbdExtent>> f = c.blockStatus(0, 8192);
                    s.blockStatus(s.nextRequest().cookie(), ScriptedNbdServer.CONTEXT, 0, 0);
                    assertContains("length 0", failure(f));
                }
            });
        }
    }

    @Nested
    @DisplayName("request failed, connection kept")
    class RequestFailed {
        @Test
        @DisplayName("an error chunk: EIO with the server's message; the next read works")
        void errorChunk() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(4096));
                    s.error(s.nextRequest().cookie(), true, 5, "disk on fire\n");
                    NbdException e = failure(f);
                    assertEquals(5, e.nbdError());
                    assertEquals(CorfsException.Reason.IO, e.reason());
                    assertContains("EIO: disk on fire?", e);
                    assertTrue(c.isOpen());
                    ByteBuffer dst = garbage(4096);
                    CompletableFuture<Void> ok = c.read(0, dst);
                    byte[] data = random(4096, 9);
                    s.data(s.nextRequest().cookie(), true, 0, data);
                    ok.get(10, TimeUnit.SECONDS);
                    assertArrayEquals(data, dst.array());
                }
            });
        }

        @Test
        @DisplayName("a short read (DONE before every byte was sent) fails, never zero-filled")
        void shortRead() {
            guarded(() -> {
                try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                    CompletableFuture<Void> f = c.read(0, garbage(8192));
                    long cookie = s.nextRequest().cookie();
                    s.data(cookie, false, 0, new byte[4096]);
                    s.none(cookie);
                    assertContains("short read", failure(f));
                    assertTrue(c.isOpen());
                }
            });
        }

        @Test
        @DisplayName("a deadline fails the read at once; the late reply is dropped, not copied into the buffer")
        void deadline() {
            guarded(() -> {
                try (ScriptedNbdServer s = server();
                        NbdConnection c = connect(s, NbdOptions.defaults().withTimeout(Duration.ofSeconds(1)))) {
                    ByteBuffer dst = garbage(4096);
                    CompletableFuture<Void> f = c.read(0, dst);
                    ScriptedNbdServer.Request r = s.nextRequest();
                    // (a read still queued at its deadline is never sent; 1 s leaves the writer ample time)
                    assertEquals(NbdProtocol.CMD_READ, r.type());
                    long cookie = r.cookie();
                    assertInstanceOf(NbdTimeoutException.class, failure(f));
                    s.data(cookie, true, 0, new byte[4096]); // late
                    CompletableFuture<Void> flush = c.flush();
                    s.simpleReply(s.nextRequest().cookie(), 0, null);
                    flush.get(10, TimeUnit.SECONDS);
                    assertTrue(c.isOpen(), "the late reply kept the framing");
                    assertArrayEquals(garbage(4096).array(), dst.array(), "the late data went to the sink");
                }
            });
        }
    }

    @Test
    @DisplayName("ESHUTDOWN: the request fails, the client sends nothing more but NBD_CMD_DISC (a soft disconnect)")
    void serverShuttingDown() {
        guarded(() -> {
            try (ScriptedNbdServer s = server(); NbdConnection c = connect(s)) {
                CompletableFuture<Void> f = c.read(0, garbage(4096));
                s.error(s.nextRequest().cookie(), true, 108, "bye");
                assertEquals(108, failure(f).nbdError());
                assertEquals(NbdProtocol.CMD_DISC, s.nextRequest().type());
                assertFalse(c.isOpen());
                assertContains("shutting down", failure(c.read(0, garbage(512))));
            }
        });
    }

    @Test
    @DisplayName("without structured replies: simple replies carry the data; an error reply fails only its request")
    void simpleReplies() {
        guarded(() -> {
            try (ScriptedNbdServer s = new ScriptedNbdServer(false, SIZE, 0, null); NbdConnection c = connect(s)) {
                assertFalse(c.structuredReplies());
                assertFalse(c.hasBlockStatus());
                ByteBuffer a = garbage(4096);
                CompletableFuture<Void> fa = c.read(0, a);
                CompletableFuture<Void> fb = c.read(4096, garbage(4096));
                ScriptedNbdServer.Request ra = s.nextRequest();
                ScriptedNbdServer.Request rb = s.nextRequest();
                s.simpleReply(rb.cookie(), 5, null);
                byte[] data = random(4096, 4);
                s.simpleReply(ra.cookie(), 0, data);
                fa.get(10, TimeUnit.SECONDS);
                assertArrayEquals(data, a.array());
                assertEquals(5, failure(fb).nbdError());
                assertTrue(c.isOpen());
                assertEquals(CorfsException.Reason.NOT_SUPPORTED, failure(c.flush()).reason());
            }
        });
    }

    @Test
    @DisplayName("requests obey the block sizes: split at the maximum, aligned to the minimum")
    void blockSizes() {
        guarded(() -> {
            try (ScriptedNbdServer s = new ScriptedNbdServer(true, SIZE, 0, new int[] {512, 4096, 65536});
                    NbdConnection c = connect(s)) {
                assertEquals(new BlockSizes(512, 4096, 65536), c.blockSizes());
                byte[] model = random(SIZE, 5);
                ByteBuffer dst = garbage(200_000);
                CompletableFuture<Void> f = c.read(1000, dst); // unaligned: widened to 512..201216
                List<ScriptedNbdServer.Request> seen = new ArrayList<>();
                long covered = 0;
                while (covered < 200_704) {
                    ScriptedNbdServer.Request r = s.nextRequest();
                    seen.add(r);
                    covered += r.length();
                }
                for (ScriptedNbdServer.Request r : seen) {
                    assertTrue(r.length() <= 65536 && r.offset() % 512 == 0 && r.length() % 512 == 0, r.toString());
                    s.data(r.cookie(), true, r.offset(), Arrays.copyOfRange(model, (int) r.offset(), (int) r.offset() + r.length()));
                }
                f.get(10, TimeUnit.SECONDS);
                assertArrayEquals(Arrays.copyOfRange(model, 1000, 201_000), dst.array());
                assertEquals(4, seen.size());
                assertEquals(CorfsException.Reason.INVALID_ARGUMENT, failure(c.write(100, ByteBuffer.allocate(512))).reason());
            }
            try (ScriptedNbdServer s = new ScriptedNbdServer(true, SIZE, 0, new int[] {3, 4096, 65536})) {
                NbdException e = assertThrows(NbdException.class, () -> connect(s));
                assertContains("invalid block sizes", e);
            }
        });
    }

    @Test
    @DisplayName("handshake refusals: not NBD, oldstyle, no fixed newstyle; each names the server")
    void handshakeRefusals() {
        guarded(() -> {
            byte[] http = "HTTP/1.1 400 Bad Request\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
            byte[] oldstyle = ByteBuffer.allocate(16).putLong(NbdProtocol.INIT_MAGIC).putLong(NbdProtocol.OLDSTYLE_MAGIC).array();
            byte[] notFixed = ByteBuffer.allocate(18).putLong(NbdProtocol.INIT_MAGIC).putLong(NbdProtocol.OPTS_MAGIC)
                    .putShort((short) 0).array();
            String[] expected = {"not an NBD server", "oldstyle", "fixed newstyle"};
            byte[][] preambles = {http, oldstyle, notFixed};
            for (int i = 0; i < preambles.length; i++) {
                try (ScriptedNbdServer s = ScriptedNbdServer.raw(preambles[i])) {
                    NbdException e = assertThrows(NbdException.class, () -> connect(s));
                    assertContains(expected[i], e);
                    assertTrue(e.getMessage().startsWith(s.uri() + ": "), e.getMessage());
                }
            }
        });
    }

    @Test
    @DisplayName("an unknown export is refused by name, and the client ends the haggling with NBD_OPT_ABORT")
    void unknownExportAborts() {
        guarded(() -> {
            try (ScriptedNbdServer s = ScriptedNbdServer.refusingExports()) {
                NbdException e = assertThrows(NbdException.class, () -> connect(s));
                assertContains("no export named 'disk': no such export", e);
                assertEquals(NbdProtocol.OPT_ABORT, s.optionAfterRefusal.get(10, TimeUnit.SECONDS));
            }
        });
    }

    @Test
    @DisplayName("close is idempotent and bounded while a request never gets its reply; that request fails")
    void closeWithPending() {
        guarded(() -> {
            try (ScriptedNbdServer s = server()) {
                NbdConnection c = connect(s);
                CompletableFuture<Void> f = c.read(0, garbage(4096));
                s.nextRequest();
                long t0 = System.nanoTime();
                c.close();
                c.close();
                assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(15));
                failure(f);
                assertContains("connection closed", failure(c.read(0, garbage(512))));
            }
        });
    }
}
