package corfs.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.backing.BackingMeter;
import corfs.backing.FileBacking;
import corfs.backing.MeteredBacking;
import corfs.backing.TimeoutBacking;
import corfs.image.ClusterBitmap;
import corfs.image.LeafImage;
import corfs.io.FileOps;
import corfs.vocabulary.LeafCounters;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@DisplayName("LeafDisk counters: fetched bytes by purpose, backing calls, latency and errors")
class FetchCountersTest {
    private static final int CLUSTER = 64 * 1024;
    private static final int SIZE = 32 << 20;

    @TempDir
    Path dir;

    /** Random data without holes or zero clusters: every cluster fetched is data. */
    private static void randomBacking(Path backing, long seed) throws IOException {
        byte[] content = new byte[SIZE];
        new java.util.Random(seed).nextBytes(content);
        java.nio.file.Files.write(backing, content);
    }

    private LeafDisk open(Path backing) throws IOException {
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, true);
        LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
        return new LeafDisk("leaf.img", image, new MeteredBacking(FileBacking.open(backing, FileOps.system()),
                new BackingMeter()), false);
    }

    @Test
    @DisplayName("a guest read, a write edge, a stream fill and read-ahead each count under their purpose")
    void byPurpose() throws Exception {
        Path backing = dir.resolve("base.raw");
        randomBacking(backing, 7);
        try (LeafDisk disk = open(backing)) {
            disk.read(ByteBuffer.allocate(100), 5L * CLUSTER + 10); // one cluster, not sequential
            assertEquals(CLUSTER, disk.fetchedBytes(FetchPurpose.COPY_ON_READ));
            disk.write(ByteBuffer.allocate(10), 100L * CLUSTER + 5); // a partly written cluster: its edge
            assertEquals(2L * CLUSTER, disk.fetchedBytes(FetchPurpose.COPY_ON_READ));
            disk.write(ByteBuffer.allocate(CLUSTER), 200L * CLUSTER); // whole cluster: nothing fetched
            assertEquals(2L * CLUSTER, disk.fetchedBytes(FetchPurpose.COPY_ON_READ));
            disk.fill(300, 309);
            assertEquals(10L * CLUSTER, disk.fetchedBytes(FetchPurpose.STREAM));
            disk.fill(310, 311, FetchPurpose.PREFETCH);
            assertEquals(2L * CLUSTER, disk.fetchedBytes(FetchPurpose.PREFETCH));
            disk.fill(300, 311, FetchPurpose.PREFETCH); // local already: nothing more
            assertEquals(2L * CLUSTER, disk.fetchedBytes(FetchPurpose.PREFETCH));
            assertEquals(0, disk.fetchedBytes(FetchPurpose.READ_AHEAD));

            LeafCounters c = disk.counters();
            assertEquals(2L * CLUSTER, c.fetchedCopyOnRead());
            assertEquals(10L * CLUSTER, c.fetchedStream());
            assertEquals(2L * CLUSTER, c.fetchedPrefetch());
            assertTrue(c.backingCalls() >= 5, "every fill asks the backing at least once: " + c);
            assertTrue(c.latencySumNanos() > 0, c.toString());
            assertEquals(0, c.timeouts() + c.ioErrors());
        }
    }

    @Test
    @DisplayName("a sequential cold reader's read-ahead counts as read_ahead, and all fetched bytes end up local")
    void readAhead() throws Exception {
        Path backing = dir.resolve("base.raw");
        randomBacking(backing, 8);
        try (LeafDisk disk = open(backing)) {
            ByteBuffer b = ByteBuffer.allocate(128 * 1024);
            for (long off = 0; off < 8 << 20; off += b.capacity()) {
                b.clear();
                disk.read(b, off);
            }
            disk.close(); // waits for the read-ahead threads
            LeafCounters c = disk.counters();
            assertTrue(c.fetchedReadAhead() > 0, c.toString());
            assertEquals(disk.localBytes(), c.fetchedCopyOnRead() + c.fetchedReadAhead(), c.toString());
        }
    }

    @Test
    @DisplayName("a read a prefetch follows fetches nothing ahead; one off its path (or with no prefetch) does")
    void noReadAheadWhereAPrefetchFollows() throws Exception {
        Path backing = dir.resolve("base.raw");
        randomBacking(backing, 10);
        long followedFrom = 0;
        long followedTo = (8L << 20) / CLUSTER; // the "profile": the first 8 MiB
        try (LeafDisk disk = open(backing)) {
            assertTrue(disk.guestReads(null, (first, last) -> first < followedTo && last >= followedFrom));
            ByteBuffer b = ByteBuffer.allocate(128 * 1024);
            for (long off = 0; off < 8 << 20; off += b.capacity()) { // sequential, on the path
                b.clear();
                disk.read(b, off);
            }
            for (long off = 16 << 20; off < 24 << 20; off += b.capacity()) { // sequential, off the path
                b.clear();
                disk.read(b, off);
            }
            disk.close(); // waits for the read-ahead threads
            LeafCounters c = disk.counters();
            ClusterBitmap local = disk.image().local();
            long mib = (1L << 20) / CLUSTER;
            assertTrue(local.allSet(0, followedTo), c.toString());
            assertEquals(16 * mib, local.nextSet(followedTo, 16 * mib), "nothing fetched past the followed reads: " + c);
            assertTrue(local.allSet(16 * mib, 24 * mib), c.toString());
            assertTrue(local.nextSet(24 * mib, SIZE / CLUSTER) < SIZE / CLUSTER,
                    "the reads off the path fetch ahead: " + c);
        }
    }

    @Test
    @DisplayName("holes of the backing are not fetched bytes")
    void holes() throws Exception {
        Path backing = dir.resolve("sparse.raw");
        try (var raf = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
            raf.setLength(SIZE);
        }
        try (LeafDisk disk = open(backing)) {
            disk.fill(0, SIZE / CLUSTER - 1);
            assertEquals(SIZE, disk.localBytes());
            assertEquals(0, disk.counters().fetchedTotal());
        }
    }

    @Test
    @DisplayName("a backing call past its deadline counts as a timeout, with its time in the histogram")
    void timeout() throws Exception {
        Path backing = dir.resolve("base.raw");
        randomBacking(backing, 9);
        DelayBacking slow = new DelayBacking(FileBacking.open(backing, FileOps.system()), 4, 0);
        slow.closeGate();
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, true);
        BackingMeter meter = new BackingMeter();
        try (LeafDisk disk = new LeafDisk("leaf.img", LeafImage.open(leaf, FileOps.system(), false, false),
                new MeteredBacking(new TimeoutBacking(slow, 200), meter), false)) {
            assertThrows(IOException.class, () -> disk.read(ByteBuffer.allocate(10), 0));
            slow.openGate();
            LeafCounters c = disk.counters();
            assertEquals(1, c.timeouts(), c.toString());
            assertEquals(0, c.ioErrors(), c.toString());
            assertEquals(0, c.fetchedTotal());
            long slowCalls = 0;
            long[] buckets = c.latencyBuckets();
            for (int i = 0; i < buckets.length; i++) {
                if (i == buckets.length - 1 || LeafCounters.LATENCY_BOUNDS_SECONDS[i] > 0.1) {
                    slowCalls += buckets[i];
                }
            }
            assertEquals(1, slowCalls, "the timed-out read waited its deadline (200 ms): " + c);
        }
    }

    @Test
    @DisplayName("bucketOf: each bound is inclusive, slower calls go to +Inf")
    void buckets() {
        double[] bounds = LeafCounters.LATENCY_BOUNDS_SECONDS;
        assertEquals(0, LeafCounters.bucketOf(0));
        assertEquals(0, LeafCounters.bucketOf((long) (bounds[0] * 1e9)));
        assertEquals(1, LeafCounters.bucketOf((long) (bounds[0] * 1e9) + 1));
        assertEquals(bounds.length, LeafCounters.bucketOf(Long.MAX_VALUE));
    }
}
