package corfs.engine;

import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.image.MetadataFormat;
import corfs.io.PortableFileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The in-use flag (LeafImage's class comment): a write to a clean local cluster makes the flag durable
 * once per open instead of flushing its dirty bit; a clean close clears it; an open that finds it set
 * with nobody holding the leaf counts every local cluster as dirty. PowerCutTest checks the same rule
 * at every cut point of a recorded run; these check each step on its own.
 */
@DisplayName("The in-use flag: dirty bits may lag only while it is durable")
class InUseFlagTest {
    private static final int SIZE = 64 * 4096;
    private static final int CLUSTER = 4096;

    @TempDir
    Path dir;

    /** A leaf whose first {@code localClusters} clusters are local and clean, closed cleanly. */
    private Path leafWithCleanClusters(int localClusters) throws IOException {
        Path backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, SIZE, 42);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, false);
        try (LeafDisk disk = TestLeaves.open(leaf, new PortableFileOps())) {
            disk.fill(0, localClusters - 1);
            disk.flush();
        }
        return leaf;
    }

    @Test
    @DisplayName("writes into clean local clusters write the header once and no bitmap page until a flush")
    void firstWriteSetsTheFlagOnce() throws IOException {
        Path leaf = leafWithCleanClusters(32);
        PowerCutTest.RecordingFileOps rec = new PowerCutTest.RecordingFileOps(false);
        int metaFile = rec.fileId(LeafImage.metadataPathOf(leaf));
        try (LeafDisk disk = TestLeaves.open(leaf, rec)) {
            assertFalse(disk.image().header().inUse(), "reads and opens do not set it");
            int before = rec.eventCount();
            for (int c = 0; c < 10; c++) {
                disk.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), (long) c * 3 * CLUSTER / 2);
            }
            List<PowerCutTest.Event> during = rec.events().subList(before, rec.eventCount());
            long headerWrites = during.stream().filter(e -> e.file() == metaFile && !e.isForce()
                    && e.offset() < MetadataFormat.PAGES_OFFSET).count();
            long pageWrites = during.stream().filter(e -> e.file() == metaFile && !e.isForce()
                    && e.offset() >= MetadataFormat.PAGES_OFFSET).count();
            assertEquals(2, headerWrites, "both header slots, once: " + during.size() + " events");
            assertEquals(0, pageWrites, "no dirty bit is flushed on the write path");
            assertTrue(disk.image().header().inUse());
            assertTrue(LeafImages.info(leaf).dirtyBytes() < 32L * CLUSTER,
                    "an inspection while the leaf is held does not count every local cluster as dirty");
            disk.flush();
            assertTrue(rec.events().subList(before, rec.eventCount()).stream().anyMatch(e -> e.file() == metaFile
                    && !e.isForce() && e.offset() >= MetadataFormat.PAGES_OFFSET), "a flush stores the dirty bits");
        }
        try (LeafImage image = LeafImage.open(leaf, new PortableFileOps(), false, false)) {
            assertFalse(image.header().inUse(), "a clean close clears the flag");
            assertFalse(image.uncleanStop());
            assertEquals(10, image.dirty().count(), "exactly the written clusters are dirty");
            assertEquals(32, image.local().count());
        }
    }

    @Test
    @DisplayName("an open that finds the flag set after a crash counts every local cluster dirty, and keeps it")
    void uncleanStopCountsLocalAsDirty() throws IOException {
        Path leaf = leafWithCleanClusters(20);
        Path meta = LeafImage.metadataPathOf(leaf);
        byte[] crashed;
        try (LeafDisk disk = TestLeaves.open(leaf, new PortableFileOps())) {
            disk.write(ByteBuffer.wrap(new byte[] {9}), 5 * CLUSTER);
            disk.flush();
            disk.write(ByteBuffer.wrap(new byte[] {8}), 7 * CLUSTER); // its dirty bit is not stored
            crashed = Files.readAllBytes(meta); // the metadata as a kill -9 would leave it
        }
        Files.write(meta, crashed);
        assertEquals(20L * CLUSTER, LeafImages.info(leaf).dirtyBytes(),
                "an inspection of a leaf nobody holds reports what a commit would copy");
        try (LeafImage image = LeafImage.open(leaf, new PortableFileOps(), true, false)) {
            assertTrue(image.uncleanStop());
            assertEquals(20, image.dirty().count(), "a read-only open counts them too");
        }
        assertEquals(crashed.length, Files.size(meta));
        assertTrue(java.util.Arrays.equals(crashed, Files.readAllBytes(meta)), "read-only opens write nothing");
        try (LeafDisk disk = TestLeaves.open(leaf, new PortableFileOps())) {
            assertTrue(disk.image().uncleanStop());
            assertTrue(disk.image().header().inUse(), "the flag stays until a clean close");
            assertEquals(20, disk.image().dirty().count(), "every local cluster, the unstored one (7) among them");
            assertTrue(disk.image().dirty().get(7));
        }
        try (LeafImage image = LeafImage.open(leaf, new PortableFileOps(), false, false)) {
            assertFalse(image.uncleanStop());
            assertFalse(image.header().inUse());
            assertEquals(20, image.dirty().count(), "the clean close stored them before clearing the flag");
        }
    }

    @Test
    @DisplayName("copy-on-read, fills and writes to clusters not yet local never set the flag")
    void noFlagWithoutAWriteToACleanLocalCluster() throws IOException {
        Path leaf = leafWithCleanClusters(4);
        try (LeafDisk disk = TestLeaves.open(leaf, new PortableFileOps())) {
            disk.read(ByteBuffer.allocate(20 * CLUSTER), 0); // copy-on-read of clusters 4..19
            disk.fill(20, 30);
            disk.write(ByteBuffer.wrap(new byte[CLUSTER]), 40L * CLUSTER); // local after its write
            disk.flush();
            assertEquals(31, disk.image().local().count() - 1, "0..30 and 40 are local");
            assertFalse(disk.image().header().inUse());
            disk.write(ByteBuffer.wrap(new byte[] {1}), 40L * CLUSTER); // dirty already: durable with local
            assertFalse(disk.image().header().inUse());
            disk.zeroRange(2L * CLUSTER, CLUSTER); // clean and local: the flag first
            assertTrue(disk.image().header().inUse());
        }
    }
    @Test
    @DisplayName("a write that fails after part of it landed keeps its cluster dirty through a commit that copied it before")
    void tornWriteDuringCommitStaysDirty() throws IOException {
        Path leaf = leafWithCleanClusters(8);
        FaultFileOps faults = new FaultFileOps();
        try (LeafDisk disk = TestLeaves.open(leaf, faults)) {
            disk.write(ByteBuffer.wrap(new byte[] {7}), 3L * CLUSTER); // local and dirty
            try (corfs.backing.Backing.Writer writer = disk.backing().openWriter()) {
                long[] copied = disk.copyDirtyToBacking(0, disk.clusters() - 1, writer);
                assertEquals(1, copied.length);
                faults.tornWrite(leaf.getFileName().toString(), 16); // 16 of its bytes land, then ENOSPC
                byte[] newer = new byte[64];
                java.util.Arrays.fill(newer, (byte) 0x5a);
                assertThrows(IOException.class, () -> disk.write(ByteBuffer.wrap(newer), 3L * CLUSTER + 100));
                faults.clear();
                writer.flush();
                disk.markCommitted(copied);
            }
            ByteBuffer landed = ByteBuffer.allocate(16);
            disk.read(landed, 3L * CLUSTER + 100);
            assertEquals(0x5a, landed.get(0), "part of the failed write landed in the leaf");
            assertTrue(disk.image().dirty().get(3),
                    "the cluster now differs from what the commit copied: it must stay dirty, or no commit copies it");
        }
    }
    @Test
    @DisplayName("a write that arrives while close clears the flag lands nothing, or the flag stays")
    void writeDuringCloseNeverLandsUnflagged() throws Exception {
        Path leaf = leafWithCleanClusters(8);
        java.util.concurrent.CountDownLatch clearing = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.atomic.AtomicBoolean armed = new java.util.concurrent.atomic.AtomicBoolean();
        String metaName = LeafImage.metadataPathOf(leaf).getFileName().toString();
        PortableFileOps ops = new PortableFileOps() {
            @Override
            public java.nio.channels.FileChannel openChannel(Path path, java.nio.file.OpenOption... options)
                    throws IOException {
                boolean meta = path.getFileName().toString().equals(metaName);
                return new DelegatingFileChannel(path, java.nio.channels.FileChannel.open(path, options)) {
                    @Override
                    protected void beforeWrite(long position, int length) throws IOException {
                        if (meta && position < MetadataFormat.PAGES_OFFSET && armed.compareAndSet(true, false)) {
                            clearing.countDown(); // close flushed and now clears the flag: hold it there
                            try {
                                if (!release.await(30, java.util.concurrent.TimeUnit.SECONDS)) {
                                    throw new IOException("test latch never opened");
                                }
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                                throw new IOException(e);
                            }
                        }
                    }
                };
            }
        };
        byte[] newer = new byte[4096];
        java.util.Arrays.fill(newer, (byte) 0x77);
        LeafDisk disk = TestLeaves.open(leaf, ops);
        disk.write(ByteBuffer.wrap(new byte[] {1}), 2L * CLUSTER); // sets the flag
        assertTrue(disk.image().header().inUse());
        armed.set(true);
        java.util.concurrent.atomic.AtomicReference<Throwable> closeFailure = new java.util.concurrent.atomic.AtomicReference<>();
        Thread closer = new Thread(() -> {
            try {
                disk.close();
            } catch (Throwable t) {
                closeFailure.set(t);
            }
        }, "test-closer");
        assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () -> {
            closer.start();
            assertTrue(clearing.await(30, java.util.concurrent.TimeUnit.SECONDS), "close reached the flag");
            try {
                disk.write(ByteBuffer.wrap(newer), 5L * CLUSTER); // a clean local cluster
            } catch (IOException refused) {
                // the fence: nothing landed
            } finally {
                release.countDown();
            }
            closer.join(30_000);
        });
        assertFalse(closer.isAlive());
        if (closeFailure.get() != null) {
            throw new AssertionError("close failed", closeFailure.get());
        }
        byte[] backing = Files.readAllBytes(dir.resolve("base.raw"));
        try (LeafImage image = LeafImage.open(leaf, new PortableFileOps(), true, false)) {
            ByteBuffer data = ByteBuffer.allocate(CLUSTER);
            image.data().read(data, 5L * CLUSTER);
            boolean changed = !java.util.Arrays.equals(data.array(), 0, CLUSTER, backing, 5 * CLUSTER, 6 * CLUSTER);
            assertTrue(!changed || image.dirty().get(5),
                    "cluster 5 holds written data: the metadata (or the flag) must say it is dirty");
        }
    }
    @Test
    @DisplayName("close waits for a write in flight (here blocked on the backing) before it clears the flag")
    void closeWaitsForAWriteInFlight() throws Exception {
        Path leaf = leafWithCleanClusters(8);
        FaultFileOps faults = new FaultFileOps();
        LeafDisk disk = TestLeaves.open(leaf, faults);
        java.util.concurrent.CountDownLatch backing = faults.hangReads("base.raw");
        byte[] newer = new byte[100];
        java.util.Arrays.fill(newer, (byte) 0x33);
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        // clusters 7 (local, clean) and 8 (not local, partly covered: filled from the hung backing first)
        Thread writer = new Thread(() -> {
            try {
                disk.write(ByteBuffer.wrap(newer), 8L * CLUSTER - 50);
            } catch (Throwable t) {
                failure.set(t);
            }
        }, "test-writer");
        Thread closer = new Thread(() -> {
            try {
                disk.close();
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        }, "test-closer");
        assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () -> {
            writer.start();
            while (!disk.image().header().inUse()) { // the writer raised cluster 7 and made the flag durable
                Thread.sleep(1);
            }
            closer.start();
            faults.clear();
            backing.countDown();
            writer.join(30_000);
            closer.join(30_000);
        });
        if (failure.get() != null) {
            throw new AssertionError("the write or the close failed", failure.get());
        }
        try (LeafImage image = LeafImage.open(leaf, new PortableFileOps(), true, false)) {
            assertTrue(image.dirty().get(7) && image.dirty().get(8) && image.local().get(8),
                    "the write landed before the final flush, which stored its bits: " + image);
            assertFalse(image.header().inUse(), "no write was left in flight: a clean close");
            ByteBuffer data = ByteBuffer.allocate(100);
            image.data().read(data, 8L * CLUSTER - 50);
            assertTrue(java.util.Arrays.equals(newer, data.array()));
        }
    }
}
