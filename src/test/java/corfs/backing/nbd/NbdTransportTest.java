package corfs.backing.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

@DisplayName("NBD transport and backing (no real server)")
class NbdTransportTest {
    private final NbdTransport transport = new NbdTransport();

    @Nested
    @DisplayName("SPEC and options, checked without I/O")
    class Validate {
        @Test
        @DisplayName("accepts the four NBD schemes only")
        void accepts() {
            assertTrue(transport.accepts("nbd://host/disk"));
            assertTrue(transport.accepts("NBD+UNIX:///disk?socket=/run/s"));
            assertTrue(transport.accepts("nbds://host"));
            assertTrue(transport.accepts("nbds+unix:///?socket=/s"));
            assertFalse(transport.accepts("/var/lib/disk.raw"));
            assertFalse(transport.accepts("http://host/disk"));
            assertEquals("nbd", transport.name());
            assertEquals(java.util.Set.of("tls-ca", "tls-cert", "tls-key", "tls-hostname"), transport.optionKeys());
        }

        @Test
        @DisplayName("defaults: 30 s per call and to connect, connections chosen by the server's multi-conn flag")
        void defaults() throws CorfsException {
            NbdTransport.Config c = NbdTransport.config("nbd://host:10810/disk", Map.of());
            assertEquals(Duration.ofSeconds(30), c.options().timeout());
            assertEquals(Duration.ofSeconds(30), c.options().connectTimeout());
            assertEquals(0, c.connections());
            assertNull(c.options().tlsCa());
            NbdTransport.Config t = NbdTransport.config("nbds://host/disk", Map.of("timeout", "5", "connections", "2",
                    "tls-ca", "/etc/ca.pem", "tls-cert", "/etc/c.pem", "tls-key", "/etc/k.pem", "tls-hostname", "srv.example"));
            assertEquals(Duration.ofSeconds(5), t.options().timeout());
            assertEquals(2, t.connections());
            assertEquals(Path.of("/etc/ca.pem"), t.options().tlsCa());
            assertEquals("srv.example", t.options().tlsHostname());
        }

        @Test
        @DisplayName("a long timeout (a mount's backing_timeout=0) keeps each connect attempt to 30 s")
        void longTimeoutBoundedConnect() throws CorfsException {
            NbdTransport.Config c = NbdTransport.config("nbd://host/disk", Map.of("timeout", "86400"));
            assertEquals(Duration.ofSeconds(86400), c.options().timeout());
            assertEquals(Duration.ofSeconds(30), c.options().connectTimeout());
            assertEquals(Duration.ofSeconds(5),
                    NbdTransport.config("nbd://host/disk", Map.of("timeout", "5")).options().connectTimeout());
        }

        @Test
        @DisplayName("refused with INVALID_ARGUMENT naming the problem")
        void refusals() {
            refused("nbd://host/disk", Map.of("tls-ca", "/etc/ca.pem"), "need an nbds://");
            refused("nbds://host/disk", Map.of("tls-cert", "/etc/c.pem"), "go together");
            refused("nbds://host/disk", Map.of("tls-ca", "ca.pem"), "absolute path");
            refused("nbds://host/disk", Map.of("tls-ca", ""), "absolute path");
            refused("nbds://host/disk", Map.of("tls-hostname", "a b"), "bad tls-hostname");
            refused("nbd://host/disk", Map.of("timeout", "0"), "timeout=0");
            refused("nbd://host/disk", Map.of("connections", "65"), "connections=65");
            refused("nbd://user@host/disk", Map.of(), "user names");
            refused("http://host/disk", Map.of(), "unknown scheme");
        }

        private void refused(String spec, Map<String, String> options, String expected) {
            CorfsException e = assertThrows(CorfsException.class, () -> transport.validate(spec, options));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains(expected), () -> "expected '" + expected + "' in: " + e.getMessage());
        }
    }

    @Test
    @DisplayName("identity samples: first and last block and one per eighth, aligned, distinct, inside the size")
    void sampleLayout() {
        assertEquals(List.of(), offsets(0, 1));
        assertEquals(List.of(0L), offsets(100, 1));
        assertEquals(List.of(0L, 4096L), offsets(8192, 1));
        List<Long> big = offsets(1L << 30, 512);
        assertEquals(9, big.size());
        assertEquals(0L, big.get(0));
        assertEquals((1L << 30) - 4096, big.get(8));
        for (long o : big) {
            assertEquals(0, o % 4096);
        }
        List<Long> odd = offsets(1_000_001, 1);
        assertEquals(1_000_001 - 4096, odd.get(odd.size() - 1), "the last block ends at the size");
        List<Long> wide = offsets(65536 * 16, 65536);
        assertEquals(0L, wide.get(0));
        assertEquals(65536L * 15, wide.get(wide.size() - 1));
        for (long o : wide) {
            assertEquals(0, o % 65536, "aligned to the minimum block size");
        }
    }

    private static List<Long> offsets(long size, int minimum) {
        return NbdBacking.sampleLayout(size, minimum).stream().map(s -> s.offset).toList();
    }

    @Nested
    @DisplayName("a hostile server behind the backing")
    class Hostile {
        private static final int SIZE = 64 * 1024;

        /** Opens a backing on another thread while this one answers the identity sample reads with {@code disk}. */
        private Backing open(ScriptedNbdServer s, byte[] disk, String timeout) throws Exception {
            CompletableFuture<Backing> opened = CompletableFuture.supplyAsync(() -> {
                try {
                    return transport.open(s.uri(), Map.of("timeout", timeout));
                } catch (IOException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });
            while (!opened.isDone()) {
                ScriptedNbdServer.Request r;
                try {
                    r = s.nextRequest();
                } catch (IOException e) {
                    break;
                }
                s.data(r.cookie(), true, r.offset(), Arrays.copyOfRange(disk, (int) r.offset(), (int) r.offset() + r.length()));
                if (opened.isDone()) {
                    break;
                }
                Thread.sleep(1);
                if (r.offset() + r.length() == SIZE) {
                    break; // the last sample: open completes now
                }
            }
            return opened.get(10, TimeUnit.SECONDS);
        }

        private byte[] disk() {
            byte[] d = new byte[SIZE];
            new java.util.Random(1).nextBytes(d);
            return d;
        }

        @Test
        @DisplayName("a reply for an unknown cookie: the read fails with an IOException, the buffer is not filled")
        void unknownCookie() {
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                try (ScriptedNbdServer s = new ScriptedNbdServer(true, SIZE, NbdProtocol.FLAG_SEND_FLUSH, null)) {
                    byte[] disk = disk();
                    try (Backing b = open(s, disk, "2")) {
                        ByteBuffer dst = ByteBuffer.allocate(4096);
                        CompletableFuture<Void> read = CompletableFuture.runAsync(() -> {
                            try {
                                b.readFully(dst, 0);
                            } catch (IOException e) {
                                throw new java.util.concurrent.CompletionException(e);
                            }
                        });
                        ScriptedNbdServer.Request r = s.nextRequest();
                        s.data(r.cookie() + 1000, true, r.offset(), Arrays.copyOf(disk, r.length()));
                        Throwable e = assertThrows(java.util.concurrent.ExecutionException.class,
                                () -> read.get(20, TimeUnit.SECONDS)).getCause();
                        assertTrue(e instanceof IOException, e.toString());
                        assertTrue(e.getMessage().contains(s.uri()), e.getMessage());
                        assertEquals(0, dst.position());
                        assertArrayEquals(new byte[4096], dst.array(), "nothing of the bad reply landed");
                    }
                }
            });
        }

        @Test
        @DisplayName("block status extents mapped: hole+zero is HOLE, zero is ZERO, a hole that may not read as zeros is DATA")
        void allocationKinds() {
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                try (ScriptedNbdServer s = new ScriptedNbdServer(true, SIZE, NbdProtocol.FLAG_SEND_FLUSH, null)) {
                    byte[] disk = disk();
                    try (Backing b = open(s, disk, "5")) {
                        int[][] cases = {{3, 0, 4096}, {2, 0, 4096}, {1, 0, 4096}, {0, 0, 4096}};
                        Allocation.Kind[] expected = {Allocation.Kind.HOLE, Allocation.Kind.ZERO, Allocation.Kind.DATA,
                                Allocation.Kind.DATA};
                        for (int i = 0; i < cases.length; i++) {
                            CompletableFuture<Allocation> a = CompletableFuture.supplyAsync(() -> {
                                try {
                                    return b.allocation(8192, SIZE);
                                } catch (IOException e) {
                                    throw new java.util.concurrent.CompletionException(e);
                                }
                            });
                            ScriptedNbdServer.Request r = s.nextRequest();
                            assertEquals(NbdProtocol.CMD_BLOCK_STATUS, r.type());
                            // one extent of the case's state, then one of another: the answer stops there
                            s.blockStatus(r.cookie(), ScriptedNbdServer.CONTEXT, 4096, cases[i][0], 4096, cases[i][0] ^ 1);
                            assertEquals(new Allocation(expected[i], i >= 2 ? 8192 : 4096), a.get(10, TimeUnit.SECONDS),
                                    "state " + cases[i][0]);
                        }
                    }
                }
            });
        }
    }
}
