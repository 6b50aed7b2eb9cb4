package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;
import corfs.vocabulary.LeafStatus;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.engine.FaultFileOps;
import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.image.LeafImage;
import corfs.image.LeafImages;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static corfs.jobs.JobTesting.awaitState;
import static corfs.jobs.JobTesting.describe;
import static corfs.jobs.JobTesting.status;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Backing faults (issue 3): a backing that fails to read, one that hangs, and a full leaf filesystem,
 * injected through {@link FaultFileOps} at the channel level, for guest reads and for stream jobs.
 */
@DisplayName("Backing faults: EIO, a hanging backing, ENOSPC on the leaf")
class BackingFaultTest {
    private static final int SIZE = 4 * 1024 * 1024;
    private static final int CLUSTER = 65536;
    /** The unreadable bytes: inside clusters 40 and 41. */
    private static final long FAULT_FROM = 40L * CLUSTER + 1000;
    private static final long FAULT_TO = 41L * CLUSTER + 5000;
    private static final MountSession.Options OPTIONS = new MountSession.Options(false, false, 0);

    @TempDir
    Path dir;
    Path leaf;
    byte[] content;
    FaultFileOps ops;

    @BeforeEach
    void setUp() throws Exception {
        Path backing = dir.resolve("base.raw");
        content = JobTesting.denseBacking(backing, SIZE, 7);
        leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, false);
        ops = new FaultFileOps();
    }

    private static long errorOffset(String error) {
        Matcher m = Pattern.compile("offset (\\d+) \\(\\+(\\d+)\\)").matcher(error);
        assertTrue(m.find(), "the error names the failing offset: " + error);
        long off = Long.parseLong(m.group(1));
        long len = Long.parseLong(m.group(2));
        assertTrue(off <= FAULT_FROM && FAULT_FROM < off + len || off < FAULT_TO && FAULT_TO <= off + len
                        || off >= FAULT_FROM && off < FAULT_TO,
                "failing range " + off + "+" + len + " overlaps the fault [" + FAULT_FROM + ", " + FAULT_TO + ")");
        return off;
    }

    @Nested
    @DisplayName("read errors (EIO)")
    class ReadErrors {
        @Test
        @DisplayName("a guest read of a missing cluster fails with IO, marks nothing local, works once the fault clears")
        void guestRead() throws Exception {
            ops.failReads("base.raw", FAULT_FROM, FAULT_TO);
            try (LeafDisk disk = TestLeaves.open(leaf, ops)) {
                ByteBuffer b = ByteBuffer.allocate(10_000);
                CorfsException e = assertThrows(CorfsException.class, () -> disk.read(b, FAULT_FROM - 3000));
                assertEquals(Reason.IO, e.reason());
                assertTrue(e.getMessage().contains("Input/output error"), e.getMessage());
                assertEquals(0, disk.localBytes(), "nothing became local");
                assertEquals(0, disk.image().local().count());
                ops.clear();
                b.clear();
                assertEquals(10_000, disk.read(b, FAULT_FROM - 3000));
                assertArrayEquals(Arrays.copyOfRange(content, (int) FAULT_FROM - 3000, (int) FAULT_FROM + 7000), b.array());
                assertTrue(disk.localBytes() > 0);
            }
            assertEquals(List.of(), LeafImages.check(leaf));
        }

        @Test
        @DisplayName("on_error=stop: the stream ends failed with the offset in the error; resume finishes it")
        void streamStop() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                ops.failReads("base.raw", FAULT_FROM, FAULT_TO);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.STREAM, null, OnError.STOP);
                    LeafStatus st = awaitState(s, JobState.FAILED, 20_000);
                    assertTrue(st.error().contains("Input/output error"), describe(st));
                    errorOffset(st.error());
                    assertFalse(st.standalone());
                    assertTrue(st.localBytes() < SIZE, describe(st));
                    ops.clear();
                    s.resume(null);
                    st = awaitState(s, JobState.COMPLETED, 20_000);
                    assertTrue(st.standalone(), describe(st));
                    assertEquals(SIZE, st.localBytes());
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
            });
        }

        @Test
        @DisplayName("on_error=skip: completes with errors, the unreadable extent listed, the leaf not standalone")
        void streamSkip() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                ops.failReads("base.raw", FAULT_FROM, FAULT_TO);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.STREAM, null, OnError.SKIP);
                    LeafStatus st = awaitState(s, JobState.COMPLETED_WITH_ERRORS, 20_000);
                    assertEquals(1, st.unreadable().size(), describe(st));
                    assertArrayEquals(new long[] {40L * CLUSTER, 2L * CLUSTER}, st.unreadable().get(0), describe(st));
                    assertFalse(st.standalone());
                    assertEquals(SIZE - 2L * CLUSTER, st.localBytes(), "everything else was streamed");
                    assertTrue(st.error() != null && st.error().contains("unreadable"), describe(st));
                }
                assertFalse(LeafImages.info(leaf).standalone());
                assertEquals(List.of(), LeafImages.check(leaf));
            });
        }

        @Test
        @DisplayName("on_error=retry: keeps retrying while the fault lasts, completes once it clears")
        void streamRetry() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                ops.failReads("base.raw", FAULT_FROM, FAULT_TO);
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    s.startJob(null, JobKind.STREAM, null, OnError.RETRY);
                    JobTesting.await(s, st -> st.error() != null && st.error().contains("retrying"), 10_000,
                            "a retry reported");
                    Thread.sleep(1500);
                    LeafStatus st = status(s);
                    assertEquals(JobState.RUNNING, st.state(), describe(st));
                    assertTrue(st.localBytes() < SIZE);
                    ops.clear();
                    st = awaitState(s, JobState.COMPLETED, 20_000);
                    assertTrue(st.standalone());
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
            });
        }
    }

    @Nested
    @DisplayName("a hanging backing")
    class Hanging {
        @Test
        @DisplayName("with backing_timeout: the read fails with IO in about a second, local reads go on, then it works again")
        void hangingBacking() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                ExecutorService reader = Executors.newSingleThreadExecutor(r -> new Thread(r, "test-cold-reader"));
                CountDownLatch latch = null;
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 500), ops)) {
                    LeafDisk disk = s.find("leaf.img");
                    disk.read(ByteBuffer.allocate(CLUSTER), 0); // cluster 0 local before the hang
                    latch = ops.hangReads("base.raw");
                    long start = System.nanoTime();
                    Future<Integer> cold = reader.submit(() -> disk.read(ByteBuffer.allocate(4096), 3L << 20));
                    for (int i = 0; i < 5; i++) {
                        ByteBuffer b = ByteBuffer.allocate(CLUSTER);
                        assertTimeoutPreemptively(Duration.ofMillis(300), () -> disk.read(b, 0),
                                "a local read while the backing hangs");
                        assertArrayEquals(Arrays.copyOf(content, CLUSTER), b.array());
                    }
                    ExecutionException e = assertThrows(ExecutionException.class, () -> cold.get(1500, TimeUnit.MILLISECONDS));
                    long ms = (System.nanoTime() - start) / 1_000_000;
                    CorfsException ce = assertInstanceOf(CorfsException.class, e.getCause());
                    assertEquals(Reason.IO, ce.reason());
                    assertTrue(ms < 1200, "failed after " + ms + " ms");
                    assertEquals(CLUSTER, disk.localBytes(), "nothing became local");
                    latch.countDown();
                    ops.clear();
                    ByteBuffer b = ByteBuffer.allocate(4096);
                    assertEquals(4096, disk.read(b, 3L << 20));
                    assertArrayEquals(Arrays.copyOfRange(content, 3 << 20, (3 << 20) + 4096), b.array());
                } finally {
                    if (latch != null) {
                        latch.countDown();
                    }
                    reader.shutdownNow();
                }
            });
        }
    }

    @Nested
    @DisplayName("a full leaf filesystem (ENOSPC)")
    class NoSpace {
        @Test
        @DisplayName("COR reads are served uncached, writes fail with NO_SPACE, nothing is corrupted")
        void engine() throws Exception {
            try (LeafDisk disk = TestLeaves.open(leaf, ops)) {
                ops.noSpace("leaf.img");
                ByteBuffer b = ByteBuffer.allocate(3 * CLUSTER + 17);
                assertEquals(b.capacity(), disk.read(b, 100_000));
                assertArrayEquals(Arrays.copyOfRange(content, 100_000, 100_000 + b.capacity()), b.array());
                assertEquals(0, disk.localBytes(), "served from the backing, not cached");
                CorfsException e = assertThrows(CorfsException.class, () -> disk.write(ByteBuffer.wrap(new byte[100]), 500_000));
                assertEquals(Reason.NO_SPACE, e.reason());
                e = assertThrows(CorfsException.class, () -> disk.write(ByteBuffer.allocate(CLUSTER), 2L * CLUSTER));
                assertEquals(Reason.NO_SPACE, e.reason(), "a whole-cluster write too");
                assertEquals(0, disk.dirtyBytes());
                ops.clear();
                assertArrayEquals(content, TestLeaves.readAll(disk));
            }
            assertEquals(List.of(), LeafImages.check(leaf));
            try (LeafDisk disk = TestLeaves.open(leaf, TestLeaves.portable())) {
                assertArrayEquals(content, TestLeaves.readAll(disk), "after reopen");
            }
        }

        @Test
        @DisplayName("a stream stops failed with the error in the status")
        void stream() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                try (MountSession s = MountSession.open(List.of(leaf), OPTIONS, ops)) {
                    ops.noSpace("leaf.img");
                    s.startJob(null, JobKind.STREAM, null, null);
                    LeafStatus st = awaitState(s, JobState.FAILED, 20_000);
                    assertTrue(st.error() != null && st.error().contains("full"), describe(st));
                    assertEquals(0, st.localBytes());
                    ops.clear();
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
                assertEquals(List.of(), LeafImages.check(leaf));
            });
        }
    }
}
