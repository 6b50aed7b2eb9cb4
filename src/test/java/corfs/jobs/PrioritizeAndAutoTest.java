package corfs.jobs;

import static corfs.jobs.JobTesting.assertReason;
import static corfs.jobs.JobTesting.await;
import static corfs.jobs.JobTesting.awaitState;
import static corfs.jobs.JobTesting.status;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException.Reason;
import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.image.ClusterBitmap;
import corfs.io.FileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** prioritize and speed=auto through {@link MountSession}, over a file backing (no FUSE). */
@DisplayName("prioritize and speed=auto through MountSession")
class PrioritizeAndAutoTest {
    private static final MountSession.Options OPTIONS = new MountSession.Options(false, false, 0);
    private static final int CLUSTER = 65536;
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private Path leafOver(String name, Path backing) throws Exception {
        return JobTesting.leafOver(dir, name, backing, CLUSTER);
    }

    private static boolean allLocal(LeafDisk disk, long offset, long length) {
        ClusterBitmap local = disk.image().local();
        long first = offset / CLUSTER;
        long end = (offset + length + CLUSTER - 1) / CLUSTER;
        return local.nextClear(first, end) >= end;
    }

    @Test
    @DisplayName("prioritize: the named ranges become local first, in a slow stream; bad ranges change nothing")
    void prioritize() {
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            Path backing = dir.resolve("base.raw");
            int size = 64 * MIB;
            byte[] content = JobTesting.denseBacking(backing, size, 21);
            Path leaf = leafOver("leaf.img", backing);
            try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                LeafDisk disk = s.find("leaf.img");
                assertReason(Reason.NO_JOB, () -> s.prioritize(null, List.of(new long[] {0, 0})));
                s.startJob(null, JobKind.STREAM, (long) MIB, null); // 64 s for the whole disk
                List<long[]> bad = List.of(new long[] {size - MIB, MIB}, new long[] {size - 4096, 8192});
                assertReason(Reason.INVALID_ARGUMENT, () -> s.prioritize(null, bad));
                assertReason(Reason.INVALID_ARGUMENT, () -> s.prioritize(null, List.of(new long[] {size, 0})));
                assertReason(Reason.INVALID_ARGUMENT, () -> s.prioritize(null, List.of(new long[] {-1, 1})));
                assertReason(Reason.INVALID_ARGUMENT, () -> s.prioritize(null,
                        List.of(new long[] {1, Long.MAX_VALUE})));
                assertTrue(!allLocal(disk, size - MIB, MIB), "nothing of the refused list was queued first");

                s.prioritize(null, List.of(new long[] {size - MIB, MIB}, new long[] {40L * MIB + 100, 0}));
                await(s, st -> allLocal(disk, size - MIB, MIB) && allLocal(disk, 40L * MIB, CLUSTER), 60_000,
                        "the prioritized ranges local");
                LeafStatus st = status(s);
                assertTrue(st.localBytes() < size / 2, "the rest is not: " + JobTesting.describe(st));
                assertTrue(!allLocal(disk, 40L * MIB + CLUSTER, CLUSTER), "one cluster by default");

                s.pause(null); // a paused stream takes them too, and fetches them first on resume
                s.prioritize(null, List.of(new long[] {50L * MIB, 2 * CLUSTER}));
                s.resume(null);
                await(s, x -> allLocal(disk, 50L * MIB, 2 * CLUSTER), 60_000, "prioritized while paused");
                assertTrue(status(s).localBytes() < size / 2, JobTesting.describe(status(s)));

                s.setSpeed(null, 0);
                awaitState(s, JobState.COMPLETED, 60_000);
                assertArrayEquals(content, TestLeaves.readAll(disk));
                assertReason(Reason.NO_JOB, () -> s.prioritize(null, List.of(new long[] {0, 0})));
            }
        });
    }

    @Test
    @DisplayName("speed=auto: shown with its window, kept across a remount, cleared by a fixed speed; streams only")
    void autoPersistsAndCompletes() {
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            Path backing = dir.resolve("base.raw");
            byte[] content = JobTesting.denseBacking(backing, 24 * MIB, 22);
            Path leaf = leafOver("leaf.img", backing);
            try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                LeafDisk disk = s.find("leaf.img");
                disk.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 0);
                s.startJob(null, JobKind.COMMIT, null, null);
                assertReason(Reason.INVALID_ARGUMENT, () -> s.setSpeed(null, JobSpeed.AUTO));
                awaitState(s, JobState.COMPLETED, 60_000);
                assertReason(Reason.INVALID_ARGUMENT, () -> s.startJobAt(null, JobKind.COMMIT, JobSpeed.AUTO, null));

                s.startJobAt(null, JobKind.STREAM, JobSpeed.auto(5_000), null);
                LeafStatus st = status(s);
                assertEquals(JobSpeed.auto(5_000), st.speedSetting());
                // The filler may have stepped already (a local backing answers in microseconds): a window, not
                // necessarily the initial one.
                assertTrue(st.autoWindow() >= LatencyController.MIN_WINDOW
                        && st.autoWindow() <= LatencyController.MAX_WINDOW, JobTesting.describe(st));
                s.pause(null);
            }
            try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                LeafStatus st = status(s);
                assertEquals(JobState.PAUSED, st.state());
                assertEquals(JobSpeed.auto(5_000), st.speedSetting(), "the record keeps auto and its target");
                s.setSpeed(null, 4L * MIB);
                assertEquals(-1, status(s).autoWindow(), 0);
                assertEquals(4L * MIB, status(s).speed());
                s.setSpeed(null, JobSpeed.AUTO);
                assertEquals(JobSpeed.AUTO, status(s).speedSetting());
                s.resume(null);
                st = awaitState(s, JobState.COMPLETED, 60_000);
                assertTrue(st.standalone(), JobTesting.describe(st));
                assertArrayEquals(with123(content), TestLeaves.readAll(s.find("leaf.img")));
            }
        });
    }

    private static byte[] with123(byte[] content) {
        byte[] c = content.clone();
        c[0] = 1;
        c[1] = 2;
        c[2] = 3;
        return c;
    }

    @Test
    @DisplayName("JobSpeed in the record: old values read as they were, auto round-trips, an older corfs sees a speed")
    void encoding() {
        for (long v : new long[] {0, 1, 4096, 10L << 20, Long.MAX_VALUE, JobSpeed.AUTO_TAG, JobSpeed.AUTO_TAG | 999,
                JobSpeed.AUTO_TAG | 10_000_001}) {
            assertEquals(JobSpeed.fixed(v), JobSpeed.decode(v), "value " + v);
        }
        for (long t : new long[] {1_000, 5_000, 20_000, 10_000_000}) {
            long field = JobSpeed.auto(t).encode();
            assertTrue(field > 0, "an older corfs refuses negative speeds");
            assertEquals(JobSpeed.auto(t), JobSpeed.decode(field));
        }
        assertEquals(0, JobSpeed.fixed(JobSpeed.FIXED_MAX).encode(), "beyond 4 EiB/s is unlimited");
        assertEquals(7, JobSpeed.fixed(7).encode());
        assertThrows(IllegalArgumentException.class, () -> JobSpeed.decode(-1));
        assertThrows(IllegalArgumentException.class, () -> JobSpeed.auto(999));
        assertEquals("auto", JobSpeed.AUTO.word());
        assertEquals("auto:5ms", JobSpeed.auto(5_000).word());
        assertEquals("auto:2s", JobSpeed.auto(2_000_000).word());
        assertEquals("auto:1500us", JobSpeed.auto(1_500).word());
        assertEquals("1048576", JobSpeed.fixed(MIB).word());
    }
}
