package corfs.backing.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The HTTP range reader against a real (JDK) HTTP server on 127.0.0.1 that produces protocol faults on
 * demand. Every successful read is compared byte for byte with the served content.
 */
@DisplayName("HTTP range reader")
class HttpRangeReaderTest {
    private static final Duration GUARD = Duration.ofSeconds(60);
    private byte[] content;
    private FaultServer server;

    @BeforeEach
    void start() throws IOException {
        content = new byte[1 << 20];
        new Random(42).nextBytes(content);
        server = new FaultServer(content);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private static HttpOptions opts(int timeoutSeconds, int connections) {
        return new HttpOptions(Duration.ofSeconds(timeoutSeconds), connections, null, null);
    }

    private void assertRange(HttpRangeReader r, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        r.readFully(b, offset);
        assertEquals(length, b.position());
        assertArrayEquals(Arrays.copyOfRange(content, (int) offset, (int) offset + length), b.array(),
                "bytes at " + offset);
    }

    @Test
    @DisplayName("probe learns size and ETag; concurrent random reads are exact and at most `connections` are on the wire")
    void readsExactlyWithinTheConnectionLimit() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 3))) {
                assertEquals(content.length, r.size());
                assertEquals("\"v1\"", r.object().etag());
                server.clientPorts.clear(); // the open's probe used a connection of its own
                Random rnd = new Random(7);
                List<CompletableFuture<Void>> reads = new ArrayList<>();
                List<ByteBuffer> bufs = new ArrayList<>();
                List<Integer> offsets = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    int len = 1 + rnd.nextInt(200_000);
                    int off = rnd.nextInt(content.length - len + 1);
                    ByteBuffer b = ByteBuffer.allocateDirect(len);
                    bufs.add(b);
                    offsets.add(off);
                    reads.add(r.read(b, off));
                }
                CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
                for (int i = 0; i < bufs.size(); i++) {
                    ByteBuffer b = bufs.get(i);
                    assertFalse(b.hasRemaining());
                    byte[] got = new byte[b.capacity()];
                    b.flip().get(got);
                    int off = offsets.get(i);
                    assertArrayEquals(Arrays.copyOfRange(content, off, off + got.length), got, "read " + i);
                }
                // Connections, not handlers at once: a handler counts itself out only after its body was sent.
                assertTrue(server.clientPorts.size() <= 3, "the reader used " + server.clientPorts.size()
                        + " connections");
                assertRange(r, content.length - 1, 1);
                assertRange(r, 0, content.length);
                assertEquals("\"v1\"", server.lastHeaders.get("if-match"));
                CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(2),
                        content.length - 1));
                assertTrue(e.getMessage().contains("outside"), e.getMessage());
            }
        });
    }

    @Test
    @DisplayName("a server that answers 200 to a range request is refused at open, without downloading the object")
    void refusesNoRangeSupport() {
        server.fault = FaultServer.Fault.IGNORE_RANGE;
        CorfsException e = assertThrows(CorfsException.class, () -> HttpRangeReader.open(server.uri("/data"), opts(10, 2)));
        assertTrue(e.getMessage().contains("does not honour range requests"), e.getMessage());
    }

    @Test
    @DisplayName("a server with neither a strong ETag nor Last-Modified is refused at open")
    void refusesNoValidator() {
        server.fault = FaultServer.Fault.NO_VALIDATOR;
        CorfsException e = assertThrows(CorfsException.class, () -> HttpRangeReader.open(server.uri("/data"), opts(10, 2)));
        assertTrue(e.getMessage().contains("neither a strong ETag nor Last-Modified"), e.getMessage());
    }

    @Nested
    @DisplayName("never wrong data")
    class NeverWrongData {
        @Test
        @DisplayName("a wrong Content-Range, a longer and a shorter body are EIO, and the reader still works after")
        void protocolViolations() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    for (FaultServer.Fault f : List.of(FaultServer.Fault.WRONG_RANGE, FaultServer.Fault.LONG_BODY,
                            FaultServer.Fault.SHORT_BODY)) {
                        server.fault = f;
                        CorfsException e = assertThrows(CorfsException.class,
                                () -> r.readFully(ByteBuffer.allocate(1000), 5000), f.name());
                        assertEquals(CorfsException.Reason.IO, e.reason());
                        assertTrue(e.getMessage().contains("Content-Range") || e.getMessage().contains("bytes"),
                                e.getMessage());
                    }
                    server.fault = FaultServer.Fault.NONE;
                    assertRange(r, 5000, 1000);
                }
            });
        }

        @Test
        @DisplayName("an object replaced on the server: 412, 'backing changed', sticky even once it is back")
        void changedIsSticky() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    assertRange(r, 0, 4096);
                    server.etag = "\"v2\"";
                    CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0));
                    assertInstanceOf(BackingChangedException.class, e);
                    assertTrue(e.getMessage().contains("backing changed"), e.getMessage());
                    server.etag = "\"v1\"";
                    int before = server.requests.get();
                    assertInstanceOf(BackingChangedException.class,
                            assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0)));
                    assertEquals(before, server.requests.get(), "a changed backing is not asked again");
                }
            });
        }

        @Test
        @DisplayName("412 to the very first conditional range: 'precondition failed', naming the server's validators")
        void preconditionFailedOnTheFirstRead() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    server.etag = "\"v2\""; // the server no longer honours the validator it sent at open
                    CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0));
                    assertInstanceOf(BackingChangedException.class, e);
                    assertTrue(e.getMessage().startsWith("precondition failed:") && e.getMessage().contains("first")
                            && e.getMessage().contains("412"), e.getMessage());
                }
            });
        }

        @Test
        @DisplayName("Last-Modified instead of an ETag: If-Unmodified-Since, and a newer date in an answer is 'changed'")
        void lastModified() {
            assertTimeoutPreemptively(GUARD, () -> {
                server.fault = FaultServer.Fault.LAST_MODIFIED_ONLY;
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    assertEquals(server.lastModified, r.object().lastModified());
                    assertRange(r, 10, 1000);
                    assertEquals(server.lastModified, server.lastHeaders.get("if-unmodified-since"));
                    server.lastModified = "Tue, 02 Jun 2026 10:00:00 GMT";
                    server.ignoreConditions = true;
                    assertInstanceOf(BackingChangedException.class,
                            assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0)));
                }
            });
        }

        @Test
        @DisplayName("a server that ignores If-Match but names the new ETag: 'changed', not the new data")
        void newEtagDespiteIfMatch() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    server.etag = "\"v2\"";
                    server.ignoreConditions = true;
                    assertInstanceOf(BackingChangedException.class,
                            assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0)));
                }
            });
        }
    }

    @Nested
    @DisplayName("errors and retries")
    class Errors {
        @Test
        @DisplayName("503 twice, then the data: retried within the deadline")
        void retries5xx() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    int before = server.requests.get();
                    server.failures.set(2);
                    assertRange(r, 100, 100_000);
                    assertEquals(before + 3, server.requests.get());
                }
            });
        }

        @Test
        @DisplayName("a connection cut half-way through a body: retried from the first byte not received")
        void resumesAfterACut() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    server.fault = FaultServer.Fault.CUT_ONCE;
                    server.ranges.clear();
                    assertRange(r, 1000, 400_000);
                    assertEquals(2, server.ranges.size(), server.ranges.toString());
                    String resumed = server.ranges.get(1);
                    long from = Long.parseLong(resumed.substring(6, resumed.indexOf('-')));
                    assertTrue(from > 1000 && from <= 1000 + 200_000, resumed);
                }
            });
        }

        @Test
        @DisplayName("503 for ever: EIO at the deadline naming the last error, then reads work again")
        void gives5xxUpAtTheDeadline() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(2, 2))) {
                    server.failures.set(Integer.MAX_VALUE);
                    long t0 = System.nanoTime();
                    CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0));
                    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
                    assertTrue(ms >= 1900, "gave up after " + ms + " ms");
                    assertTrue(e.getMessage().contains("HTTP 503"), e.getMessage());
                    server.failures.set(0);
                    assertRange(r, 0, 10);
                }
            });
        }

        @Test
        @DisplayName("404, 403 and 410 fail at once with the status in the message")
        void clientErrors() {
            assertTimeoutPreemptively(GUARD, () -> {
                CorfsException e = assertThrows(CorfsException.class,
                        () -> HttpRangeReader.open(server.uri("/missing"), opts(10, 2)));
                assertTrue(e.getMessage().contains("HTTP 404"), e.getMessage());
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                    for (int status : new int[] {403, 410}) {
                        server.failStatus = status;
                        server.failures.set(1);
                        int before = server.requests.get();
                        CorfsException f = assertThrows(CorfsException.class,
                                () -> r.readFully(ByteBuffer.allocate(10), 0));
                        assertTrue(f.getMessage().contains("HTTP " + status), f.getMessage());
                        assertEquals(before + 1, server.requests.get(), "no retry of " + status);
                    }
                }
            });
        }

        @Test
        @DisplayName("a body that stalls: EIO at the deadline without blocking the caller, and no byte lands after")
        void stallMidBody() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(2, 2))) {
                    server.fault = FaultServer.Fault.STALL_MID_BODY;
                    ByteBuffer b = ByteBuffer.allocate(200_000);
                    Arrays.fill(b.array(), (byte) 0x55);
                    long t0 = System.nanoTime();
                    CompletableFuture<Void> f = r.read(b, 0);
                    assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) < 1000, "read() blocked");
                    ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(20, TimeUnit.SECONDS));
                    assertTrue(e.getCause().getMessage().contains("within 2 s"), e.getCause().getMessage());
                    assertEquals(0, b.position());
                    byte[] atFailure = b.array().clone();
                    server.fault = FaultServer.Fault.NONE;
                    server.stallRelease.countDown();
                    Thread.sleep(500);
                    assertArrayEquals(atFailure, b.array(), "bytes landed in the buffer after the read failed");
                    assertRange(r, 0, 200_000);
                }
            });
        }
    }

    @Nested
    @DisplayName("redirects and credentials")
    class Redirects {
        @Test
        @DisplayName("a permanent redirect is followed; a loop is cut after 5 hops")
        void follows() {
            assertTimeoutPreemptively(GUARD, () -> {
                try (HttpRangeReader r = HttpRangeReader.open(server.uri("/moved"), opts(10, 2))) {
                    assertRange(r, 1234, 5678);
                }
                CorfsException e = assertThrows(CorfsException.class,
                        () -> HttpRangeReader.open(server.uri("/loop"), opts(10, 2)));
                assertTrue(e.getMessage().contains("redirected more than 5"), e.getMessage());
            });
        }

        @Test
        @DisplayName("header-file and URL credentials go to the origin only, never across a redirect to another host")
        void credentialsStayHome(@TempDir Path dir) {
            assertTimeoutPreemptively(GUARD, () -> {
                try (FaultServer other = new FaultServer(content)) {
                    server.redirectTarget = other.uri("/data");
                    Path h = dir.resolve("headers");
                    Files.writeString(h, "Authorization: Bearer t0ken\n");
                    HttpOptions o = new HttpOptions(Duration.ofSeconds(10), 2, null, h);
                    try (HttpRangeReader r = HttpRangeReader.open(server.uri("/away"), o)) {
                        assertRange(r, 0, 100);
                    }
                    assertTrue(server.authorizations.stream().allMatch("Bearer t0ken"::equals), server.authorizations.toString());
                    assertTrue(other.authorizations.stream().allMatch("-"::equals), other.authorizations.toString());
                    java.net.URI withUser = java.net.URI.create(server.uri("/data").toString()
                            .replace("http://", "http://alice:pw@"));
                    try (HttpRangeReader r = HttpRangeReader.open(withUser, opts(10, 2))) {
                        assertFalse(r.location().contains("pw"), r.location());
                        assertRange(r, 0, 100);
                    }
                    assertEquals("Basic YWxpY2U6cHc=", server.authorizations.get(server.authorizations.size() - 1));
                }
            });
        }
    }

    @Test
    @DisplayName("a read cancelled mid-body: no byte lands in its buffer after cancel() returns, the reader goes on")
    void cancelStopsWrites() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2))) {
                server.fault = FaultServer.Fault.STALL_MID_BODY;
                ByteBuffer b = ByteBuffer.allocate(200_000);
                Arrays.fill(b.array(), (byte) 0x55);
                CompletableFuture<Void> f = r.read(b, 0);
                assertTrue(server.stalled.await(10, TimeUnit.SECONDS));
                assertTrue(f.cancel(false));
                byte[] atCancel = b.array().clone();
                server.fault = FaultServer.Fault.NONE;
                server.stallRelease.countDown();
                Thread.sleep(500);
                assertArrayEquals(atCancel, b.array(), "bytes landed in the buffer after the read was cancelled");
                assertEquals(0, b.position());
                assertRange(r, 0, 200_000);
            }
        });
    }

    @Test
    @DisplayName("close fails pending reads and is idempotent")
    void closeFailsPending() {
        assertTimeoutPreemptively(GUARD, () -> {
            HttpRangeReader r = HttpRangeReader.open(server.uri("/data"), opts(30, 2));
            server.fault = FaultServer.Fault.STALL_MID_BODY;
            CompletableFuture<Void> f = r.read(ByteBuffer.allocate(100_000), 0);
            assertTrue(server.stalled.await(10, TimeUnit.SECONDS));
            r.close();
            r.close();
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
            assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(1), 0));
            assertEquals(Map.of(), Map.of());
        });
    }
}
