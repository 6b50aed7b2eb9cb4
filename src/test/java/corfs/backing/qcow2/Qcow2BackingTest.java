package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.ForwardingBacking;
import corfs.backing.BackingIdentity;
import corfs.backing.FileBacking;
import corfs.io.FileOps;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Qcow2Backing} over {@link FileBacking} containers, layers opened through a {@link LayerOpener}
 * of FileBackings (what the file transport does): images made by qemu-img and qemu-io on the fly, every
 * byte compared with {@code qemu-img convert -O raw} and every extent with {@code qemu-img map}.
 */
@DisplayName("qcow2 as a Backing over file containers")
class Qcow2BackingTest {
    private static final Duration GUARD = Duration.ofSeconds(120);

    @TempDir
    static Path dir;

    @BeforeAll
    static void tools() {
        QemuTools.assumeAvailable();
    }

    /** A Backing that records its close (and refuses calls after it), delegating to a FileBacking. */
    static final class Tracked extends ForwardingBacking {
        final AtomicBoolean closed = new AtomicBoolean();
        final java.util.concurrent.atomic.AtomicInteger reads = new java.util.concurrent.atomic.AtomicInteger();
        /** When set, the container's next read per thread waits here (proves reads overlap). */
        volatile CyclicBarrier gate;

        Tracked(Backing inner) {
            super(inner);
        }

        @Override
        public void readFully(ByteBuffer dst, long offset) throws IOException {
            CyclicBarrier g = gate;
            if (g != null) {
                try {
                    g.await(60, TimeUnit.SECONDS);
                } catch (Exception e) {
                    throw new IOException("container reads did not overlap: " + e, e);
                }
            }
            reads.incrementAndGet();
            inner.readFully(dst, offset);
        }

        @Override
        public void close() throws IOException {
            closed.set(true);
            inner.close();
        }
    }

    /** The file transport as the lead wires it: a SPEC is a path; records every layer it opened. */
    static final class FileOpener implements LayerOpener {
        final List<String> specs = Collections.synchronizedList(new ArrayList<>());
        final List<Tracked> opened = Collections.synchronizedList(new ArrayList<>());

        @Override
        public Backing open(String spec) throws IOException {
            specs.add(spec);
            Tracked t = new Tracked(FileBacking.open(Path.of(spec), FileOps.system()));
            opened.add(t);
            return t;
        }
    }

    static Tracked container(Path p) throws IOException {
        return new Tracked(FileBacking.open(p, FileOps.system()));
    }

    static Qcow2Backing open(Path top, FileOpener opener) throws IOException {
        return Qcow2Backing.open(top.toString(), container(top), opener, Map.of());
    }

    /** A raw file of {@code size} bytes: 64 KiB stripes of data at the given MiB offsets, holes elsewhere. */
    static void sparseRaw(Path p, long size, int... mib) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
            Random r = new Random(p.getFileName().toString().hashCode());
            byte[] b = new byte[65536];
            for (int m : mib) {
                r.nextBytes(b);
                f.seek((long) m << 20);
                f.write(b);
            }
        }
    }

    /** Bytes equal {@code qemu-img convert -O raw}; allocation agrees with {@code qemu-img map}. */
    static void verify(Qcow2Backing b, Path img) throws Exception {
        Path raw = Files.createTempFile(dir, "converted", ".raw");
        QemuTools.run(dir, "qemu-img", "convert", "-O", "raw", img.toString(), raw.toString());
        byte[] expected = Files.readAllBytes(raw);
        Files.delete(raw);
        assertEquals(expected.length, b.size(), img + ": virtual size");
        byte[] got = new byte[expected.length];
        Random r = new Random(2);
        for (int off = 0; off < got.length; ) {
            int n = Math.min(got.length - off, 1 + r.nextInt(2 << 20));
            ByteBuffer dst = ByteBuffer.wrap(got, off, n);
            b.readFully(dst, off);
            assertEquals(off + n, dst.position(), "readFully advances the position");
            off += n;
        }
        assertArrayEquals(expected, got, img + ": bytes differ from qemu-img convert");
        long covered = 0;
        for (QemuTools.MapExtent e : QemuTools.map(img)) {
            assertEquals(covered, e.start(), "qemu-img map is contiguous");
            Allocation.Kind want = e.data() ? Allocation.Kind.DATA : e.present() ? Allocation.Kind.ZERO : Allocation.Kind.HOLE;
            long pos = e.start();
            while (pos < e.start() + e.length()) {
                Allocation a = b.allocation(pos, e.start() + e.length() - pos);
                assertEquals(want, a.kind(), img + ": allocation at " + pos + " (qemu: " + e + ")");
                if (a.readsAsZeros()) {
                    for (int i = 0; i < a.length(); i++) {
                        if (expected[(int) pos + i] != 0) {
                            throw new AssertionError(img + ": " + a + " at " + pos + " over data at " + (pos + i));
                        }
                    }
                }
                pos += a.length();
            }
            covered = e.start() + e.length();
        }
        assertEquals(b.size(), covered);
    }

    @Nested
    @DisplayName("the corpus: same bytes as qemu-img convert, same extents as qemu-img map")
    class Corpus {
        private void check(String name) throws Exception {
            FileOpener opener = new FileOpener();
            assertTimeoutPreemptively(GUARD, () -> {
                try (Qcow2Backing b = open(dir.resolve(name), opener)) {
                    verify(b, dir.resolve(name));
                }
            });
        }

        @Test
        @DisplayName("version 2 and version 3 with 512 B and 2 MiB clusters and zero clusters")
        void versionsAndClusters() throws Exception {
            QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "16M");
            QemuTools.io(dir, "v2.qcow2", "write -P 0x11 0 100k", "write -P 0x22 5M 1M", "write -P 0x44 12345k 3k");
            check("v2.qcow2");
            for (int cs : new int[] {512, 2 << 20}) {
                String name = "v3-" + cs + ".qcow2";
                QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs, name, "16M");
                QemuTools.io(dir, name, "write -P 0x11 0 100k", "write -P 0x22 5M 1M", "write -z 8M 4M",
                        "write -P 0x55 9M 4k");
                check(name);
            }
        }

        @Test
        @DisplayName("compressed with zlib and with zstd")
        void compressed() throws Exception {
            Qcow2CorpusTest.writeMixedData(dir.resolve("mixed.raw"), 6 << 20, 21);
            for (String type : new String[] {"zlib", "zstd"}) {
                String name = "c-" + type + ".qcow2";
                QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                        "compression_type=" + type, "mixed.raw", name);
                check(name);
            }
        }

        @Test
        @DisplayName("extended L2 over a sparse raw base: subclusters, zero subclusters, the base's holes as zeros")
        void extendedL2() throws Exception {
            sparseRaw(dir.resolve("sparse.raw"), 8 << 20, 0, 1, 3, 6);
            QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", "sparse.raw",
                    "-F", "raw", "ext.qcow2", "8M");
            QemuTools.io(dir, "ext.qcow2", "write -P 0x61 1k 512", "write -z 200k 8k", "write -P 0x63 2M 2k",
                    "write -z 3M 64k", "write -P 0x64 5M 200k");
            check("ext.qcow2");
        }

        @Test
        @DisplayName("preallocation=metadata")
        void preallocated() throws Exception {
            QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "pre.qcow2", "8M");
            QemuTools.io(dir, "pre.qcow2", "write -P 0x31 1M 70k", "write -z 4M 128k");
            check("pre.qcow2");
        }
    }

    @Nested
    @DisplayName("a chain of three qcow2 layers with relative names over a sparse raw base")
    class Chain {
        Path top;

        @BeforeEach
        void make() throws Exception {
            Path c = Files.createDirectories(dir.resolve("chain-" + System.nanoTime()));
            Files.createDirectories(c.resolve("base"));
            Files.createDirectories(c.resolve("a"));
            sparseRaw(c.resolve("base/base.raw"), 6 << 20, 0, 2, 5);
            QemuTools.run(c.resolve("a"), "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base/base.raw", "-F", "raw",
                    "l1.qcow2", "8M");
            QemuTools.io(c.resolve("a"), "l1.qcow2", "write -P 0x81 1M 64k", "write -z 2M 64k", "write -P 0x82 7M 4k");
            QemuTools.run(c.resolve("a"), "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                    "-b", "l1.qcow2", "-F", "qcow2", "l2.qcow2", "8M");
            QemuTools.io(c.resolve("a"), "l2.qcow2", "write -P 0x91 1M 4k", "write -z 3M 8k", "write -P 0x92 2M 4k");
            QemuTools.run(c, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "a/l2.qcow2", "-F", "qcow2", "top.qcow2", "10M");
            QemuTools.io(c, "top.qcow2", "write -P 0xa1 4M 64k", "write -P 0xa2 9M 64k");
            top = c.resolve("top.qcow2");
        }

        @Test
        @DisplayName("reads, extents and the chain through the opener; the opener was asked for each layer in order")
        void reads() {
            FileOpener opener = new FileOpener();
            assertTimeoutPreemptively(GUARD, () -> {
                try (Qcow2Backing b = open(top, opener)) {
                    verify(b, top);
                    Path c = top.getParent();
                    assertEquals(List.of(c + "/a/l2.qcow2", c + "/a/l1.qcow2", c + "/a/../base/base.raw"), opener.specs);
                    List<LayerInfo> chain = b.chain();
                    assertEquals(List.of("qcow2", "qcow2", "qcow2", "raw"), chain.stream().map(LayerInfo::format).toList());
                    assertEquals(top.toString(), chain.get(0).location());
                    assertEquals("a/l2.qcow2", chain.get(0).backingName());
                    assertEquals("../base/base.raw", chain.get(2).backingName());
                    assertEquals(4096, chain.get(1).clusterSize());
                    assertEquals(10 << 20, b.size());
                    assertEquals(FileBacking.open(top, FileOps.system()).maxInFlight(), b.maxInFlight());
                    assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(2), b.size() - 1));
                    assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(1), -1));
                    assertThrows(IOException.class, () -> b.allocation(b.size(), 1));
                    assertThrows(IOException.class, () -> b.allocation(0, 0));
                }
                assertTrue(opener.opened.stream().allMatch(t -> t.closed.get()), "every layer closed");
            });
        }

        @Test
        @DisplayName("identity covers every layer: stable, and changed by a write into the middle layer")
        void identity() {
            assertTimeoutPreemptively(GUARD, () -> {
                BackingIdentity first;
                try (Qcow2Backing b = open(top, new FileOpener())) {
                    first = b.identity();
                    assertEquals(first, b.identity());
                    assertTrue(first.token().startsWith("qcow2:" + (10 << 20) + ":"), first.token());
                    assertTrue(first.describe().matches("qcow2 chain [0-9a-f]{12} of 4 layer\\(s\\): top " + java.util.regex.Pattern.quote(top.toString()) + ".*"), first.describe());
                    assertTrue(first.describe().contains("base.raw (raw)"), first.describe());
                    assertEquals(10 << 20, first.size());
                }
                try (Qcow2Backing b = open(top, new FileOpener())) {
                    assertEquals(first, b.identity(), "the same chain opened again");
                }
                Thread.sleep(20); // past the file system's timestamp granularity
                QemuTools.io(top.getParent().resolve("a"), "l1.qcow2", "write -P 0x83 6M 4k");
                try (Qcow2Backing b = open(top, new FileOpener())) {
                    assertNotEquals(first, b.identity(), "a changed middle layer changes the identity");
                }
            });
        }

        @Test
        @DisplayName("a missing layer fails the open with the opener's reason; everything opened is closed")
        void missingLayer() throws Exception {
            Files.delete(top.getParent().resolve("base/base.raw"));
            FileOpener opener = new FileOpener();
            Tracked container = container(top);
            CorfsException e = assertThrows(CorfsException.class,
                    () -> Qcow2Backing.open(top.toString(), container, opener, Map.of()));
            assertEquals(CorfsException.Reason.NOT_FOUND, e.reason(), e.getMessage());
            assertTrue(e.getMessage().contains("l1.qcow2: cannot open backing file '../base/base.raw'"), e.getMessage());
            assertEquals(2, opener.opened.size());
            assertTrue(container.closed.get(), "the container is closed");
            assertTrue(opener.opened.stream().allMatch(t -> t.closed.get()), "every layer opened is closed");
        }
    }

    @Test
    @DisplayName("a local image naming another transport is refused; the container is closed")
    void otherTransportRefused() throws Exception {
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "nbd://127.0.0.1:1/x", "-F", "raw",
                "over-nbd.qcow2", "1M");
        Tracked container = container(dir.resolve("over-nbd.qcow2"));
        FileOpener opener = new FileOpener();
        CorfsException e = assertThrows(CorfsException.class,
                () -> Qcow2Backing.open(container.location(), container, opener, Map.of()));
        assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason(), e.getMessage());
        assertTrue(e.getMessage().contains("another transport"), e.getMessage());
        assertTrue(opener.specs.isEmpty());
        assertTrue(container.closed.get());
    }

    @Test
    @DisplayName("commit is refused with READ_ONLY and what to do instead")
    void readOnly() throws Exception {
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "ro.qcow2", "1M");
        try (Qcow2Backing b = open(dir.resolve("ro.qcow2"), new FileOpener())) {
            CorfsException e = assertThrows(CorfsException.class, b::openWriter);
            assertEquals(CorfsException.Reason.READ_ONLY, e.reason());
            assertEquals("commit into a qcow2 backing is refused: export the chain writable with qemu-nbd and use an"
                    + " NBD backing", e.getMessage());
        }
    }

    @Test
    @DisplayName("looksLikeQcow2: the magic and a version of at least 2, as QEMU probes")
    void probe() throws Exception {
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "probe.qcow2", "1M");
        Files.write(dir.resolve("probe.raw"), new byte[4096]);
        Files.write(dir.resolve("v1.raw"), new byte[] {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 1, 0, 0});
        Files.write(dir.resolve("v3.raw"), new byte[] {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 3, 0, 0});
        Files.write(dir.resolve("tiny.raw"), new byte[] {'Q', 'F', 'I'});
        for (String[] c : new String[][] {{"probe.qcow2", "true"}, {"probe.raw", "false"}, {"v1.raw", "false"},
                {"v3.raw", "true"}, {"tiny.raw", "false"}}) {
            try (Backing b = FileBacking.open(dir.resolve(c[0]), FileOps.system())) {
                assertEquals(Boolean.parseBoolean(c[1]), Qcow2Backing.looksLikeQcow2(b), c[0]);
                assertEquals(0, b.allocation(0, 1).length() - 1, "still open");
            }
        }
    }

    @Test
    @DisplayName("l2-cache=SIZE: 64K to 1G with K, M, G; anything else is INVALID_ARGUMENT naming it")
    void l2Cache() throws Exception {
        assertEquals(4L << 20, Qcow2Backing.l2CacheBytes(Map.of()));
        assertEquals(64L << 10, Qcow2Backing.l2CacheBytes(Map.of("l2-cache", "64K")));
        assertEquals(32L << 20, Qcow2Backing.l2CacheBytes(Map.of("l2-cache", "32m")));
        assertEquals(1L << 30, Qcow2Backing.l2CacheBytes(Map.of("l2-cache", "1G")));
        assertEquals(100_000, Qcow2Backing.l2CacheBytes(Map.of("l2-cache", "100000")));
        Qcow2Backing.validate(Map.of("timeout", "5", "ca", "/x"));
        for (String bad : new String[] {"63K", "2G", "0", "-1", "abc", "4T", "1.5M", "", "99999999999999999999K"}) {
            CorfsException e = assertThrows(CorfsException.class, () -> Qcow2Backing.validate(Map.of("l2-cache", bad)), bad);
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().startsWith("l2-cache=" + bad + " "), e.getMessage());
        }
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "small-cache.qcow2", "40M");
        QemuTools.io(dir, "small-cache.qcow2", "write -P 0x3c 0 4k", "write -P 0x3d 39M 4k");
        Path img = dir.resolve("small-cache.qcow2");
        try (Qcow2Backing b = Qcow2Backing.open(img.toString(), container(img), new FileOpener(), Map.of("l2-cache", "64K"))) {
            verify(b, img);
        }
    }

    @Test
    @DisplayName("readers do not wait for each other: four compressed-cluster reads are in the container at once")
    void parallelReaders() throws Exception {
        Qcow2CorpusTest.writeMixedData(dir.resolve("par.raw"), 4 << 20, 9);
        QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "par.raw", "par.qcow2");
        byte[] expected = Files.readAllBytes(dir.resolve("par.raw"));
        Path img = dir.resolve("par.qcow2");
        Tracked container = container(img);
        assertTimeoutPreemptively(GUARD, () -> {
            try (Qcow2Backing b = Qcow2Backing.open(img.toString(), container, new FileOpener(), Map.of())) {
                List<Long> compressed = new ArrayList<>();
                for (long pos = 0; pos < b.size() && compressed.size() < 4; pos += 65536) {
                    if (b.allocation(pos, 65536).kind() == Allocation.Kind.DATA && !allZero(expected, pos)) {
                        compressed.add(pos); // metadata now cached: the reads below touch only data
                    }
                }
                assertEquals(4, compressed.size());
                container.gate = new CyclicBarrier(4, () -> container.gate = null);
                ExecutorService pool = Executors.newFixedThreadPool(4, r -> new Thread(r, "qcow2-parallel-reader"));
                try {
                    List<Future<byte[]>> reads = new ArrayList<>();
                    for (long pos : compressed) {
                        reads.add(pool.submit(() -> {
                            ByteBuffer dst = ByteBuffer.allocate(65536);
                            b.readFully(dst, pos);
                            return dst.array();
                        }));
                    }
                    for (int i = 0; i < 4; i++) {
                        int at = (int) (long) compressed.get(i);
                        assertArrayEquals(java.util.Arrays.copyOfRange(expected, at, at + 65536),
                                reads.get(i).get(90, TimeUnit.SECONDS));
                    }
                } finally {
                    pool.shutdown();
                    assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
                }
            }
        });
    }

    @Test
    @DisplayName("a stream of compressed clusters asks the container once per run of neighbours, not once per cluster")
    void compressedRuns() throws Exception {
        byte[] text = new byte[8 << 20];
        for (int i = 0; i < text.length; i++) {
            text[i] = (byte) ("compressed run " + (i >> 12)).charAt(i % 15);
        }
        Files.write(dir.resolve("runs.raw"), text);
        QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", "runs.raw",
                "runs.qcow2");
        Path img = dir.resolve("runs.qcow2");
        Tracked container = container(img);
        try (Qcow2Backing b = Qcow2Backing.open(img.toString(), container, new FileOpener(), Map.of())) {
            byte[] got = new byte[text.length];
            for (int off = 0; off < got.length; off += 1 << 20) {
                b.readFully(ByteBuffer.wrap(got, off, 1 << 20), off);
            }
            assertArrayEquals(text, got);
            int clusters = text.length / 4096;
            // at most 64 clusters a request, plus metadata: far below one request per cluster
            assertTrue(container.reads.get() < clusters / 16, container.reads.get() + " reads for " + clusters
                    + " compressed clusters");
        }
    }

    private static boolean allZero(byte[] b, long pos) {
        for (int i = 0; i < 65536; i++) {
            if (b[(int) pos + i] != 0) {
                return false;
            }
        }
        return true;
    }

    @Test
    @DisplayName("a container truncated after open fails the reads past its new end, never zeros")
    void shrunkContainer() throws Exception {
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "shrink.qcow2", "4M");
        QemuTools.io(dir, "shrink.qcow2", "write -P 0x77 0 64k", "write -P 0x78 3M 64k");
        Path img = dir.resolve("shrink.qcow2");
        try (Qcow2Backing b = open(img, new FileOpener())) {
            ByteBuffer first = ByteBuffer.allocate(65536);
            b.readFully(first, 0);
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
                f.setLength(f.length() - 65536); // the last data cluster (written last)
            }
            assertThrows(IOException.class, () -> b.readFully(ByteBuffer.allocate(65536), 3 << 20));
            ByteBuffer again = ByteBuffer.allocate(65536);
            b.readFully(again, 0);
            assertFalse(again.hasRemaining());
            assertEquals(0x77, again.get(100));
        }
    }
}
