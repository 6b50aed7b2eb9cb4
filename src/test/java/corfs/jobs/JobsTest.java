package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;

import corfs.CorfsException.Reason;
import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.image.LeafImages;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;

import static corfs.jobs.JobTesting.awaitState;
import static corfs.jobs.JobTesting.describe;
import static corfs.jobs.JobTesting.status;
import static corfs.jobs.JobTesting.assertReason;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Stream and commit jobs through {@link MountSession}: completion, control, speed, resume, races. */
@DisplayName("Jobs through MountSession: stream, commit, control commands, speed, resume, races")
class JobsTest {
    private static final MountSession.Options OPTIONS = new MountSession.Options(false, false, 0);
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    private Path leafOver(String name, Path backing) throws Exception {
        return JobTesting.leafOver(dir, name, backing, CLUSTER);
    }

    @Nested
    @DisplayName("to completion")
    class Completion {
        @Test
        @DisplayName("stream: standalone, content equals the backing, reopens with the backing deleted")
        void stream() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                byte[] content = TestLeaves.writeBacking(backing, 8 * 1024 * 1024 + 777, 3);
                Path leaf = leafOver("leaf.img", backing);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    s.startJob(null, JobKind.STREAM, null, null);
                    LeafStatus st = awaitState(s, JobState.COMPLETED, 30_000);
                    assertTrue(st.standalone(), describe(st));
                    assertEquals(content.length, st.localBytes());
                    assertEquals(st.totalBytes(), st.doneBytes());
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
                Files.delete(backing);
                assertEquals(List.of(), LeafImages.check(leaf), "a standalone leaf needs no backing");
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertTrue(status(s).standalone());
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                    assertReason(Reason.INVALID_ARGUMENT, () -> s.startJob(null, JobKind.STREAM, null, null));
                }
            });
        }

        @Test
        @DisplayName("commit: backing equals the disk, dirty 0, the new backing identity is accepted at the next open")
        void commit() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                long seed = System.nanoTime();
                Random random = new Random(seed);
                Path backing = dir.resolve("base.raw");
                byte[] model = TestLeaves.writeBacking(backing, 6 * 1024 * 1024 + 99, seed);
                Path leaf = leafOver("leaf.img", backing);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    LeafDisk disk = s.find("leaf.img");
                    writeRandom(disk, random, model, 60);
                    assertTrue(disk.dirtyBytes() > 0);
                    s.startJob(null, JobKind.COMMIT, null, null);
                    LeafStatus st = awaitState(s, JobState.COMPLETED, 30_000);
                    assertEquals(0, st.dirtyBytes(), describe(st));
                    assertArrayEquals(model, Files.readAllBytes(backing), "backing after commit (seed " + seed + ")");
                    assertArrayEquals(model, TestLeaves.readAll(disk));
                }
                assertEquals(List.of(), LeafImages.check(leaf));
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertEquals(0, status(s).dirtyBytes());
                    assertArrayEquals(model, TestLeaves.readAll(s.find("leaf.img")), "seed " + seed);
                }
            });
        }
    }

    private static void writeRandom(LeafDisk disk, Random random, byte[] model, int count) throws Exception {
        for (int i = 0; i < count; i++) {
            int off = random.nextInt(model.length);
            byte[] data = new byte[1 + random.nextInt(Math.min(model.length - off, 200_000))];
            random.nextBytes(data);
            assertEquals(data.length, disk.write(ByteBuffer.wrap(data), off));
            System.arraycopy(data, 0, model, off, data.length);
        }
    }

    @Nested
    @DisplayName("control commands")
    class Control {
        @Test
        @DisplayName("pause, resume, speed, cancel and their errors (BUSY, NO_JOB, NOT_FOUND)")
        void transitions() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 16 << 20, 5);
                Path leaf = leafOver("leaf.img", backing);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertReason(Reason.NO_JOB, () -> s.pause(null));
                    assertReason(Reason.NO_JOB, () -> s.resume(null));
                    assertReason(Reason.NO_JOB, () -> s.cancel(null));
                    assertReason(Reason.NO_JOB, () -> s.setSpeed(null, 1000));
                    assertReason(Reason.NOT_FOUND, () -> s.pause("nope.img"));
                    assertReason(Reason.NOT_FOUND, () -> s.startJob("nope.img", JobKind.STREAM, null, null));

                    s.startJob(null, JobKind.STREAM, 1L << 20, null);
                    assertEquals(JobState.RUNNING, status(s).state());
                    assertEquals(1L << 20, status(s).speed());
                    assertReason(Reason.BUSY, () -> s.startJob(null, JobKind.STREAM, null, null));
                    assertReason(Reason.BUSY, () -> s.startJob("leaf.img", JobKind.COMMIT, null, null));
                    assertReason(Reason.NO_JOB, () -> s.resume(null));

                    s.pause(null);
                    assertEquals(JobState.PAUSED, status(s).state());
                    long local = status(s).localBytes();
                    Thread.sleep(300);
                    assertEquals(local, status(s).localBytes(), "a paused job moves nothing");
                    assertReason(Reason.NO_JOB, () -> s.pause(null));
                    assertReason(Reason.BUSY, () -> s.startJob(null, JobKind.STREAM, null, null));
                    s.setSpeed(null, 2L << 20);
                    assertEquals(2L << 20, status(s).speed());

                    s.resume("leaf.img");
                    assertEquals(JobState.RUNNING, status(s).state());
                    s.cancel(null);
                    LeafStatus st = status(s);
                    assertEquals(JobState.CANCELLED, st.state());
                    assertFalse(st.standalone());
                    assertReason(Reason.NO_JOB, () -> s.cancel(null));
                    assertReason(Reason.NO_JOB, () -> s.pause(null));
                    assertReason(Reason.NO_JOB, () -> s.setSpeed(null, 0));

                    s.startJob(null, JobKind.STREAM, null, null); // a new job after a cancel
                    awaitState(s, JobState.COMPLETED, 30_000);
                    assertTrue(status(s).standalone());
                }
            });
        }

        @Test
        @DisplayName("with two leaves, a command without an image is INVALID_ARGUMENT")
        void twoLeavesNeedAName() {
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 1 << 20, 9);
                Path a = leafOver("a.img", backing);
                Path b = leafOver("b.img", backing);
                try (MountSession s = MountSession.open(List.of(a, b), OPTIONS, FileOps.system())) {
                    assertReason(Reason.INVALID_ARGUMENT, () -> s.startJob(null, JobKind.STREAM, null, null));
                    assertReason(Reason.INVALID_ARGUMENT, () -> s.pause(null));
                    s.startJob("b.img", JobKind.STREAM, null, null);
                    JobTesting.await(s, x -> s.status().get(1).state() == JobState.COMPLETED, 20_000, "b streamed");
                    assertEquals(JobState.IDLE, s.status().get(0).state(), "a.img untouched");
                    assertFalse(s.status().get(0).standalone());
                }
            });
        }

        @Test
        @DisplayName("the speed limit holds: never ahead of the limit by more than its documented burst")
        void speedLimit() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 64 << 20, 11);
                Path leaf = leafOver("leaf.img", backing);
                long speed = 2L << 20;
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    long t0 = System.nanoTime();
                    s.startJob(null, JobKind.STREAM, speed, null);
                    long maxAhead = 0;
                    long done = 0;
                    long elapsed = 0;
                    while (elapsed < 3_500_000_000L) {
                        Thread.sleep(100);
                        LeafStatus st = status(s);
                        elapsed = System.nanoTime() - t0; // after the status: the allowance only grows
                        done = st.doneBytes();
                        assertEquals(JobState.RUNNING, st.state(), describe(st));
                        maxAhead = Math.max(maxAhead, done - speed * elapsed / 1_000_000_000L);
                    }
                    // The limit charges completed fills: at most MAX_IN_FLIGHT steps of speed/20 may complete
                    // beyond it at once, and a job that fell behind catches up by a quarter second, no more.
                    long step = Math.max(speed / 20, 65536);
                    long burst = StreamStep.MAX_IN_FLIGHT * step + speed / 4;
                    System.out.printf("JobsTest speed limit: %.2f MiB/s over %.1f s (limit 2 MiB/s), at most %d KiB"
                            + " ahead of it (allowed %d KiB)%n", done * 1e9 / elapsed / (1 << 20), elapsed / 1e9,
                            maxAhead >> 10, burst >> 10);
                    assertTrue(maxAhead <= burst, "ran " + maxAhead + " bytes ahead of the limit, more than the "
                            + burst + "-byte burst it allows");
                    // Slower is no failure of the limit (a loaded machine), but no progress at all would be.
                    assertTrue(done > speed / 4, "streamed only " + done + " bytes in 3.5 s at a 2 MiB/s limit");
                    s.cancel(null);
                }
            });
        }
    }

    @Nested
    @DisplayName("lifecycle and races")
    class Lifecycle {
        @Test
        @DisplayName("a job running at close() resumes at the next open and completes")
        void resumesAfterClose() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                byte[] content = JobTesting.denseBacking(backing, 16 << 20, 13);
                Path leaf = leafOver("leaf.img", backing);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    s.startJob(null, JobKind.STREAM, 4L << 20, null);
                    JobTesting.await(s, st -> st.localBytes() >= 1 << 20, 10_000, "some progress");
                }
                assertEquals(JobState.RUNNING, LeafImages.info(leaf).jobState(), "recorded as running");
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    LeafStatus st = status(s);
                    assertEquals(JobKind.STREAM, st.job(), describe(st));
                    assertEquals(JobState.RUNNING, st.state(), describe(st));
                    assertTrue(st.localBytes() >= 1 << 20 && st.localBytes() < content.length, describe(st));
                    s.setSpeed(null, 0);
                    st = awaitState(s, JobState.COMPLETED, 30_000);
                    assertTrue(st.standalone());
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
            });
        }

        @Test
        @DisplayName("writes racing a commit are never lost: the commit completes with backing = disk")
        void writesRacingCommit() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                long seed = System.nanoTime();
                Random random = new Random(seed);
                Path backing = dir.resolve("base.raw");
                byte[] model = JobTesting.denseBacking(backing, 16 << 20, seed);
                Path leaf = leafOver("leaf.img", backing);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    LeafDisk disk = s.find("leaf.img");
                    for (int c = 0; c < model.length / CLUSTER; c += 2) {
                        byte[] data = new byte[CLUSTER];
                        random.nextBytes(data);
                        disk.write(ByteBuffer.wrap(data), (long) c * CLUSTER);
                        System.arraycopy(data, 0, model, c * CLUSTER, CLUSTER);
                    }
                    s.startJob(null, JobKind.COMMIT, 2L << 20, null);
                    long end = System.nanoTime() + 2_000_000_000L;
                    int writes = 0;
                    while (System.nanoTime() < end) {
                        writeRandom(disk, random, model, 1);
                        writes++;
                        Thread.sleep(random.nextInt(5));
                    }
                    LeafStatus st = status(s);
                    assertEquals(JobState.RUNNING, st.state(), "the writes raced a running commit: " + describe(st));
                    s.setSpeed(null, 0);
                    st = awaitState(s, JobState.COMPLETED, 30_000);
                    assertEquals(0, st.dirtyBytes(), describe(st));
                    assertArrayEquals(model, TestLeaves.readAll(disk), "disk after " + writes + " racing writes (seed " + seed + ")");
                    assertArrayEquals(model, Files.readAllBytes(backing), "backing after " + writes + " racing writes (seed " + seed + ")");
                }
                assertEquals(List.of(), LeafImages.check(leaf));
            });
        }
    }
}
