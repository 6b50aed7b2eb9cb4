package corfs.engine;

import corfs.CorfsException;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("LeafDisk: copy-on-read engine against an in-memory model")
class LeafDiskTest {
    private static final int SIZE = 3 * 1024 * 1024 + 12345; // not a multiple of any cluster size

    @TempDir
    Path dir;

    static FileOps[] fileOps() {
        return new FileOps[] {TestLeaves.portable(), FileOps.system()};
    }

    @Nested
    @DisplayName("reads")
    class Reads {
        @Test
        @DisplayName("a fresh leaf reads exactly the backing, and reading makes clusters local")
        void freshLeafReadsBacking() throws Exception {
            Path backing = dir.resolve("base.raw");
            byte[] content = TestLeaves.writeBacking(backing, SIZE, 1);
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 64 * 1024, FileOps.system())) {
                assertEquals(0, disk.localBytes());
                assertArrayEquals(content, TestLeaves.readAll(disk));
                assertEquals(SIZE, disk.localBytes());
                assertEquals(0, disk.dirtyBytes());
                // a second read is served from the leaf alone: prove it by changing the backing under it
                Files.write(backing, new byte[1024], java.nio.file.StandardOpenOption.WRITE);
                assertArrayEquals(content, TestLeaves.readAll(disk));
            }
        }

        @Test
        @DisplayName("reads past the end return nothing; reads crossing it are short")
        void readsAtTheEnd() throws Exception {
            Path backing = dir.resolve("base.raw");
            byte[] content = TestLeaves.writeBacking(backing, SIZE, 2);
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 4096, FileOps.system())) {
                assertEquals(0, disk.read(ByteBuffer.allocate(10), SIZE));
                ByteBuffer b = ByteBuffer.allocate(100);
                assertEquals(45, disk.read(b, SIZE - 45));
                assertArrayEquals(Arrays.copyOfRange(content, SIZE - 45, SIZE), Arrays.copyOf(b.array(), 45));
            }
        }

        @Test
        @DisplayName("holes and zero clusters of the backing stay holes in the leaf")
        void holesStayHoles() throws Exception {
            Path backing = dir.resolve("base.raw");
            int size = 16 << 20;
            try (var raf = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
                raf.setLength(size);
                raf.seek(5 << 20);
                raf.write(new byte[] {1, 2, 3});
            }
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 64 * 1024, FileOps.system())) {
                TestLeaves.readAll(disk);
                assertEquals(size, disk.localBytes());
                assertTrue(disk.allocatedBytes() <= 256 * 1024,
                        "leaf should hold about one cluster, holds " + disk.allocatedBytes());
            }
        }
    }

    @Nested
    @DisplayName("random reads and writes against a model")
    class RandomWorkload {
        @ParameterizedTest(name = "cluster size {0}")
        @ValueSource(ints = {4096, 65536, 1 << 20})
        void randomIoMatchesModel(int clusterSize) throws Exception {
            long seed = System.nanoTime();
            Random random = new Random(seed);
            Path backing = dir.resolve("base.raw");
            byte[] model = TestLeaves.writeBacking(backing, SIZE, seed);
            Path leaf = dir.resolve("leaf.img");
            LeafDisk disk = TestLeaves.createAndOpen(dir, backing, clusterSize, FileOps.system());
            try {
                for (int op = 0; op < 600; op++) {
                    int off = random.nextInt(SIZE);
                    int len = 1 + random.nextInt(Math.min(300_000, SIZE - off));
                    int kind = random.nextInt(10);
                    if (kind < 4) {
                        byte[] data = new byte[len];
                        random.nextBytes(data);
                        assertEquals(len, disk.write(ByteBuffer.wrap(data), off));
                        System.arraycopy(data, 0, model, off, len);
                    } else if (kind < 5) {
                        disk.zeroRange(off, len);
                        Arrays.fill(model, off, off + len, (byte) 0);
                    } else if (kind < 9) {
                        ByteBuffer b = ByteBuffer.allocateDirect(len);
                        assertEquals(len, disk.read(b, off));
                        byte[] got = new byte[len];
                        b.flip().get(got);
                        assertArrayEquals(Arrays.copyOfRange(model, off, off + len), got,
                                "read at " + off + "+" + len + " (seed " + seed + ")");
                    } else {
                        disk.flush();
                        if (random.nextBoolean()) {
                            disk.close();
                            disk = TestLeaves.open(leaf, FileOps.system());
                        }
                    }
                }
                assertArrayEquals(model, TestLeaves.readAll(disk), "final content (seed " + seed + ")");
            } finally {
                disk.close();
            }
            try (LeafDisk reopened = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(model, TestLeaves.readAll(reopened), "after reopen (seed " + seed + ")");
            }
        }
    }

    @Nested
    @DisplayName("concurrency")
    class Concurrency {
        @Test
        @DisplayName("fills racing writes to the same cluster never bring back backing data (2,048 races)")
        void fillsRacingWrites() throws Exception {
            Path backing = dir.resolve("base.raw");
            int clusters = 4096;
            byte[] content = new byte[clusters * 4096];
            Arrays.fill(content, (byte) 0x11);
            Files.write(backing, content);
            // The backing answers after a random pause of up to 0.2 ms, which widens every window between a
            // fill's "not local" check and its write to the leaf: without the cluster lock, this test fails.
            FileOps slowBacking = new corfs.io.PortableFileOps() {
                @Override
                public java.nio.channels.FileChannel openChannel(Path path, java.nio.file.OpenOption... options)
                        throws java.io.IOException {
                    java.nio.channels.FileChannel inner = super.openChannel(path, options);
                    if (!path.equals(backing.toAbsolutePath().normalize())) {
                        return inner;
                    }
                    return new DelegatingFileChannel(path, inner) {
                        @Override
                        protected void beforeRead(long position, int length) {
                            long until = System.nanoTime()
                                    + java.util.concurrent.ThreadLocalRandom.current().nextLong(200_000);
                            while (System.nanoTime() < until) {
                                Thread.onSpinWait();
                            }
                        }
                    };
                }
            };
            java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(3);
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 4096, slowBacking)) {
                // Each round races a guest write, a stream fill and a COR read on a cluster not local yet.
                // Only even clusters: their odd neighbours stay missing, so no read counts as sequential
                // and no readahead or prefetch makes a later round's cluster local before its race.
                int races = 0;
                for (int cluster = 0; cluster < clusters; cluster += 2) {
                    assertFalse(disk.image().local().get(cluster), "cluster " + cluster + " must be missing before its race");
                    long off = cluster * 4096L + 100 + (cluster % 3000);
                    final int c = cluster;
                    var write = pool.submit(() -> disk.write(ByteBuffer.wrap(new byte[] {0x22, 0x22, 0x22}), off));
                    var fill = pool.submit(() -> {
                        disk.fill(c, c);
                        return null;
                    });
                    var read = pool.submit(() -> disk.read(ByteBuffer.allocate(4096), c * 4096L));
                    write.get(10, java.util.concurrent.TimeUnit.SECONDS);
                    fill.get(10, java.util.concurrent.TimeUnit.SECONDS);
                    read.get(10, java.util.concurrent.TimeUnit.SECONDS);
                    ByteBuffer check = ByteBuffer.allocate(3);
                    disk.read(check, off);
                    assertArrayEquals(new byte[] {0x22, 0x22, 0x22}, check.array(), "cluster " + cluster);
                    races++;
                }
                assertEquals(clusters / 2, races);
                disk.flush();
            } finally {
                pool.shutdownNow();
            }
            try (LeafDisk reopened = TestLeaves.open(dir.resolve("leaf.img"), FileOps.system())) {
                ByteBuffer check = ByteBuffer.allocate(3);
                for (int cluster = 0; cluster < clusters; cluster += 2 * 255) {
                    check.clear();
                    reopened.read(check, cluster * 4096L + 100 + (cluster % 3000));
                    assertArrayEquals(new byte[] {0x22, 0x22, 0x22}, check.array(), "after reopen, cluster " + cluster);
                }
            }
        }

        @Test
        @DisplayName("many threads reading and writing disjoint and shared clusters agree with a model")
        void parallelDisjointWriters() throws Exception {
            Path backing = dir.resolve("base.raw");
            byte[] model = TestLeaves.writeBacking(backing, 4 << 20, 7);
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 65536, FileOps.system())) {
                int threads = 8;
                Thread[] ts = new Thread[threads];
                int slice = (4 << 20) / threads;
                for (int t = 0; t < threads; t++) {
                    final int id = t;
                    ts[t] = new Thread(() -> {
                        Random r = new Random(id);
                        try {
                            for (int i = 0; i < 200; i++) {
                                int off = id * slice + r.nextInt(slice - 5000);
                                byte[] data = new byte[1 + r.nextInt(4999)];
                                r.nextBytes(data);
                                disk.write(ByteBuffer.wrap(data), off);
                                synchronized (model) {
                                    System.arraycopy(data, 0, model, off, data.length);
                                }
                                disk.read(ByteBuffer.allocate(70000), r.nextInt((4 << 20) - 70000));
                            }
                        } catch (Exception e) {
                            throw new AssertionError(e);
                        }
                    }, "test-io-" + t);
                    ts[t].start();
                }
                for (Thread t : ts) {
                    t.join(60_000);
                    assertFalse(t.isAlive());
                }
                assertArrayEquals(model, TestLeaves.readAll(disk));
            }
        }
    }

    @Nested
    @DisplayName("read-only")
    class ReadOnly {
        @Test
        @DisplayName("a read-only disk serves missing clusters from the backing and changes no file")
        void readOnlyServesUncached() throws Exception {
            Path backing = dir.resolve("base.raw");
            byte[] content = TestLeaves.writeBacking(backing, SIZE, 4);
            Path leaf = dir.resolve("leaf.img");
            corfs.image.LeafImage.create(leaf, backing, 65536, false);
            byte[] leafBefore = Files.readAllBytes(leaf);
            byte[] metaBefore = Files.readAllBytes(corfs.image.LeafImage.metadataPathOf(leaf));
            corfs.image.LeafImage image = corfs.image.LeafImage.open(leaf, FileOps.system(), true, false);
            try (LeafDisk disk = new LeafDisk("leaf.img", image,
                    corfs.backing.FileBacking.open(backing, FileOps.system()), true)) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
                assertEquals(0, disk.localBytes());
                CorfsException e = assertThrows(CorfsException.class, () -> disk.write(ByteBuffer.allocate(1), 0));
                assertEquals(CorfsException.Reason.READ_ONLY, e.reason());
            }
            assertArrayEquals(leafBefore, Files.readAllBytes(leaf));
            assertArrayEquals(metaBefore, Files.readAllBytes(corfs.image.LeafImage.metadataPathOf(leaf)));
        }
    }

    @Nested
    @DisplayName("errors")
    class Errors {
        @Test
        @DisplayName("writes past the end fail with FILE_TOO_BIG and change nothing")
        void writePastEnd() throws Exception {
            Path backing = dir.resolve("base.raw");
            TestLeaves.writeBacking(backing, SIZE, 3);
            try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 65536, FileOps.system())) {
                CorfsException e = assertThrows(CorfsException.class, () -> disk.write(ByteBuffer.allocate(10), SIZE));
                assertEquals(CorfsException.Reason.FILE_TOO_BIG, e.reason());
                assertEquals(0, disk.dirtyBytes());
                assertEquals(5, disk.write(ByteBuffer.allocate(10), SIZE - 5), "a write crossing the end is short");
            }
        }
    }
}
