package corfs.engine;

import corfs.backing.FileBacking;
import corfs.image.ClusterBitmap;
import corfs.image.LeafImage;
import corfs.image.ProfileLog;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The recorded access profile against a model: the clusters of each guest request that were missing when
 * it came (the guest waited for them), in request order and ascending within a request, each once ever;
 * never the read-ahead window, never a fill of a job.
 */
@DisplayName("AccessRecorder: the clusters the guest waited for, in order, once, against a model")
class AccessRecorderTest {
    private static final int SIZE = 8 * 1024 * 1024 + 12345;

    @TempDir
    Path dir;

    /** A disk recording into LEAF.corfs-profile; close() closes disk and recorder as a mount does. */
    private record Recording(LeafDisk disk, AccessRecorder recorder, Path leaf) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            recorder.close();
            disk.close();
        }
    }

    private Recording open(Path leaf) throws IOException {
        LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
        AccessRecorder r = AccessRecorder.open(leaf, ProfileLog.Header.of(image.header()));
        FileBacking b = FileBacking.open(Path.of(image.header().backingPath()), FileOps.system());
        return new Recording(new LeafDisk(leaf.getFileName().toString(), image, b, false, r), r, leaf);
    }

    private Path newLeaf(int clusterSize) throws IOException {
        Path backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, SIZE, 7);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, clusterSize, true);
        return leaf;
    }

    private static long[] recorded(Path leaf) throws IOException {
        ProfileLog.Contents c = ProfileLog.read(leaf);
        assertEquals(0, c.droppedBytes(), "a cleanly closed profile has no torn tail");
        return java.util.Arrays.copyOf(c.clusters(), c.count());
    }

    private static long[] toArray(List<Long> l) {
        return l.stream().mapToLong(Long::longValue).toArray();
    }

    @ParameterizedTest(name = "cluster size {0}")
    @ValueSource(ints = {4096, 65536})
    @DisplayName("random reads (repeated, overlapping) and writes with partial edges record exactly the model's order")
    void randomWorkloadMatchesModel(int clusterSize) throws Exception {
        Path leaf = newLeaf(clusterSize);
        int shift = Integer.numberOfTrailingZeros(clusterSize);
        long clusters = (SIZE + clusterSize - 1L) >>> shift;
        Random random = new Random(clusterSize);
        List<Long> model = new ArrayList<>();
        ClusterBitmap modelRecorded = new ClusterBitmap(clusters);
        try (Recording rec = open(leaf)) {
            LeafDisk disk = rec.disk();
            ClusterBitmap local = disk.image().local();
            long lastEnd = -1;
            int done = 0;
            for (int attempt = 0; attempt < 2000 && done < 300; attempt++) {
                long offset = random.nextInt(SIZE);
                int len = 1 + random.nextInt(3 * clusterSize);
                if (random.nextInt(8) == 0 && !model.isEmpty()) {
                    offset = model.get(random.nextInt(model.size())) << shift; // a repeated read
                }
                len = (int) Math.min(len, SIZE - offset);
                long first = offset >>> shift;
                long last = (offset + len - 1) >>> shift;
                boolean write = random.nextInt(4) == 0;
                if (!write && (offset == lastEnd || (first > 0 && local.get(first - 1)))) {
                    continue; // a sequential read: its window is read-ahead's business (the next test)
                }
                List<Long> expected = new ArrayList<>();
                for (long c = first; c <= last; c++) {
                    boolean partial = (offset > (c << shift)) || (offset + len < Math.min(SIZE, (c + 1) << shift));
                    boolean waited = write ? partial && (c == first || c == last) : true;
                    if (waited && !local.get(c) && modelRecorded.set(c)) {
                        expected.add(c);
                    }
                }
                if (write) {
                    byte[] data = new byte[len];
                    random.nextBytes(data);
                    disk.write(ByteBuffer.wrap(data), offset);
                } else {
                    disk.read(ByteBuffer.allocate(len), offset);
                    lastEnd = offset + len;
                }
                model.addAll(expected);
                done++;
            }
            assertTrue(done >= 100, "too few non-sequential operations: " + done);
            assertEquals(model.size(), rec.recorder().recordedClusters());
        }
        assertArrayEquals(toArray(model), recorded(leaf));
    }

    @Test
    @DisplayName("a sequential read records the read-ahead window's clusters when it reads them, in read order")
    void sequentialReadRecordsOnlyTheRequest() throws Exception {
        Path leaf = newLeaf(65536);
        try (Recording rec = open(leaf)) {
            for (long off = 0; off < SIZE; off += 65536) {
                rec.disk().read(ByteBuffer.allocate(65536), off);
            }
        }
        long[] r = recorded(leaf);
        assertTrue(r.length >= 2 && r[0] == 0 && r[1] == 1, "first two requests waited: " + java.util.Arrays.toString(r));
        for (int i = 1; i < r.length; i++) {
            assertTrue(r[i] > r[i - 1], "ascending, each once: " + java.util.Arrays.toString(r));
        }
        assertEquals((SIZE + 65535) / 65536, r.length, "every cluster read is recorded once: " + java.util.Arrays.toString(r));
    }

    @Test
    @DisplayName("read-ahead the guest never reads is not recorded")
    void unreadWindowNotRecorded() throws Exception {
        Path leaf = newLeaf(65536);
        try (Recording rec = open(leaf)) {
            rec.disk().read(ByteBuffer.allocate(4096), 0);
            rec.disk().read(ByteBuffer.allocate(4096), 65536); // sequential: cluster 2 on are fetched ahead
            rec.disk().read(ByteBuffer.allocate(4096), 3 * 65536); // from the window (or waited for: recorded)
        }
        assertArrayEquals(new long[]{0, 1, 3}, recorded(leaf), "cluster 2 was fetched ahead and never read");
    }

    @Test
    @DisplayName("stream fills record nothing; a read-only disk records nothing")
    void fillsAndReadOnlyRecordNothing() throws Exception {
        Path leaf = newLeaf(65536);
        try (Recording rec = open(leaf)) {
            rec.disk().fill(0, 20);
            rec.disk().read(ByteBuffer.allocate(4096), 5 * 65536); // local: the hot path
            rec.disk().read(ByteBuffer.allocate(4096), 40 * 65536);
        }
        assertArrayEquals(new long[] {40}, recorded(leaf));
        LeafImage image = LeafImage.open(leaf, FileOps.system(), true, false);
        AccessRecorder r = AccessRecorder.open(dir.resolve("other.img"), ProfileLog.Header.of(image.header()));
        FileBacking b = FileBacking.open(Path.of(image.header().backingPath()), FileOps.system());
        try (LeafDisk disk = new LeafDisk("leaf.img", image, b, true, r)) {
            disk.read(ByteBuffer.allocate(4096), 60 * 65536);
        } finally {
            r.close();
        }
        assertEquals(0, ProfileLog.read(dir.resolve("other.img")).count());
    }

    @Test
    @DisplayName("a remount keeps the profile and appends after it; what was recorded is never recorded again")
    void remountAppendsWithoutDuplicates() throws Exception {
        Path leaf = newLeaf(65536);
        try (Recording rec = open(leaf)) {
            rec.disk().read(ByteBuffer.allocate(100), 30 * 65536);
            rec.disk().read(ByteBuffer.allocate(100), 10 * 65536);
            rec.recorder().flush();
            assertArrayEquals(new long[] {30, 10}, recorded(leaf)); // visible to a reader after a flush
            rec.disk().read(ByteBuffer.allocate(100), 50 * 65536);
        }
        // Clusters not local any more (a leaf made anew, its old profile put back) are fetched again, and
        // the guest waits for them again, but they are not recorded again.
        Path saved = dir.resolve("saved-profile");
        java.nio.file.Files.copy(ProfileLog.pathOf(leaf), saved);
        LeafImage.create(leaf, dir.resolve("base.raw"), 65536, true);
        assertFalse(java.nio.file.Files.exists(ProfileLog.pathOf(leaf)), "create removes a profile left by an old leaf");
        java.nio.file.Files.copy(saved, ProfileLog.pathOf(leaf));
        try (Recording rec = open(leaf)) {
            assertEquals(3, rec.recorder().recordedClusters());
            rec.disk().read(ByteBuffer.allocate(100), 10 * 65536);
            rec.disk().read(ByteBuffer.allocate(100), 20 * 65536);
        }
        assertArrayEquals(new long[] {30, 10, 50, 20}, recorded(leaf));
    }

    @Test
    @DisplayName("a profile of another backing identity is discarded and recording starts anew")
    void otherIdentityStartsAnew() throws Exception {
        Path leaf = newLeaf(65536);
        try (Recording rec = open(leaf)) {
            rec.disk().read(ByteBuffer.allocate(100), 30 * 65536);
        }
        LeafImage image = LeafImage.open(leaf, FileOps.system(), true, false);
        ProfileLog.Header h = ProfileLog.Header.of(image.header());
        image.close();
        ProfileLog.Header other = new ProfileLog.Header(h.identityToken() + "x", h.backingSize(), h.clusterSize());
        try (ProfileLog log = ProfileLog.openForAppend(leaf, other)) {
            assertEquals(0, log.loaded().count());
        }
        assertEquals(other, ProfileLog.read(leaf).header());
        assertEquals(0, ProfileLog.read(leaf).count());
    }

    @Test
    @DisplayName("cost: a cold-read loop with and without recording (printed, no verdict on speed)")
    void recordingCost() throws Exception {
        int rounds = 3;
        Path backing = dir.resolve("base.raw");
        int size = 32 << 20;
        TestLeaves.writeBacking(backing, size, 3);
        long[] withNs = new long[rounds];
        long[] withoutNs = new long[rounds];
        for (int round = 0; round < rounds; round++) {
            for (boolean recording : new boolean[] {true, false}) {
                Path leaf = dir.resolve("cost-" + round + "-" + recording + ".img");
                LeafImage.create(leaf, backing, 4096, true);
                LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
                AccessRecorder r = recording ? AccessRecorder.open(leaf, ProfileLog.Header.of(image.header())) : null;
                FileBacking b = FileBacking.open(backing, FileOps.system());
                long t0;
                long t1;
                try (LeafDisk disk = new LeafDisk(leaf.getFileName().toString(), image, b, false, r)) {
                    ByteBuffer buf = ByteBuffer.allocateDirect(4096);
                    Random random = new Random(round);
                    int clusters = size / 4096;
                    t0 = System.nanoTime();
                    for (int i = 0; i < clusters / 2; i++) {
                        long c = random.nextInt(clusters / 2) * 2L; // even clusters: never sequential
                        buf.clear();
                        disk.read(buf, c * 4096);
                    }
                    t1 = System.nanoTime();
                } finally {
                    if (r != null) {
                        r.close();
                    }
                }
                (recording ? withNs : withoutNs)[round] = t1 - t0;
            }
        }
        long with = java.util.Arrays.stream(withNs).min().orElse(0);
        long without = java.util.Arrays.stream(withoutNs).min().orElse(0);
        // The recorder's own cost per new cluster, alone: what a miss pays on top of its backing read.
        int n = 1 << 20;
        Path leaf = dir.resolve("alone.img");
        long best = Long.MAX_VALUE;
        for (int round = 0; round < rounds; round++) {
            java.nio.file.Files.deleteIfExists(ProfileLog.pathOf(leaf));
            try (AccessRecorder r = AccessRecorder.open(leaf, new ProfileLog.Header("t", (long) n * 4096, 4096))) {
                long t0 = System.nanoTime();
                for (int c = 0; c < n; c++) {
                    r.record(c, c);
                }
                best = Math.min(best, System.nanoTime() - t0);
            }
        }
        int reads = size / 4096 / 2;
        System.out.printf("recording cost: %d random 4K cold reads, best of %d rounds: with %.1f ms, without %.1f ms,"
                + " ratio %.3f; record() alone %.0f ns per new cluster, %.2f%% of a cold read%n", reads, rounds,
                with / 1e6, without / 1e6, (double) with / without, (double) best / n,
                100.0 * best / n / ((double) without / reads));
    }
}
