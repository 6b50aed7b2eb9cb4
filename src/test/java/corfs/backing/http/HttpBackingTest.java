package corfs.backing.http;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * {@link HttpTransport} and {@link HttpBacking} through the {@link Backing} interface, against the
 * fault-injecting JDK server on 127.0.0.1 (nginx and s3proxy in the native tests). Every successful read
 * is compared byte for byte with the served content.
 */
@DisplayName("HTTP backing")
class HttpBackingTest {
    private static final Duration GUARD = Duration.ofSeconds(60);
    private static final int SIZE = 3 << 20;
    private byte[] content;
    private FaultServer server;

    @BeforeEach
    void start() throws IOException {
        content = new byte[SIZE];
        new Random(17).nextBytes(content);
        server = new FaultServer(content);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private Backing open(String path, Map<String, String> options) throws IOException {
        return new HttpTransport().open(server.uri(path).toString(), options);
    }

    private void assertRange(Backing b, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length + 7);
        dst.position(3).limit(3 + length);
        b.readFully(dst, offset);
        assertEquals(3 + length, dst.position(), "readFully advanced the position by the length");
        assertArrayEquals(Arrays.copyOfRange(content, (int) offset, (int) offset + length),
                Arrays.copyOfRange(dst.array(), 3, 3 + length), "bytes at " + offset);
        assertArrayEquals(new byte[3], Arrays.copyOf(dst.array(), 3), "wrote before the position");
        assertArrayEquals(new byte[4], Arrays.copyOfRange(dst.array(), 3 + length, 7 + length), "wrote past the limit");
    }

    @Test
    @DisplayName("long reads are split into pieces on several connections, exact at odd offsets and lengths")
    void splitReads() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = open("/data", Map.of("connections", "4"))) {
                assertEquals(SIZE, b.size());
                assertEquals(4, b.maxInFlight());
                server.clientPorts.clear(); // the open's probe used a connection of its own
                int before = server.requests.get();
                assertRange(b, 1, 1 << 20);
                assertTrue(server.requests.get() - before >= 4, "a 1 MiB read was sent as "
                        + (server.requests.get() - before) + " requests");
                Random r = new Random(5);
                for (int i = 0; i < 40; i++) {
                    int len = 1 + r.nextInt(1_500_000);
                    long off = r.nextInt(SIZE - len + 1);
                    assertRange(b, off, len);
                }
                assertRange(b, 0, SIZE);
                assertRange(b, SIZE - 1, 1);
                assertTrue(server.maxInFlight.get() >= 2, "pieces never overlapped on the wire");
                // Connections, not handlers at once: a handler counts itself out only after its body was sent.
                assertTrue(server.clientPorts.size() <= 4, "more than connections=4 were used: "
                        + server.clientPorts.size());
                assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(20), SIZE - 10));
                assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(1), -1));
            }
        });
    }

    @Test
    @DisplayName("a piece failing (404) fails the read at once, and no byte of the other pieces lands after")
    void onePieceFails() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = open("/data", Map.of("connections", "4", "timeout", "30"))) {
                server.fault = FaultServer.Fault.STALL_MID_BODY;
                server.failStatus = 404;
                server.failures.set(1);
                ByteBuffer dst = ByteBuffer.allocate(1 << 20);
                Arrays.fill(dst.array(), (byte) 0x55);
                CorfsException e = assertThrows(CorfsException.class, () -> b.readFully(dst, 0));
                assertTrue(e.getMessage().contains("HTTP 404") && e.getMessage().contains("127.0.0.1"), e.getMessage());
                assertEquals(Reason.IO, e.reason());
                byte[] atFailure = dst.array().clone();
                server.fault = FaultServer.Fault.NONE;
                server.stallRelease.countDown();
                Thread.sleep(500);
                assertArrayEquals(atFailure, dst.array(), "bytes landed in the buffer after readFully threw");
                assertRange(b, 0, 1 << 20);
            }
        });
    }

    @Test
    @DisplayName("429 and 503 are retried within the timeout, through a split read too")
    void retries() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = open("/data", Map.of())) {
                for (int status : new int[] {429, 503}) {
                    server.failStatus = status;
                    server.failures.set(3);
                    assertRange(b, 4096, 1 << 20);
                    assertEquals(0, server.failures.get());
                }
            }
        });
    }

    @Test
    @DisplayName("the object replaced: 'backing changed' for reads, allocation and identity, for ever")
    void changedIsSticky() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = open("/data", Map.of())) {
                BackingIdentity before = b.identity();
                assertEquals(before, b.identity());
                assertRange(b, 0, 4096);
                server.etag = "\"v2\"";
                assertInstanceOf(BackingChangedException.class,
                        assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(600_000), 10)));
                server.etag = "\"v1\"";
                assertInstanceOf(BackingChangedException.class,
                        assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(10), 0)));
                assertInstanceOf(BackingChangedException.class,
                        assertThrows(CorfsException.class, () -> b.allocation(0, 10)));
                assertInstanceOf(BackingChangedException.class, assertThrows(CorfsException.class, b::identity));
            }
        });
    }

    @Test
    @DisplayName("allocation is UNKNOWN to the end; openWriter is READ_ONLY with the reason; close is idempotent")
    void readOnlyAndUnknown() {
        assertTimeoutPreemptively(GUARD, () -> {
            Backing b = open("/data", Map.of());
            assertEquals(new Allocation(Allocation.Kind.UNKNOWN, SIZE), b.allocation(0, Long.MAX_VALUE));
            assertEquals(new Allocation(Allocation.Kind.UNKNOWN, 10), b.allocation(SIZE - 10, 100));
            assertEquals(new Allocation(Allocation.Kind.UNKNOWN, 7), b.allocation(5, 7));
            assertThrows(IOException.class, () -> b.allocation(SIZE, 1));
            assertThrows(IOException.class, () -> b.allocation(-1, 1));
            CorfsException w = assertThrows(CorfsException.class, b::openWriter);
            assertEquals(Reason.READ_ONLY, w.reason());
            assertTrue(w.getMessage().contains("read-only: commit needs a writable file or NBD backing"), w.getMessage());
            b.close();
            b.close();
            assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(10), 0));
        });
    }

    @Test
    @DisplayName("location and messages never show user info or query values; identity is size and ETag")
    void noSecrets() {
        assertTimeoutPreemptively(GUARD, () -> {
            String spec = server.uri("/data").toString().replace("http://", "http://alice:pa55word@")
                    + "?X-Amz-Signature=deadbeef&token=t0k3n&part=1";
            try (Backing b = new HttpTransport().open(spec, Map.of())) {
                assertFalse(b.location().contains("pa55word") || b.location().contains("deadbeef")
                        || b.location().contains("t0k3n"), b.location());
                assertTrue(b.location().contains("part=1") && b.location().contains("/data"), b.location());
                assertEquals("http:size=" + SIZE + ":etag=\"v1\"", b.identity().token());
                assertEquals("size=" + SIZE + " etag \"v1\"", b.identity().describe());
                server.fault = FaultServer.Fault.SHORT_BODY;
                CorfsException e = assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(1000), 0));
                assertFalse(e.getMessage().contains("pa55word") || e.getMessage().contains("deadbeef"), e.getMessage());
            }
        });
    }

    @Nested
    @DisplayName("identity token")
    class Identity {
        @Test
        @DisplayName("Last-Modified: no spaces in the token; the description keeps them")
        void lastModified() {
            BackingIdentity id = HttpBacking.identityOf(new RemoteObject(5, null, "Mon, 01 Jun 2026 10:00:00 GMT"));
            assertEquals("http:size=5:last-modified=Mon,%2001%20Jun%202026%2010:00:00%20GMT", id.token());
            assertEquals("size=5 last-modified Mon, 01 Jun 2026 10:00:00 GMT", id.describe());
            assertEquals(5, id.size());
        }

        @Test
        @DisplayName("a long or hostile ETag: hashed into a printable token, the description without control characters")
        void hostileEtag() {
            String longTag = "\"" + "x".repeat(250) + "\"";
            BackingIdentity a = HttpBacking.identityOf(new RemoteObject(9, longTag, null));
            assertTrue(a.token().startsWith("http:size=9:etag-sha256=") && a.token().length() <= 200, a.token());
            assertNotEquals(a, HttpBacking.identityOf(new RemoteObject(9, longTag.replace('x', 'y'), null)));
            assertEquals(a, HttpBacking.identityOf(new RemoteObject(9, longTag, null)));
            BackingIdentity odd = HttpBacking.identityOf(new RemoteObject(9, "\"a\u0007b\u00e9 %\"", null));
            assertEquals("http:size=9:etag=\"a%07b%C3%A9%20%25\"", odd.token());
            assertTrue(odd.describe().chars().noneMatch(Character::isISOControl), odd.describe());
            assertNotEquals(HttpBacking.identityOf(new RemoteObject(9, "\"a\"", null)),
                    HttpBacking.identityOf(new RemoteObject(10, "\"a\"", null)), "the size is part of the token");
        }
    }

    @Nested
    @DisplayName("transport: SPEC and options checked without I/O")
    class Transport {
        private final HttpTransport t = new HttpTransport();

        @Test
        @DisplayName("accepts http:// and https:// in any case, nothing else")
        void accepts() {
            assertTrue(t.accepts("http://h/x"));
            assertTrue(t.accepts("HTTPS://h/x"));
            assertTrue(t.accepts("Http://h/x"));
            assertFalse(t.accepts("/srv/x.raw"));
            assertFalse(t.accepts("s3://b/k"));
            assertFalse(t.accepts("ftp://h/x"));
            assertFalse(t.accepts("httpx://h/x"));
            assertFalse(t.accepts(null));
            assertEquals("http", t.name());
            assertEquals(Set.of("ca", "header-file"), t.optionKeys());
        }

        @Test
        @DisplayName("good SPECs and options validate without a server, bad ones are INVALID_ARGUMENT")
        void validate() throws Exception {
            Map<String, String> ok = new HashMap<>(Map.of("timeout", "86400", "connections", "64", "ca",
                    "/nonexistent/ca.pem", "header-file", "/nonexistent/headers"));
            t.validate("http://127.0.0.1:1/img.raw", ok);
            t.validate("https://user:pw@example.invalid/a%20b?x=1", Map.of());
            for (String bad : new String[] {"http://", "http:///path", "http://h/a b", "http://h/x#frag", "ftp://h/x",
                    "http://h:port/x"}) {
                CorfsException e = assertThrows(CorfsException.class, () -> t.validate(bad, Map.of()), bad);
                assertEquals(Reason.INVALID_ARGUMENT, e.reason(), bad);
            }
            for (Map<String, String> bad : java.util.List.of(Map.of("timeout", "0"), Map.of("timeout", "x"),
                    Map.of("connections", "65"), Map.of("connections", "0"), Map.of("ca", "relative.pem"),
                    Map.of("header-file", ""), Map.of("tmeout", "5"), Map.of("endpoint", "http://x"))) {
                CorfsException e = assertThrows(CorfsException.class, () -> t.validate("http://h/x", bad), bad.toString());
                assertEquals(Reason.INVALID_ARGUMENT, e.reason(), bad.toString());
            }
        }

        @Test
        @DisplayName("options: timeout 30 s and 4 connections by default; paths kept")
        void options() throws Exception {
            HttpOptions d = HttpTransport.options(Map.of(), t.optionKeys());
            assertEquals(Duration.ofSeconds(30), d.timeout());
            assertEquals(4, d.connections());
            HttpOptions o = HttpTransport.options(Map.of("timeout", "5", "connections", "8", "ca", "/a/ca.pem"),
                    t.optionKeys());
            assertEquals(Duration.ofSeconds(5), o.timeout());
            assertEquals(8, o.connections());
            assertEquals(Path.of("/a/ca.pem"), o.ca());
        }

        @Test
        @DisplayName("open: nothing listening fails at once, one line naming the address and 'connection refused'; a missing header-file is named")
        void openFails() throws Exception {
            assertTimeoutPreemptively(GUARD, () -> {
                int port;
                try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1,
                        java.net.InetAddress.getByName("127.0.0.1"))) {
                    port = s.getLocalPort();
                }
                CorfsException e = assertThrows(CorfsException.class,
                        () -> t.open("http://127.0.0.1:" + port + "/x", Map.of("timeout", "30")));
                assertTrue(e.getMessage().contains("127.0.0.1:" + port) && !e.getMessage().contains("\n"), e.getMessage());
                assertTrue(e.getMessage().contains("connection refused"), e.getMessage());
                assertFalse(e.getMessage().contains("did not answer within"),
                        "a refused connection is an answer: open fails at once, not at the timeout: " + e.getMessage());
                CorfsException h = assertThrows(CorfsException.class, () -> t.open(server.uri("/data").toString(),
                        Map.of("header-file", "/nonexistent/headers")));
                assertTrue(h.getMessage().contains("/nonexistent/headers"), h.getMessage());
            });
        }
    }

    @Test
    @DisplayName("a body cut, a wrong Content-Range, a long body in a split read: retried or EIO, never wrong data")
    void cutsNeverGiveWrongData() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = open("/data", Map.of())) {
                for (int i = 0; i < 3; i++) {
                    server.fault = FaultServer.Fault.CUT_ONCE;
                    assertRange(b, 1000L * i, 700_000);
                }
                server.fault = FaultServer.Fault.WRONG_RANGE;
                assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(700_000), 0));
                server.fault = FaultServer.Fault.LONG_BODY;
                assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(700_000), 0));
                server.fault = FaultServer.Fault.NONE;
                assertRange(b, 0, 700_000);
            }
        });
    }
}
