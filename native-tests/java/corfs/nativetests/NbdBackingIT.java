package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingTimeoutException;
import corfs.backing.nbd.NbdBacking;
import corfs.backing.nbd.NbdTransport;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The NBD backing through the {@link Backing} interface against real servers (qemu-nbd, nbdkit and its
 * filters) on Unix sockets and loopback TCP: reads over several connections equal the exported file,
 * allocation in both reply styles and without structured replies, identity, a server killed and
 * restarted under a live backing (same disk: serves again; another disk: "backing changed"), error
 * replies, stalls, the commit writer, TLS.
 */
@DisplayName("NBD backing against real servers")
class NbdBackingIT {
    private static final Duration HANG_GUARD = Duration.ofSeconds(90);
    private static final int MIB = 1 << 20;
    private static final int SIZE = 32 * MIB;
    private static final int REGION = 64 * 1024;

    @RegisterExtension
    final NbdServers servers = new NbdServers();

    private final NbdTransport transport = new NbdTransport();

    /** Which 64 KiB regions of the last {@link #sparseImage} hold data. */
    private boolean[] written;

    /** A sparse image: random data in some 64 KiB-aligned regions (seeded), holes elsewhere. */
    private byte[] sparseImage(Path file, long seed) throws IOException {
        byte[] model = new byte[SIZE];
        written = new boolean[SIZE / REGION];
        Random r = new Random(seed);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(SIZE);
            for (int i = 0; i < 40; i++) {
                int at = r.nextInt(SIZE / REGION) * REGION;
                int len = Math.min(SIZE - at, (1 + r.nextInt(8)) * REGION);
                byte[] data = new byte[len];
                r.nextBytes(data);
                System.arraycopy(data, 0, model, at, len);
                Arrays.fill(written, at / REGION, (at + len) / REGION, true);
                f.seek(at);
                f.write(data);
            }
            // the first and last blocks hold data too, so that the identity samples see content
            byte[] head = new byte[REGION];
            r.nextBytes(head);
            for (int at : new int[] {0, SIZE - REGION}) {
                System.arraycopy(head, 0, model, at, REGION);
                written[at / REGION] = true;
                f.seek(at);
                f.write(head);
            }
        }
        return model;
    }

    private Backing open(String uri, Map<String, String> options) throws IOException {
        transport.validate(uri, options);
        return transport.open(uri, options);
    }

    /** Reads the whole backing in 4 MiB calls (and an odd tail) from 8 threads at once, in random order. */
    private static byte[] readConcurrently(Backing b) throws Exception {
        byte[] out = new byte[(int) b.size()];
        List<Integer> starts = new ArrayList<>();
        for (int at = 0; at < out.length; at += 3 * MIB + 4096) {
            starts.add(at);
        }
        Collections.shuffle(starts, new Random(5));
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int at : starts) {
                done.add(pool.submit(() -> {
                    int n = Math.min(3 * MIB + 4096, out.length - at);
                    ByteBuffer dst = ByteBuffer.allocateDirect(n);
                    b.readFully(dst, at);
                    assertEquals(n, dst.position(), "position advanced by the read");
                    dst.flip().get(out, at, n);
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        return out;
    }

    /** Walks allocation over the whole backing; checks it against the model; returns the kinds seen. */
    private List<Allocation.Kind> checkAllocation(Backing b, byte[] model) throws IOException {
        List<Allocation.Kind> kinds = new ArrayList<>();
        long at = 0;
        while (at < b.size()) {
            Allocation a = b.allocation(at, b.size() - at);
            assertTrue(a.length() >= 1 && at + a.length() <= b.size(), "extent " + a + " at " + at + " inside the size");
            if (a.readsAsZeros()) {
                for (long i = at; i < at + a.length(); i++) {
                    if (model[(int) i] != 0) {
                        throw new AssertionError(a + " at " + at + " claims zeros but byte " + i + " is data");
                    }
                }
            }
            if (!kinds.contains(a.kind())) {
                kinds.add(a.kind());
            }
            at += a.length();
        }
        // a bounded question is answered within its bound
        Allocation small = b.allocation(REGION, 1);
        assertEquals(1, small.length());
        return kinds;
    }

    private static void awaitLive(NbdBacking b, int n) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (b.liveConnections() < n && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        assertEquals(n, b.liveConnections(), "connections opened in the background");
    }

    private static void signal(NbdServers.Server s, String sig) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + sig, Long.toString(s.process().pid())).inheritIO().start();
        assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + sig);
    }

    /** Reads until it works (the keeper reconnects in the background); fails after 30 s. */
    private static void readWhenBack(Backing b, byte[] model) throws Exception {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        IOException last = null;
        while (System.nanoTime() < until) {
            ByteBuffer dst = ByteBuffer.allocate(MIB);
            try {
                b.readFully(dst, 0);
                assertArrayEquals(Arrays.copyOf(model, MIB), dst.array(), "the same backing serves the same bytes");
                return;
            } catch (IOException e) {
                last = e;
                Thread.sleep(100);
            }
        }
        throw new AssertionError("the backing did not serve again", last);
    }

    @Nested
    @DisplayName("reads and allocation")
    class Reads {
        @Test
        @DisplayName("qemu-nbd with multi-conn: 4 connections, concurrent out-of-order reads equal the file; holes are HOLE")
        void qemuNbdMultiConn() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r", "-e", "8", "-x", "disk");
                try (NbdBacking b = (NbdBacking) open(s.uri("disk"), Map.of())) {
                    assertEquals(SIZE, b.size());
                    assertEquals(4, b.connections(), "default with multi-conn");
                    assertEquals(32, b.maxInFlight());
                    assertTrue(b.pieceSize() >= 256 * 1024, "pieces of at least 256 KiB: " + b.pieceSize());
                    awaitLive(b, 4);
                    assertArrayEquals(model, readConcurrently(b));
                    ByteBuffer odd = ByteBuffer.allocate(10_001);
                    b.readFully(odd, 1_000_003);
                    assertArrayEquals(Arrays.copyOfRange(model, 1_000_003, 1_010_004), odd.array());
                    List<Allocation.Kind> kinds = checkAllocation(b, model);
                    assertTrue(kinds.contains(Allocation.Kind.HOLE) && kinds.contains(Allocation.Kind.DATA), kinds.toString());
                    // every hole region of the file is reported as reading zeros
                    for (int r = 0; r < written.length; r++) {
                        if (!written[r]) {
                            assertTrue(b.allocation((long) r * REGION, REGION).readsAsZeros(), "region " + r);
                        }
                    }
                    CorfsException outside = assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(2), SIZE - 1));
                    assertEquals(CorfsException.Reason.INVALID_ARGUMENT, outside.reason());
                    assertThrows(CorfsException.class, () -> b.allocation(SIZE, 1));
                }
            });
        }

        @Test
        @DisplayName("qemu-nbd taking one client (no multi-conn): one connection; connections=3 shrinks to what the server takes")
        void oneConnectionWithoutMultiConn() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, true);
                try (NbdBacking b = (NbdBacking) open(s.uri(""), Map.of())) {
                    assertEquals(1, b.connections());
                    assertArrayEquals(model, readConcurrently(b));
                }
                try (NbdBacking b = (NbdBacking) open(s.uri(""), Map.of("connections", "3"))) {
                    assertArrayEquals(model, readConcurrently(b), "serves while the extra connections hang");
                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
                    while (b.connections() > 1 && System.nanoTime() < until) {
                        Thread.sleep(50);
                    }
                    assertEquals(1, b.connections(), "the extra connections the server never answered are given up");
                    assertEquals(8, b.maxInFlight());
                    assertArrayEquals(model, readConcurrently(b));
                }
            });
        }

        @Test
        @DisplayName("nbdkit file plugin (no OFFSET_HOLE): reads and holes; --no-sr: UNKNOWN for everything, reads still right")
        void nbdkitBothStyles() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 43);
                NbdServers.Server s = servers.nbdkit(false, "file", img.toString());
                try (Backing b = open(s.uri(""), Map.of("connections", "2"))) {
                    assertArrayEquals(model, readConcurrently(b));
                    List<Allocation.Kind> kinds = checkAllocation(b, model);
                    assertTrue(kinds.contains(Allocation.Kind.HOLE), kinds.toString());
                }
                NbdServers.Server plain = servers.nbdkit(false, "--no-sr", "file", img.toString());
                try (Backing b = open(plain.uri(""), Map.of())) {
                    assertArrayEquals(model, readConcurrently(b));
                    Allocation a = b.allocation(REGION, SIZE);
                    assertEquals(new Allocation(Allocation.Kind.UNKNOWN, SIZE - REGION), a);
                }
                NbdServers.Server zeros = servers.nbdkit(false, "--filter=noextents", "memory", "size=" + SIZE);
                try (Backing b = open(zeros.uri(""), Map.of())) {
                    assertEquals(Allocation.Kind.DATA, b.allocation(0, SIZE).kind(), "no extents: all data, never a guess");
                }
            });
        }
    }

    @Nested
    @DisplayName("identity and a server that goes away")
    class Identity {
        @Test
        @DisplayName("identity: equal for the same disk, different for another disk of the same size; a printable token")
        void identity() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path one = servers.dir().resolve("one.raw");
                Path two = servers.dir().resolve("two.raw");
                sparseImage(one, 1);
                sparseImage(two, 2);
                NbdServers.Server s1 = servers.qemuNbd(one, false, "-r", "-e", "4");
                NbdServers.Server s2 = servers.qemuNbd(two, false, "-r", "-e", "4");
                BackingIdentity a;
                try (Backing b = open(s1.uri(""), Map.of())) {
                    a = b.identity();
                    assertEquals(a, b.identity());
                    assertTrue(a.token().startsWith("nbd:" + SIZE + ":"), a.token());
                    assertTrue(a.describe().contains("size=" + SIZE), a.describe());
                    assertTrue(a.describe().contains(s1.socket().toString()), a.describe());
                    assertEquals(a, BackingIdentity.of(a.token(), a.describe(), a.size()), "storable as it is");
                }
                try (Backing b = open(s1.uri(""), Map.of("connections", "1"))) {
                    assertEquals(a, b.identity(), "another open of the same disk");
                }
                try (Backing b = open(s2.uri(""), Map.of())) {
                    assertNotEquals(a, b.identity());
                }
            });
        }

        @Test
        @DisplayName("qemu-nbd killed under a live backing: reads fail after the timeout naming the server; restarted: the same backing serves again")
        void killAndRestart() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r", "-e", "4");
                // the timeout only bounds how long a read waits for the dead server: long enough that a
                // loaded machine never fails the healthy reads
                try (NbdBacking b = (NbdBacking) open(s.uri(""), Map.of("timeout", "10"))) {
                    BackingIdentity before = b.identity();
                    awaitLive(b, 4);
                    assertArrayEquals(model, readConcurrently(b));
                    s.process().destroyForcibly().waitFor();
                    IOException down = assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(MIB), 0));
                    assertTrue(down.getMessage().contains(s.socket().toString()), down.getMessage());
                    assertThrows(IOException.class, () -> b.allocation(0, SIZE));
                    NbdServers.Server again = servers.qemuNbdAt(s, img, "-r", "-e", "4");
                    readWhenBack(b, model);
                    assertArrayEquals(model, readConcurrently(b));
                    assertEquals(before, b.identity());
                    awaitLive(b, 4);
                    again.process().destroy();
                }
            });
        }

        @Test
        @DisplayName("a read made while the server is down waits for it (within the timeout) and returns the right bytes")
        void readWaitsForRestart() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r", "-e", "4");
                try (Backing b = open(s.uri(""), Map.of("timeout", "30"))) {
                    readWhenBack(b, model);
                    s.process().destroyForcibly().waitFor();
                    java.util.concurrent.CompletableFuture<byte[]> read = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                        ByteBuffer dst = ByteBuffer.allocate(4 * MIB);
                        try {
                            b.readFully(dst, 2 * MIB);
                        } catch (IOException e) {
                            throw new java.util.concurrent.CompletionException(e);
                        }
                        return dst.array();
                    });
                    Thread.sleep(300);
                    assertTrue(!read.isDone() || !read.isCompletedExceptionally(), "a read must wait, not fail at once");
                    servers.qemuNbdAt(s, img, "-r", "-e", "4");
                    assertArrayEquals(Arrays.copyOfRange(model, 2 * MIB, 6 * MIB), read.get(60, TimeUnit.SECONDS));
                }
            });
        }

        @Test
        @DisplayName("restarted with another disk of the same size: every later call fails with 'backing changed', even once the right disk is back")
        void restartedWithAnotherDisk() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                Path other = servers.dir().resolve("other.raw");
                byte[] model = sparseImage(img, 42);
                sparseImage(other, 99);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r");
                try (Backing b = open(s.uri(""), Map.of("timeout", "3"))) {
                    readWhenBack(b, model);
                    s.process().destroyForcibly().waitFor();
                    NbdServers.Server impostor = servers.qemuNbdAt(s, other, "-r");
                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    IOException e = null;
                    while (System.nanoTime() < until) {
                        e = assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(4096), 0),
                                "never the other disk's bytes");
                        if (e.getMessage().contains("backing changed")) {
                            break;
                        }
                        Thread.sleep(100);
                    }
                    assertTrue(e.getMessage().contains("backing changed"), e.getMessage());
                    impostor.process().destroyForcibly().waitFor();
                    servers.qemuNbdAt(s, img, "-r");
                    Thread.sleep(500);
                    IOException sticky = assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(4096), 0));
                    assertTrue(sticky.getMessage().contains("backing changed"), sticky.getMessage());
                    assertThrows(IOException.class, () -> b.allocation(0, 1));
                    assertThrows(IOException.class, b::openWriter);
                }
            });
        }
    }

    @Nested
    @DisplayName("faults")
    class Faults {
        @Test
        @DisplayName("nbdkit error filter: the read fails with an IOException, never wrong data; serves again once errors stop")
        void errorReplies() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path trigger = servers.dir().resolve("inject");
                NbdServers.Server s = servers.nbdkit(false, "--filter=error", "pattern", "size=" + SIZE,
                        "error-pread=EIO", "error-pread-rate=100%", "error-pread-file=" + trigger);
                try (Backing b = open(s.uri(""), Map.of())) {
                    Files.writeString(trigger, "");
                    ByteBuffer dst = ByteBuffer.allocate(2 * MIB);
                    IOException e = assertThrows(IOException.class, () -> b.readFully(dst, 4 * MIB));
                    assertTrue(e.getMessage().contains("EIO"), e.getMessage());
                    assertEquals(0, dst.position(), "a failed read does not advance");
                    Files.delete(trigger);
                    ByteBuffer ok = ByteBuffer.allocate(2 * MIB);
                    b.readFully(ok, 4 * MIB);
                    for (int i = 0; i < ok.capacity(); i += 8) {
                        assertEquals(4L * MIB + i, ok.getLong(i), "pattern plugin: each 8 bytes hold their offset");
                    }
                }
            });
        }

        @Test
        @DisplayName("a stalled server (delay filter over the timeout): open fails after the timeout, not a hang")
        void stallAtOpen() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                NbdServers.Server s = servers.nbdkit(false, "--filter=delay", "pattern", "size=" + SIZE, "delay-read=8");
                IOException e = assertThrows(IOException.class, () -> open(s.uri(""), Map.of("timeout", "1")));
                assertTrue(e.getMessage().startsWith(s.uri("")), e.getMessage());
            });
        }

        @Test
        @DisplayName("qemu-nbd stopped (SIGSTOP) under a live backing: reads and allocation fail after the timeout; continued: served again")
        void stallWhileOpen() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r");
                try (Backing b = open(s.uri(""), Map.of("timeout", "3"))) {
                    readWhenBack(b, model);
                    signal(s, "STOP");
                    try {
                        IOException e = assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(MIB), 0));
                        assertInstanceOf(BackingTimeoutException.class, e, "the buffer must be dropped: " + e);
                        assertTrue(e.getMessage().contains(s.socket().toString()), e.getMessage());
                        assertThrows(IOException.class, () -> b.allocation(0, SIZE));
                    } finally {
                        signal(s, "CONT");
                    }
                    readWhenBack(b, model);
                }
            });
        }

        @Test
        @DisplayName("nothing listening: open fails at once with one line naming the address")
        void unreachable() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                String uri = "nbd+unix:///x?socket=" + servers.dir().resolve("none.sock");
                IOException e = assertThrows(IOException.class, () -> open(uri, Map.of()));
                assertTrue(e.getMessage().startsWith(uri + ": cannot connect"), e.getMessage());
                assertTrue(!e.getMessage().contains("\n"));
            });
        }
    }

    @Nested
    @DisplayName("the commit writer")
    class Writer {
        @Test
        @DisplayName("writable qemu-nbd: writes, write-zeroes and flush land in the file; our own writes to sampled blocks survive a reconnect")
        void writes() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false);
                try (Backing b = open(s.uri(""), Map.of("timeout", "30"))) {
                    BackingIdentity before = b.identity();
                    try (Backing.Writer w = b.openWriter()) {
                        Random r = new Random(9);
                        for (long at : new long[] {0, 5 * MIB, SIZE - 3 * MIB}) {
                            byte[] data = new byte[3 * MIB];
                            r.nextBytes(data);
                            ByteBuffer src = ByteBuffer.wrap(data);
                            w.writeFully(src, at);
                            assertEquals(data.length, src.position());
                            System.arraycopy(data, 0, model, (int) at, data.length);
                        }
                        w.writeZeroes(MIB, 2 * MIB);
                        Arrays.fill(model, MIB, 3 * MIB, (byte) 0);
                        w.flush();
                        CorfsException unaligned = assertThrows(CorfsException.class,
                                () -> w.writeFully(ByteBuffer.allocate(10), -1));
                        assertEquals(CorfsException.Reason.INVALID_ARGUMENT, unaligned.reason());
                    }
                    assertArrayEquals(model, Files.readAllBytes(img), "the file holds every write after flush");
                    assertNotEquals(before, b.identity(), "the commit changed sampled blocks");
                    s.process().destroyForcibly().waitFor();
                    servers.qemuNbdAt(s, img);
                    readWhenBack(b, model);
                    assertArrayEquals(model, readConcurrently(b), "our own writes are not 'another disk'");
                }
            });
        }

        @Test
        @DisplayName("the writer's server killed: that writer refuses everything after; once the server is back a new writer works")
        void writerConnectionLost() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false);
                try (Backing b = open(s.uri(""), Map.of("timeout", "10"))) {
                    byte[] data = new byte[65536];
                    new Random(4).nextBytes(data);
                    Backing.Writer w = b.openWriter();
                    w.writeFully(ByteBuffer.wrap(data), 0);
                    w.flush();
                    System.arraycopy(data, 0, model, 0, data.length);
                    s.process().destroyForcibly().waitFor();
                    assertThrows(IOException.class, () -> w.writeFully(ByteBuffer.wrap(data), 65536));
                    servers.qemuNbdAt(s, img);
                    readWhenBack(b, model);
                    IOException stale = assertThrows(IOException.class, () -> w.writeFully(ByteBuffer.wrap(data), 65536));
                    assertTrue(stale.getMessage().contains("writer unusable"), stale.getMessage());
                    w.close();
                    try (Backing.Writer again = b.openWriter()) {
                        again.writeFully(ByteBuffer.wrap(data), 65536);
                        again.flush();
                    }
                    System.arraycopy(data, 0, model, 65536, data.length);
                    assertArrayEquals(model, Files.readAllBytes(img));
                }
            });
        }

        @Test
        @DisplayName("a read-only export: openWriter is READ_ONLY, saying the export is read-only")
        void readOnly() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                sparseImage(img, 42);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r");
                try (Backing b = open(s.uri(""), Map.of())) {
                    CorfsException e = assertThrows(CorfsException.class, b::openWriter);
                    assertEquals(CorfsException.Reason.READ_ONLY, e.reason());
                    assertTrue(e.getMessage().contains("the export is read-only"), e.getMessage());
                }
            });
        }

        @Test
        @DisplayName("nbdkit memory: write-zeroes over written data reads back zeros")
        void writeZeroesNbdkit() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                NbdServers.Server s = servers.nbdkit(false, "memory", "size=" + 4 * MIB);
                try (Backing b = open(s.uri(""), Map.of())) {
                    byte[] data = new byte[4 * MIB];
                    new Random(1).nextBytes(data);
                    try (Backing.Writer w = b.openWriter()) {
                        w.writeFully(ByteBuffer.wrap(data), 0);
                        w.writeZeroes(MIB, MIB);
                        w.flush();
                    }
                    Arrays.fill(data, MIB, 2 * MIB, (byte) 0);
                    ByteBuffer back = ByteBuffer.allocate(4 * MIB);
                    b.readFully(back, 0);
                    assertArrayEquals(data, back.array());
                }
            });
        }
    }

    @Nested
    @DisplayName("TLS")
    class Tls {
        @Test
        @DisplayName("nbds:// with tls-ca reads the file; a wrong CA, plain to a TLS-only server and TLS to a plain server fail clearly")
        void tls() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path pki = servers.tlsMaterial("pki");
                Path other = servers.tlsMaterial("other");
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img, 42);
                NbdServers.Server tls = servers.nbdkit(true, "--tls=require", "--tls-certificates=" + pki, "file",
                        img.toString());
                Map<String, String> ca = Map.of("tls-ca", pki.resolve("ca-cert.pem").toString());
                try (Backing b = open(tls.uri("", true), ca)) {
                    assertArrayEquals(model, readConcurrently(b));
                }
                IOException wrongCa = assertThrows(IOException.class,
                        () -> open(tls.uri("", true), Map.of("tls-ca", other.resolve("ca-cert.pem").toString())));
                assertTrue(wrongCa.getMessage().contains("TLS handshake failed"), wrongCa.getMessage());
                IOException plain = assertThrows(IOException.class, () -> open(tls.uri("", false), Map.of()));
                assertTrue(plain.getMessage().contains("requires TLS"), plain.getMessage());
                NbdServers.Server clear = servers.nbdkit(true, "memory", "size=1M");
                IOException noTls = assertThrows(IOException.class, () -> open(clear.uri("", true), ca));
                assertTrue(noTls.getMessage().contains("does not offer TLS"), noTls.getMessage());
                CorfsException mixed = assertThrows(CorfsException.class, () -> transport.validate(clear.uri("", false), ca));
                assertEquals(CorfsException.Reason.INVALID_ARGUMENT, mixed.reason());
            });
        }
    }
}
