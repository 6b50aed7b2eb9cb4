package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.backing.nbd.NbdClient;
import corfs.backing.nbd.NbdConnection;
import corfs.backing.nbd.NbdException;
import corfs.backing.nbd.NbdExtent;
import corfs.backing.nbd.NbdOptions;
import corfs.backing.nbd.NbdTimeoutException;
import corfs.backing.nbd.NbdUri;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
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
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The NBD client against real servers (qemu-nbd, nbdkit) on Unix sockets and loopback TCP: reads compared
 * byte for byte with the exported file, block status against the file's holes, writes, the fallbacks,
 * TLS, and faults (error replies, stalls, a server killed mid-reply).
 */
@DisplayName("NBD client against real servers")
class NbdClientIT {
    private static final Duration HANG_GUARD = Duration.ofSeconds(60);
    private static final int MIB = 1 << 20;
    private static final int SIZE = 32 * MIB;

    @RegisterExtension
    final NbdServers servers = new NbdServers();

    private static NbdConnection connect(String uri, NbdOptions options) throws CorfsException {
        return NbdClient.connect(NbdUri.parse(uri), options);
    }

    private static NbdConnection connect(String uri) throws CorfsException {
        return connect(uri, NbdOptions.defaults());
    }

    /** Bytes of the last {@link #sparseImage} never written: its holes. */
    private long holeBytes;

    /** A sparse image: random data in some 64 KiB-aligned regions, holes elsewhere. Returns its bytes. */
    private byte[] sparseImage(Path file) throws IOException {
        byte[] model = new byte[SIZE];
        boolean[] written = new boolean[SIZE / 65536];
        Random r = new Random(42);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(SIZE);
            for (int i = 0; i < 40; i++) {
                int at = r.nextInt(SIZE / 65536) * 65536;
                int len = Math.min(SIZE - at, (1 + r.nextInt(8)) * 65536);
                byte[] data = new byte[len];
                r.nextBytes(data);
                System.arraycopy(data, 0, model, at, len);
                Arrays.fill(written, at / 65536, (at + len) / 65536, true);
                f.seek(at);
                f.write(data);
            }
        }
        holeBytes = 0;
        for (boolean w : written) {
            holeBytes += w ? 0 : 65536;
        }
        return model;
    }

    private static byte[] readAll(NbdConnection c, int chunk) throws Exception {
        byte[] out = new byte[(int) c.size()];
        List<CompletableFuture<Void>> inFlight = new ArrayList<>();
        for (int at = 0; at < out.length; at += chunk) {
            ByteBuffer dst = ByteBuffer.wrap(out, at, Math.min(chunk, out.length - at));
            inFlight.add(c.read(at, dst));
        }
        CompletableFuture.allOf(inFlight.toArray(new CompletableFuture[0])).get(60, TimeUnit.SECONDS);
        return out;
    }

    /** Reads 200 random ranges, all in flight at once, into direct buffers, and compares with the model. */
    private static void randomReads(NbdConnection c, byte[] model) throws Exception {
        Random r = new Random(7);
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        List<ByteBuffer> bufs = new ArrayList<>();
        List<long[]> ranges = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            int len = 512 * (1 + r.nextInt(512));
            long at = 512L * r.nextInt((model.length - len) / 512);
            ByteBuffer b = ByteBuffer.allocateDirect(len + 100);
            for (int j = 0; j < b.capacity(); j++) {
                b.put(j, (byte) 0x5a); // garbage where holes must become zeros
            }
            b.position(50).limit(50 + len);
            futures.add(c.read(at, b));
            bufs.add(b);
            ranges.add(new long[] {at, len});
        }
        for (int i = 0; i < futures.size(); i++) {
            futures.get(i).get(60, TimeUnit.SECONDS);
            ByteBuffer b = bufs.get(i);
            assertEquals(50, b.position(), "position untouched");
            b.limit(b.capacity());
            byte[] got = new byte[(int) ranges.get(i)[1]];
            b.get(50, got);
            int at = (int) ranges.get(i)[0];
            assertArrayEquals(Arrays.copyOfRange(model, at, at + got.length), got, "read at " + at + "+" + got.length);
            assertEquals((byte) 0x5a, b.get(49), "byte before the range untouched");
            assertEquals((byte) 0x5a, b.get(50 + got.length), "byte after the range untouched");
        }
    }

    /** Walks block status over the whole export: extents consecutive, and none claims zeros where data is. */
    private static long checkBlockStatus(NbdConnection c, byte[] model) throws Exception {
        long at = 0;
        long zeroBytes = 0;
        while (at < c.size()) {
            List<NbdExtent> extents = c.blockStatus(at, c.size() - at).get(60, TimeUnit.SECONDS);
            assertFalse(extents.isEmpty());
            for (NbdExtent e : extents) {
                assertEquals(at, e.offset(), "extents are consecutive");
                if (e.zero()) {
                    for (long i = e.offset(); i < e.end(); i++) {
                        if (model[(int) i] != 0) {
                            throw new AssertionError("extent " + e + " claims zeros but byte " + i + " is data");
                        }
                    }
                    zeroBytes += e.length();
                }
                at = e.end();
            }
        }
        assertEquals(c.size(), at);
        return zeroBytes;
    }

    @Nested
    @DisplayName("qemu-nbd (sends OFFSET_HOLE chunks)")
    class QemuNbd {
        @Test
        @DisplayName("over a Unix socket: whole-image and random pipelined reads equal the file; block status finds the holes")
        void unixReadsAndBlockStatus() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r", "-x", "disk");
                try (NbdConnection c = connect(s.uri("disk"))) {
                    assertEquals(SIZE, c.size());
                    assertTrue(c.readOnly());
                    assertTrue(c.structuredReplies());
                    assertTrue(c.hasBlockStatus());
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    randomReads(c, model);
                    assertEquals(holeBytes, checkBlockStatus(c, model), "exactly the file's holes reported as zeros");
                    CorfsException ro = assertThrows(ExecutionException.class,
                            () -> c.write(0, ByteBuffer.allocate(512)).get()).getCause() instanceof CorfsException ce ? ce : null;
                    assertEquals(CorfsException.Reason.READ_ONLY, ro.reason());
                }
            });
        }

        @Test
        @DisplayName("writable: writes from 8 threads at once land in the file on disk; nbdcopy, a peer client, reads the same")
        void writesFromManyThreadsAndPeer() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.qemuNbd(img, false, "-x", "disk");
                try (NbdConnection c = connect(s.uri("disk"))) {
                    assertTrue(c.canFlush());
                    List<Thread> threads = new ArrayList<>();
                    List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
                    for (int t = 0; t < 8; t++) {
                        int id = t;
                        threads.add(new Thread(() -> {
                            try {
                                Random r = new Random(100 + id);
                                List<CompletableFuture<Void>> writes = new ArrayList<>();
                                for (int i = 0; i < 32; i++) {
                                    // each thread owns every 8th 128 KiB slot: no two writes overlap
                                    int slot = (r.nextInt(SIZE / (128 << 10) / 8) * 8 + id) * (128 << 10);
                                    byte[] data = new byte[128 << 10];
                                    r.nextBytes(data);
                                    synchronized (model) {
                                        System.arraycopy(data, 0, model, slot, data.length);
                                    }
                                    writes.add(c.write(slot, ByteBuffer.wrap(data)));
                                    writes.get(writes.size() - 1).get(30, TimeUnit.SECONDS); // one slot, one write at a time
                                }
                                byte[] back = new byte[1 << 20];
                                c.read((long) id << 20, ByteBuffer.wrap(back)).get(30, TimeUnit.SECONDS);
                            } catch (Throwable e) {
                                errors.add(e);
                            }
                        }, "writer-" + t));
                    }
                    threads.forEach(Thread::start);
                    for (Thread t : threads) {
                        t.join();
                    }
                    assertEquals(List.of(), errors);
                    c.flush().get(30, TimeUnit.SECONDS);
                    assertArrayEquals(model, Files.readAllBytes(img), "the file on disk holds every write");
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                }
                if (NbdServers.installed("nbdcopy")) {
                    Path copy = servers.dir().resolve("copy.raw");
                    Process p = new ProcessBuilder("nbdcopy", s.uri("disk"), copy.toString()).inheritIO().start();
                    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
                    assertEquals(0, p.exitValue());
                    assertArrayEquals(model, Files.readAllBytes(copy), "nbdcopy reads what we wrote");
                }
            });
        }

        @Test
        @DisplayName("TLS (tls-creds-x509) over a Unix socket: hole chunks and data inside TLS")
        void tls() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path pki = servers.tlsMaterial("pki");
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.qemuNbd(img, false, "-r", "-x", "disk", "--object",
                        "tls-creds-x509,id=tls0,endpoint=server,verify-peer=off,dir=" + pki, "--tls-creds", "tls0");
                NbdOptions ca = NbdOptions.defaults().withTls(pki.resolve("ca-cert.pem"), null, null, null);
                try (NbdConnection c = connect(s.uri("disk", true), ca)) {
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    randomReads(c, model);
                    checkBlockStatus(c, model);
                }
                NbdException plain = assertThrows(NbdException.class, () -> connect(s.uri("disk", false)));
                assertTrue(plain.getMessage().contains("requires TLS"), plain.getMessage());
            });
        }

        @Test
        @DisplayName("over loopback TCP; an unknown export is refused by name")
        void tcpAndUnknownExport() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.qemuNbd(img, true, "-x", "disk");
                try (NbdConnection c = connect(s.uri("disk"))) {
                    assertFalse(c.readOnly());
                    assertArrayEquals(model, readAll(c, 3 * MIB + 512));
                }
                NbdException e = assertThrows(NbdException.class, () -> connect(s.uri("nope")));
                assertTrue(e.getMessage().contains("no export named 'nope'"), e.getMessage());
                assertTrue(e.getMessage().contains("nbd://localhost:" + s.port()), e.getMessage());
            });
        }
    }

    @Nested
    @DisplayName("nbdkit (never sends OFFSET_HOLE)")
    class Nbdkit {
        @Test
        @DisplayName("file plugin: reads and block status; --no-sr falls back to simple replies and no block status")
        void fileAndNoStructuredReplies() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.nbdkit(true, "file", img.toString());
                try (NbdConnection c = connect(s.uri(""))) {
                    assertTrue(c.hasBlockStatus());
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    randomReads(c, model);
                    assertEquals(holeBytes, checkBlockStatus(c, model), "exactly the file's holes reported as zeros");
                }
                NbdServers.Server plain = servers.nbdkit(false, "--no-sr", "file", img.toString());
                try (NbdConnection c = connect(plain.uri(""))) {
                    assertFalse(c.structuredReplies());
                    assertFalse(c.hasBlockStatus());
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    randomReads(c, model);
                    List<NbdExtent> all = c.blockStatus(0, SIZE).get();
                    assertEquals(List.of(new NbdExtent(0, SIZE, false, false)), all, "unknown: all data");
                }
            });
        }

        @Test
        @DisplayName("memory plugin: write, write-zeroes, trim, flush, read back; a read-only export refuses writes")
        void writes() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                NbdServers.Server s = servers.nbdkit(false, "memory", "size=16M");
                try (NbdConnection c = connect(s.uri(""))) {
                    assertTrue(c.canFlush() && c.canTrim() && c.canWriteZeroes());
                    byte[] model = new byte[16 * MIB];
                    new Random(3).nextBytes(model);
                    c.write(0, ByteBuffer.wrap(model)).get(30, TimeUnit.SECONDS); // 16 MiB: split by the maximum
                    c.flush().get(30, TimeUnit.SECONDS);
                    c.writeZeroes(MIB, 2 * MIB, false).get(30, TimeUnit.SECONDS);
                    Arrays.fill(model, MIB, 3 * MIB, (byte) 0);
                    c.trim(8 * MIB, MIB).get(30, TimeUnit.SECONDS); // memory plugin: trimmed reads as zeros
                    Arrays.fill(model, 8 * MIB, 9 * MIB, (byte) 0);
                    c.flush().get(30, TimeUnit.SECONDS);
                    assertArrayEquals(model, readAll(c, MIB));
                }
                NbdServers.Server ro = servers.nbdkit(false, "-r", "memory", "size=1M");
                try (NbdConnection c = connect(ro.uri(""))) {
                    assertTrue(c.readOnly());
                    ExecutionException e = assertThrows(ExecutionException.class, () -> c.write(0, ByteBuffer.allocate(4096)).get());
                    assertEquals(CorfsException.Reason.READ_ONLY, ((CorfsException) e.getCause()).reason());
                    e = assertThrows(ExecutionException.class, () -> c.trim(0, 4096).get());
                    assertEquals(CorfsException.Reason.READ_ONLY, ((CorfsException) e.getCause()).reason());
                }
            });
        }

        @Test
        @DisplayName("block sizes obeyed: a server enforcing minimum 4K and maximum 64K serves aligned, unaligned and large reads")
        void blockSizes() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server s = servers.nbdkit(false, "--filter=blocksize-policy", "file", img.toString(),
                        "blocksize-minimum=4096", "blocksize-preferred=65536", "blocksize-maximum=65536",
                        "blocksize-error-policy=error");
                try (NbdConnection c = connect(s.uri(""))) {
                    assertEquals(4096, c.blockSizes().minimum());
                    assertEquals(65536, c.blockSizes().maximum());
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    byte[] odd = new byte[10_000];
                    c.read(1_000_001, ByteBuffer.wrap(odd)).get(30, TimeUnit.SECONDS);
                    assertArrayEquals(Arrays.copyOfRange(model, 1_000_001, 1_010_001), odd);
                    ExecutionException e = assertThrows(ExecutionException.class, () -> c.write(100, ByteBuffer.allocate(4096)).get());
                    assertEquals(CorfsException.Reason.INVALID_ARGUMENT, ((CorfsException) e.getCause()).reason());
                    assertTrue(c.isOpen());
                }
            });
        }
    }

    @Nested
    @DisplayName("faults")
    class Faults {
        @Test
        @DisplayName("error filter: an error reply fails that read with EIO and its message; the connection keeps serving")
        void errorReplies() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path trigger = servers.dir().resolve("inject");
                NbdServers.Server s = servers.nbdkit(false, "--filter=error", "pattern", "size=8M",
                        "error-pread=EIO", "error-pread-rate=100%", "error-pread-file=" + trigger);
                try (NbdConnection c = connect(s.uri(""))) {
                    ByteBuffer good = ByteBuffer.allocate(65536);
                    c.read(65536, good).get(30, TimeUnit.SECONDS);
                    assertEquals(65536L, good.getLong(0), "pattern plugin: each 8 bytes hold their offset");
                    Files.writeString(trigger, "");
                    ExecutionException e = assertThrows(ExecutionException.class, () -> c.read(0, ByteBuffer.allocate(65536)).get());
                    NbdException ne = assertInstanceOf(NbdException.class, e.getCause());
                    assertEquals(5, ne.nbdError());
                    assertTrue(ne.getMessage().contains("EIO"), ne.getMessage());
                    assertTrue(c.isOpen(), "an error reply keeps the framing");
                    Files.delete(trigger);
                    ByteBuffer again = ByteBuffer.allocate(4096);
                    c.read(8192, again).get(30, TimeUnit.SECONDS);
                    assertEquals(8192L, again.getLong(0));
                }
            });
        }

        @Test
        @DisplayName("a stalled server: the read times out without blocking the caller; the late reply is dropped, the connection serves on")
        void timeout() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                NbdServers.Server s = servers.nbdkit(false, "--filter=delay", "pattern", "size=8M", "delay-read=3");
                try (NbdConnection c = connect(s.uri(""), NbdOptions.defaults().withTimeout(Duration.ofMillis(500)))) {
                    ByteBuffer dst = ByteBuffer.allocate(4096);
                    CompletableFuture<Void> f = c.read(0, dst);
                    ExecutionException e = assertThrows(ExecutionException.class, f::get);
                    assertInstanceOf(NbdTimeoutException.class, e.getCause());
                    assertTrue(e.getCause().getMessage().contains("no reply within"), e.getCause().getMessage());
                    assertTrue(c.isOpen());
                    Thread.sleep(3500); // the late reply arrives and must be consumed, not mistaken
                    List<NbdExtent> ext = c.blockStatus(0, 4096).get(30, TimeUnit.SECONDS);
                    assertEquals(0, ext.get(0).offset());
                    assertTrue(c.isOpen(), "late reply dropped without losing the framing: " + c.failure());
                }
            });
        }

        @Test
        @DisplayName("server killed with reads in flight: every read fails, later requests are refused, close is quick")
        void serverKilled() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                NbdServers.Server s = servers.nbdkit(false, "--filter=delay", "pattern", "size=8M", "delay-read=2");
                NbdConnection c = connect(s.uri(""));
                List<CompletableFuture<Void>> reads = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    reads.add(c.read(i * 65536L, ByteBuffer.allocate(65536)));
                }
                s.process().destroyForcibly().waitFor();
                for (CompletableFuture<Void> r : reads) {
                    ExecutionException e = assertThrows(ExecutionException.class, () -> r.get(30, TimeUnit.SECONDS));
                    assertInstanceOf(NbdException.class, e.getCause());
                }
                assertFalse(c.isOpen());
                ExecutionException later = assertThrows(ExecutionException.class, () -> c.read(0, ByteBuffer.allocate(512)).get());
                assertTrue(later.getCause().getMessage().contains("connection failed"), later.getCause().getMessage());
                long t0 = System.nanoTime();
                c.close();
                c.close();
                assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10));
            });
        }

        @Test
        @DisplayName("nothing listening: a one-line error naming the address and the cause")
        void unreachable() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path sock = servers.dir().resolve("none.sock");
                NbdException e = assertThrows(NbdException.class, () -> connect("nbd+unix:///x?socket=" + sock));
                assertTrue(e.getMessage().startsWith("nbd+unix:///x?socket=" + sock + ": cannot connect"), e.getMessage());
                assertFalse(e.getMessage().contains("\n"));
            });
        }
    }

    @Nested
    @DisplayName("TLS")
    class Tls {
        @Test
        @DisplayName("nbds:// over TCP and nbds+unix:// with a client certificate: reads equal the file")
        void tlsReads() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path pki = servers.tlsMaterial("pki");
                Path img = servers.dir().resolve("disk.raw");
                byte[] model = sparseImage(img);
                NbdServers.Server tcp = servers.nbdkit(true, "--tls=require", "--tls-certificates=" + pki, "file", img.toString());
                NbdOptions ca = NbdOptions.defaults().withTls(pki.resolve("ca-cert.pem"), null, null, null);
                try (NbdConnection c = connect(tcp.uri("", true), ca)) {
                    assertTrue(c.hasBlockStatus());
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                    randomReads(c, model);
                    checkBlockStatus(c, model);
                }
                NbdServers.Server unix = servers.nbdkit(false, "--tls=require", "--tls-certificates=" + pki,
                        "--tls-verify-peer", "file", img.toString());
                NbdOptions withCert = NbdOptions.defaults().withTls(pki.resolve("ca-cert.pem"),
                        pki.resolve("client-cert.pem"), pki.resolve("client-key.pem"), null);
                try (NbdConnection c = connect(unix.uri("", true), withCert)) {
                    assertArrayEquals(model, readAll(c, 4 * MIB));
                }
                assertThrows(NbdException.class, () -> connect(unix.uri("", true), ca).close(),
                        "a server verifying peers refuses a client without a certificate");
            });
        }

        @Test
        @DisplayName("plain client to a TLS-only server, TLS client to a plain server, a wrong CA and a wrong name are refused clearly")
        void refusals() {
            assertTimeoutPreemptively(HANG_GUARD, () -> {
                Path pki = servers.tlsMaterial("pki");
                Path other = servers.tlsMaterial("other");
                NbdServers.Server tls = servers.nbdkit(true, "--tls=require", "--tls-certificates=" + pki, "memory", "size=1M");
                NbdException plain = assertThrows(NbdException.class, () -> connect(tls.uri("", false)));
                assertTrue(plain.getMessage().contains("requires TLS: use an nbds://"), plain.getMessage());

                NbdException wrongCa = assertThrows(NbdException.class, () -> connect(tls.uri("", true),
                        NbdOptions.defaults().withTls(other.resolve("ca-cert.pem"), null, null, null)));
                assertTrue(wrongCa.getMessage().contains("TLS handshake failed"), wrongCa.getMessage());

                NbdException wrongName = assertThrows(NbdException.class, () -> connect(tls.uri("", true),
                        NbdOptions.defaults().withTls(pki.resolve("ca-cert.pem"), null, null, "elsewhere.example")));
                assertTrue(wrongName.getMessage().contains("TLS handshake failed"), wrongName.getMessage());

                NbdServers.Server clear = servers.nbdkit(true, "memory", "size=1M");
                NbdException noTls = assertThrows(NbdException.class, () -> connect(clear.uri("", true),
                        NbdOptions.defaults().withTls(pki.resolve("ca-cert.pem"), null, null, null)));
                assertTrue(noTls.getMessage().contains("does not offer TLS"), noTls.getMessage());
            });
        }
    }
}
