package corfs.jobs;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.ForwardingBacking;
import corfs.backing.BackingIdentity;
import corfs.backing.FileBacking;
import corfs.engine.DelegatingFileChannel;
import corfs.engine.FaultFileOps;
import corfs.engine.LeafDisk;
import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.io.FileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static corfs.jobs.JobTesting.awaitState;
import static corfs.jobs.JobTesting.describe;
import static corfs.jobs.JobTesting.status;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Issue 7's job contract: writer lifetime, backing identity after commits, lock-free status, errors. */
@DisplayName("Job contract: writer lifetime, commit identity, lock-free status, command vs job errors")
class JobContractTest {
    private static final MountSession.Options OPTIONS = new MountSession.Options(false, false, 0);
    private static final MountSession.Options READ_ONLY = new MountSession.Options(true, false, 0);
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    /** Counts the channels opened for writing on one file name, and how many are still open. */
    static final class WriterCountingOps implements FileOps {
        final FaultFileOps faults = new FaultFileOps();
        final String name;
        final List<FileChannel> writers = new CopyOnWriteArrayList<>();
        volatile boolean failBackingClose;

        WriterCountingOps(String name) {
            this.name = name;
        }

        @Override
        public FileChannel openChannel(Path path, OpenOption... options) throws IOException {
            FileChannel ch = faults.openChannel(path, options);
            if (!path.getFileName().toString().equals(name)) {
                return ch;
            }
            if (Arrays.asList(options).contains(StandardOpenOption.WRITE)) {
                writers.add(ch);
                return ch;
            }
            return new DelegatingFileChannel(path, ch) {
                @Override
                protected void implCloseChannel() throws IOException {
                    super.implCloseChannel();
                    if (failBackingClose) {
                        throw new IOException("Transport endpoint is not connected");
                    }
                }
            };
        }

        @Override
        public SparseFile open(Path path, boolean writable) throws IOException {
            return faults.open(path, writable);
        }

        @Override
        public boolean setCurrentThreadIdleIoPriority() {
            return faults.setCurrentThreadIdleIoPriority();
        }

        long openWriters() {
            return writers.stream().filter(FileChannel::isOpen).count();
        }
    }

    private Path leafWithDirtyData(long seed, int size, int dirtyClusters) throws Exception {
        Path backing = dir.resolve("base.raw");
        JobTesting.denseBacking(backing, size, seed);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, false);
        try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
            writeClusters(s.find("leaf.img"), new Random(seed), dirtyClusters);
        }
        return leaf;
    }

    private static void writeClusters(LeafDisk disk, Random random, int count) throws IOException {
        byte[] data = new byte[CLUSTER];
        for (int c = 0; c < count; c++) {
            random.nextBytes(data);
            disk.write(ByteBuffer.wrap(data), (long) c * CLUSTER);
        }
    }

    @Nested
    @DisplayName("the backing is writable only while a commit runs")
    class WriterLifetime {
        @Test
        @DisplayName("50 rounds of cancel + commit leave no writable descriptor once the last commit completes")
        void cancelCommitRounds() {
            assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
                Path leaf = leafWithDirtyData(1, 8 << 20, 128);
                WriterCountingOps ops = new WriterCountingOps("base.raw");
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.COMMIT, 64L << 10, null);
                    for (int i = 0; i < 50; i++) {
                        s.cancel(null);
                        s.startJob(null, JobKind.COMMIT, 64L << 10, null);
                    }
                    s.setSpeed(null, 0);
                    LeafStatus st = awaitState(s, JobState.COMPLETED, 60_000);
                    assertEquals(0, st.dirtyBytes(), describe(st));
                    assertEquals(0, ops.openWriters(), "writable descriptors on the backing after the commit completed ("
                            + ops.writers.size() + " opened)");
                }
                assertEquals(0, ops.openWriters());
            });
        }

        @Test
        @DisplayName("a cancelled or failed commit closes its writer")
        void cancelledAndFailed() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path leaf = leafWithDirtyData(2, 8 << 20, 128);
                WriterCountingOps ops = new WriterCountingOps("base.raw");
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.COMMIT, 256L << 10, null);
                    JobTesting.await(s, st -> st.doneBytes() > 0, 10_000, "some progress");
                    s.cancel(null);
                    JobTesting.await(s, st -> ops.openWriters() == 0, 10_000, "writer closed after cancel");
                    ops.faults.noSpace("base.raw");
                    s.startJob(null, JobKind.COMMIT, null, null);
                    LeafStatus st = awaitState(s, JobState.FAILED, 10_000);
                    assertTrue(st.error().contains("No space"), describe(st));
                    JobTesting.await(s, x -> ops.openWriters() == 0, 10_000, "writer closed after failure");
                }
            });
        }
    }

    @Nested
    @DisplayName("a commit that ends any way leaves the leaf mountable without --force")
    class CommitIdentity {
        @Test
        @DisplayName("cancelled mid-way: check is clean and the leaf reopens without --force")
        void cancelled() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path leaf = leafWithDirtyData(3, 8 << 20, 128);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    s.startJob(null, JobKind.COMMIT, 512L << 10, null);
                    JobTesting.await(s, st -> st.doneBytes() > 0, 10_000, "some progress");
                    s.cancel(null);
                }
                assertEquals(List.of(), LeafImages.check(leaf));
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertEquals(JobState.CANCELLED, status(s).state());
                }
            });
        }

        @Test
        @DisplayName("failed mid-way (ENOSPC on the backing): reopens without --force; the identity is recorded")
        void failed() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path leaf = leafWithDirtyData(4, 8 << 20, 128);
                FaultFileOps ops = new FaultFileOps();
                BackingIdentity before = LeafImages.info(leaf).backingIdentity();
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.COMMIT, 512L << 10, null);
                    JobTesting.await(s, st -> st.doneBytes() >= 2 * CLUSTER, 10_000, "some progress");
                    ops.noSpace("base.raw");
                    awaitState(s, JobState.FAILED, 10_000);
                }
                BackingIdentity now = FileBacking.identityOf(dir.resolve("base.raw"));
                assertNotEquals(before, now, "the commit wrote to the backing");
                assertEquals(now, LeafImages.info(leaf).backingIdentity(), "identity recorded when the writer closed");
                assertEquals(List.of(), LeafImages.check(leaf));
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertEquals(JobState.FAILED, status(s).state());
                }
            });
        }
    }

    @Nested
    @DisplayName("status never waits on I/O")
    class LockFreeStatus {
        /** A file backing whose identity() and openWriter() can be made to block on a latch. */
        static final class BlockingBacking extends ForwardingBacking {
            volatile CountDownLatch blockIdentity;
            volatile CountDownLatch blockOpenWriter;
            final CountDownLatch entered = new CountDownLatch(1);

            BlockingBacking(Backing inner) {
                super(inner);
            }

            private void maybeBlock(CountDownLatch latch) throws IOException {
                if (latch == null) {
                    return;
                }
                entered.countDown();
                try {
                    if (!latch.await(30, TimeUnit.SECONDS)) {
                        throw new IOException("test latch never opened");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException(e);
                }
            }

            @Override public BackingIdentity identity() throws IOException {
                maybeBlock(blockIdentity);
                return inner.identity();
            }
            @Override public Writer openWriter() throws IOException {
                maybeBlock(blockOpenWriter);
                return inner.openWriter();
            }
        }

        private void assertStatusAnswersWhileBlocked(boolean blockOpenWriter) throws Exception {
            Path leaf = leafWithDirtyData(5, 2 << 20, 4);
            LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
            BlockingBacking backing = new BlockingBacking(FileBacking.open(dir.resolve("base.raw"), FileOps.system()));
            CountDownLatch release = new CountDownLatch(1);
            if (blockOpenWriter) {
                backing.blockOpenWriter = release;
            } else {
                backing.blockIdentity = release;
            }
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try (LeafDisk disk = new LeafDisk("leaf.img", image, backing, false);
                 Filler filler = new Filler(List.of(disk), FileOps.system(), "test")) {
                filler.start();
                Future<?> command = pool.submit(() -> {
                    filler.startJob("leaf.img", JobKind.COMMIT, null, null);
                    return null;
                });
                assertTrue(backing.entered.await(20, TimeUnit.SECONDS), "the commit reached the blocking call");
                Future<LeafStatus> status = pool.submit(() -> filler.status("leaf.img"));
                try {
                    LeafStatus st = status.get(5, TimeUnit.SECONDS); // a hang guard: it must not wait for the latch
                    assertTrue(release.getCount() == 1, "status answered while the backing call was still blocked");
                    assertEquals("leaf.img", st.image());
                } catch (TimeoutException e) {
                    fail("status() waited for a blocked backing " + (blockOpenWriter ? "openWriter()" : "identity()"));
                } finally {
                    release.countDown();
                }
                command.get(20, TimeUnit.SECONDS);
            } finally {
                release.countDown();
                pool.shutdownNow();
            }
        }

        @Test
        @DisplayName("while a commit's openWriter() blocks")
        void openWriterBlocks() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> assertStatusAnswersWhileBlocked(true));
        }

        @Test
        @DisplayName("while the backing's identity() blocks at the end of a commit")
        void identityBlocks() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> assertStatusAnswersWhileBlocked(false));
        }
    }

    @Nested
    @DisplayName("commands and errors")
    class Commands {
        @Test
        @DisplayName("job ids: one more per start, kept by resume, unique across remounts")
        void jobIds() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 8 << 20, 12);
                Path leaf = dir.resolve("leaf.img");
                LeafImage.create(leaf, backing, CLUSTER, false);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertEquals(0, status(s).jobId());
                    assertEquals(1, s.startJob(null, JobKind.STREAM, 256L << 10, null));
                    assertEquals(1, status(s).jobId());
                    s.pause(null);
                    s.resume(null);
                    assertEquals(1, status(s).jobId(), "a resume is the same job");
                    s.cancel(null);
                    assertEquals(2, s.startJob(null, JobKind.COMMIT, null, null));
                    awaitState(s, JobState.COMPLETED, 10_000);
                    assertEquals(3, s.startJob(null, JobKind.STREAM, 256L << 10, null));
                }
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    assertEquals(3, status(s).jobId(), "the resumed job keeps its number");
                    s.cancel(null);
                    assertEquals(4, s.startJob(null, JobKind.STREAM, null, null));
                    awaitState(s, JobState.COMPLETED, 20_000);
                }
            });
        }

        @Test
        @DisplayName("a refused command shows as command_error; the next command that succeeds clears it")
        void commandError() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 4 << 20, 13);
                Path leaf = dir.resolve("leaf.img");
                LeafImage.create(leaf, backing, CLUSTER, false);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    CorfsException e = assertThrows(CorfsException.class, () -> s.pause(null));
                    s.recordError("leaf.img", e.getMessage());
                    assertEquals(e.getMessage(), status(s).commandError());
                    assertEquals(null, status(s).error());
                    s.startJob(null, JobKind.STREAM, 256L << 10, null);
                    assertEquals(null, status(s).commandError());
                    s.cancel(null);
                }
            });
        }

        @Test
        @DisplayName("resume on a read-only mount is EROFS")
        void resumeReadOnly() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 8 << 20, 6);
                Path leaf = dir.resolve("leaf.img");
                LeafImage.create(leaf, backing, CLUSTER, false);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, FileOps.system())) {
                    s.startJob(null, JobKind.STREAM, 256L << 10, null);
                }
                try (MountSession s = MountSession.open(List.of(leaf), READ_ONLY, FileOps.system())) {
                    assertEquals(JobState.PAUSED, status(s).state());
                    CorfsException e = assertThrows(CorfsException.class, () -> s.resume(null));
                    assertEquals(Reason.READ_ONLY, e.reason(), e.getMessage());
                    assertEquals(JobState.PAUSED, status(s).state());
                }
            });
        }

        @Test
        @DisplayName("a rejected command does not overwrite a failed job's error")
        void commandErrorApart() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 4 << 20, 8);
                Path leaf = dir.resolve("leaf.img");
                LeafImage.create(leaf, backing, CLUSTER, false);
                FaultFileOps ops = new FaultFileOps();
                ops.failReads("base.raw", 0, 4 << 20);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.STREAM, null, OnError.STOP);
                    LeafStatus failed = awaitState(s, JobState.FAILED, 10_000);
                    s.recordError(null, "'frobnicate' is not a command");
                    LeafStatus st = status(s);
                    assertEquals(failed.error(), st.error(), "the job's reason stays");
                    assertEquals("'frobnicate' is not a command", st.commandError());
                }
            });
        }

        @Test
        @DisplayName("completed_with_errors counts only what is local as done")
        void completedWithErrorsDone() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                JobTesting.denseBacking(backing, 2 << 20, 9);
                Path leaf = dir.resolve("leaf.img");
                LeafImage.create(leaf, backing, CLUSTER, false);
                FaultFileOps ops = new FaultFileOps();
                ops.failReads("base.raw", 0, 2 << 20);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.STREAM, null, OnError.SKIP);
                    LeafStatus st = awaitState(s, JobState.COMPLETED_WITH_ERRORS, 20_000);
                    assertEquals(0, st.localBytes(), describe(st));
                    assertEquals(st.localBytes(), st.doneBytes(), describe(st));
                }
            });
        }

        @Test
        @DisplayName("closing a dead backing (ENOTCONN) is not a flush failure")
        void deadBackingClose() {
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                Path leaf = leafWithDirtyData(10, 1 << 20, 2);
                WriterCountingOps ops = new WriterCountingOps("base.raw");
                MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops);
                ops.failBackingClose = true;
                assertDoesNotThrow(s::close);
                assertArrayEquals(new Object[0], LeafImages.check(leaf).toArray());
            });
        }
    }
}
