package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's backing faults, for real: the backing lives on a filesystem the test makes fail, and corfs
 * meets the fault as an errno from the kernel, not from a wrapper inside corfs.
 *
 * <p>Failing and hanging backings come from {@link FaultFs}, a passthrough FUSE filesystem (mounted with
 * {@code direct_io}, so the page cache never answers for it) whose reads fail with EIO over chosen ranges or
 * block until released, the way a device-mapper {@code error} table or {@code dmsetup suspend} would. A full
 * leaf filesystem is a tmpfs with a size limit smaller than the virtual disk. Reads through the corfs mount
 * use {@code O_DIRECT} so that each one reaches the daemon.
 */
@DisplayName("backing faults for real")
class BackingFaultIT {

    private static final int KIB = 1 << 10;
    private static final int MIB = 1 << 20;
    private static final int CLUSTER = 64 * KIB;
    private static final long SIZE = 16 * MIB;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(2);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    /** A backing on FaultFs, its real file, a leaf and a mount point. */
    private final class Faulty {
        final Path realBacking;
        final FaultFs.Handle faults;
        final Path leaf;
        final Path mnt;
        final Path img;

        Faulty() throws Exception {
            Path src = Files.createDirectories(fx.dir().resolve("src"));
            realBacking = fx.makeBacking("src/base.raw", SIZE, 77);
            fillData(realBacking); // no holes or zero clusters: every cluster is a real read of the backing
            faults = FaultFs.Handle.start(fx, src, fx.dir().resolve("faulty"));
            leaf = fx.createLeaf(faults.mountPoint.resolve("base.raw"), "disk.raw", "--cluster-size", "64K");
            mnt = fx.newMountPoint("mnt");
            img = mnt.resolve("disk.raw");
        }

        void mount(String... options) {
            fx.mount(mnt, List.of(options), leaf);
        }

        long localBytes() {
            return Long.parseLong(fx.status(mnt, "disk.raw").get("local_bytes"));
        }

        byte[] backingBytes(long offset, int length) throws Exception {
            return CorfsFixture.pread(realBacking, offset, length);
        }
    }

    /** No holes or zero clusters: every cluster is a real read of the backing. */
    private static void fillData(Path file) throws Exception {
        CorfsFixture.fillRandom(file, SIZE, 5);
    }

    private Result directRead(Path img, long offset, int length, Path out) {
        return fx.directRead(img, offset, length, out);
    }

    private void assertReadsBacking(Faulty f, long offset, int length) throws Exception {
        Path out = fx.dir().resolve("read-" + offset + ".bin");
        directRead(f.img, offset, length, out).assertOk();
        assertArrayEquals(f.backingBytes(offset, length), Files.readAllBytes(out),
                "read at " + offset + " differs from the backing");
    }

    private void assertEio(Faulty f, long offset, int length) {
        Result r = directRead(f.img, offset, length, fx.dir().resolve("failed.bin"));
        assertNotEquals(0, r.exit(), "read at " + offset + " of a failing backing succeeded: " + r);
        assertTrue(r.stderr().contains("Input/output error"), "expected EIO: " + r);
    }

    @Nested
    @DisplayName("a backing that returns EIO")
    class Eio {

        @Test
        @DisplayName("fails the guest read with EIO and marks nothing local; local clusters still read; works once healed")
        void guestReadGetsEio() {
            assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
                Faulty f = new Faulty();
                f.mount();
                assertReadsBacking(f, 0, CLUSTER); // cluster 0 is now local
                long local = f.localBytes();
                assertEquals(CLUSTER, local, "after one COR read");

                long bad = 4L * MIB;
                f.faults.set(FaultFs.eioRanges(new long[] {bad + 4 * KIB, 4 * KIB}));
                long readsBefore = f.faults.reads();
                assertEio(f, bad, CLUSTER);
                assertReadsBacking(f, 8L * MIB, CLUSTER); // outside the bad range the backing still works
                CorfsFixture.sleep(300);
                assertTrue(f.faults.reads() > readsBefore, "the reads never reached the backing filesystem");
                assertEquals(local + CLUSTER, f.localBytes(), "a failed COR read marked something local");

                f.faults.set("eio"); // the whole device
                long beforeDead = f.localBytes();
                assertEio(f, 12L * MIB, CLUSTER);
                assertEio(f, bad, CLUSTER);
                assertReadsBacking(f, 0, CLUSTER); // local: served without the backing
                assertReadsBacking(f, 8L * MIB, CLUSTER);
                assertEquals(beforeDead, f.localBytes(), "reads of a dead backing marked something local");

                f.faults.set("ok");
                assertReadsBacking(f, bad, CLUSTER);
                assertReadsBacking(f, 12L * MIB, CLUSTER);
                assertEquals(beforeDead + 2 * CLUSTER, f.localBytes());
                fx.umount(f.mnt);
                fx.corfs("check", f.leaf.toString()).assertOk();
            });
        }

        @Test
        @DisplayName("stream on_error=stop ends failed with the offset; resume completes it once healed")
        void streamStopsThenResumes() {
            assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
                Faulty f = new Faulty();
                f.mount();
                long bad = 9L * MIB + 12 * KIB;
                f.faults.set(FaultFs.eioRanges(new long[] {bad, 4 * KIB}));
                fx.control(f.mnt, "stream on_error=stop").assertOk();
                Map<String, String> s = fx.awaitStatus(f.mnt, "disk.raw", Duration.ofSeconds(60), "failed",
                        st -> "failed".equals(st.get("state")));
                Matcher m = Pattern.compile("offset (\\d+) \\(\\+(\\d+)\\)").matcher(s.get("error"));
                assertTrue(m.find(), "no offset in the error field: " + s);
                long at = Long.parseLong(m.group(1));
                long len = Long.parseLong(m.group(2));
                assertTrue(at <= bad && bad < at + len, "error names " + at + "+" + len + ", the fault is at " + bad
                        + ": " + s);
                assertEquals("no", s.get("standalone"), s.toString());
                System.out.println("[BackingFaultIT] stream on_error=stop: " + s.get("error"));

                f.faults.set("ok");
                fx.control(f.mnt, "resume").assertOk();
                s = fx.awaitJobState(f.mnt, "disk.raw", "completed", Duration.ofSeconds(60));
                assertEquals("yes", s.get("standalone"), s.toString());
                fx.assertSameContent(f.img, f.realBacking);
                fx.umount(f.mnt);
                fx.corfs("check", f.leaf.toString()).assertOk();
            });
        }

        @Test
        @DisplayName("stream on_error=skip ends completed_with_errors; corfs map shows the unreadable extents")
        void streamSkipsAndRecords() {
            assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
                Faulty f = new Faulty();
                f.mount();
                long bad1 = 3L * MIB + 100;
                long bad2 = 11L * MIB + 70 * KIB;
                f.faults.set(FaultFs.eioRanges(new long[] {bad1, 10}, new long[] {bad2, 4 * KIB}));
                fx.control(f.mnt, "stream on_error=skip").assertOk();
                Map<String, String> s = fx.awaitStatus(f.mnt, "disk.raw", Duration.ofSeconds(60),
                        "completed_with_errors", st -> "completed_with_errors".equals(st.get("state")));
                assertEquals("no", s.get("standalone"), s.toString());
                String unreadable = s.get("unreadable");
                assertNotEquals("-", unreadable, s.toString());
                for (long bad : new long[] {bad1, bad2}) {
                    assertTrue(covered(unreadable, bad), bad + " not in unreadable=" + unreadable);
                }
                assertEquals(SIZE - 2 * CLUSTER, Long.parseLong(s.get("local_bytes")),
                        "exactly the two bad clusters should stay non-local: " + s);
                System.out.println("[BackingFaultIT] stream on_error=skip: unreadable=" + unreadable);

                f.faults.set("ok"); // the skipped clusters read fine once the backing is healed
                assertReadsBacking(f, bad1 - 100, CLUSTER);
                fx.umount(f.mnt);
                Result map = fx.corfs("map", f.leaf.toString()).assertOk();
                assertTrue(map.stdout().contains("unreadable"), "corfs map shows no unreadable extent: " + map);
                fx.corfs("check", f.leaf.toString()).assertOk();
            });
        }

        private static boolean covered(String extents, long offset) {
            for (String e : extents.split(",")) {
                String[] p = e.split("\\+");
                long start = Long.parseLong(p[0]);
                if (start <= offset && offset < start + Long.parseLong(p[1])) {
                    return true;
                }
            }
            return false;
        }
    }

    @Test
    @DisplayName("a hanging backing: a read needing it fails with EIO after backing_timeout; local reads go on")
    void hangingBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Faulty f = new Faulty();
            f.mount("-o", "backing_timeout=2");
            assertReadsBacking(f, 0, CLUSTER);
            long local = f.localBytes();

            f.faults.set("hang");
            long t0 = System.nanoTime();
            assertEio(f, 6L * MIB, CLUSTER);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 1500 && ms < 8000, "EIO after " + ms + " ms with backing_timeout=2");
            t0 = System.nanoTime();
            assertReadsBacking(f, 0, CLUSTER); // the backing still hangs
            long localMs = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(localMs < 1000, "a local read took " + localMs + " ms while the backing hangs");
            assertEquals(local, f.localBytes(), "a timed-out read marked something local");
            System.out.printf("[BackingFaultIT] hanging backing: EIO after %d ms, local read %d ms%n", ms, localMs);

            f.faults.set("ok");
            assertReadsBacking(f, 6L * MIB, CLUSTER);
            fx.umount(f.mnt);
            fx.corfs("check", f.leaf.toString()).assertOk();
        });
    }

    @Test
    @DisplayName("a hanging backing holding more reads than a fixed pool has workers: local reads go on (elastic pool)")
    void manyReadsWaitOnAHangingBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Faulty f = new Faulty();
            f.mount("-o", "backing_timeout=15");
            assertReadsBacking(f, 0, CLUSTER);
            f.faults.set("hang");
            // More cold reads than the 16 workers of the old fixed pool, each on its own cluster, each
            // blocking a FUSE worker until the backing timeout.
            int waiting = 24;
            List<Process> readers = new java.util.ArrayList<>();
            try {
                for (int i = 0; i < waiting; i++) {
                    long offset = (2L + i) * 4 * CLUSTER;
                    readers.add(new ProcessBuilder("dd", "if=" + f.img, "of=/dev/null", "bs=" + CLUSTER,
                            "iflag=direct,skip_bytes", "skip=" + offset, "count=1", "status=none")
                            .redirectErrorStream(true).start());
                }
                Thread.sleep(1500); // let them all reach the backing (hang guard only: the verdict is below)
                long t0 = System.nanoTime();
                assertReadsBacking(f, 0, CLUSTER);
                long localMs = (System.nanoTime() - t0) / 1_000_000;
                // With every worker waiting, the read would wait for the 15 s timeout: 8 s is far from both.
                assertTrue(localMs < 8000, "a local read took " + localMs + " ms while " + waiting
                        + " reads wait on the hanging backing");
                System.out.printf("[BackingFaultIT] %d reads hang: local read %d ms%n", waiting, localMs);
            } finally {
                f.faults.set("ok");
                for (Process p : readers) {
                    if (!p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)) {
                        p.destroyForcibly();
                    }
                }
            }
            fx.umount(f.mnt);
            fx.corfs("check", f.leaf.toString()).assertOk();
        });
    }

    @Test
    @DisplayName("an elastic pool grows while every worker waits on the backing, shrinks again, and keeps serving")
    void poolGrowsOnStallShrinksAndStaysMounted() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Faulty f = new Faulty();
            // Workers above the base retire 300 ms after the last stall instead of 30 s.
            fx.corfsWithEnv(Map.of("CORFS_JAVA_OPTS", "-Dcorfs.fuse.retire_after_ms=300"),
                    "mount", "--log", fx.dir().resolve("pool.log").toString(), "-o", "backing_timeout=30",
                    f.leaf.toString(), f.mnt.toString()).assertOk();
            assertReadsBacking(f, 0, CLUSTER);
            int base = fuseWorkers(f.mnt);
            assertTrue(base >= 2, "an elastic pool starts with at least 2 workers, not " + base);
            for (int round = 0; round < 2; round++) {
                f.faults.set("hang");
                List<Process> readers = new java.util.ArrayList<>();
                try {
                    // More cold readers than the base: every worker ends up waiting on the backing.
                    for (int i = 0; i < base + 4; i++) {
                        long offset = (2L + round * 16 + i) * 4 * CLUSTER; // far apart: no read-ahead
                        readers.add(new ProcessBuilder("dd", "if=" + f.img, "of=/dev/null", "bs=" + CLUSTER,
                                "iflag=direct,skip_bytes", "skip=" + offset, "count=1", "status=none")
                                .redirectErrorStream(true).start());
                    }
                    int grown = base;
                    for (int i = 0; i < 200 && grown <= base; i++) {
                        Thread.sleep(100);
                        grown = fuseWorkers(f.mnt);
                    }
                    assertTrue(grown > base, "the pool did not grow past its " + base
                            + " workers while all of them waited on a hanging backing");
                } finally {
                    f.faults.set("ok");
                }
                for (Process p : readers) {
                    assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "a reader hung");
                    assertEquals(0, p.exitValue(), "a reader failed after the backing recovered");
                }
                Thread.sleep(1000); // quiet: workers above the base retire at their next reply, the first ones included
                for (int i = 0; i < 100; i++) { // of clusters made local above: no read-ahead runs ahead
                    assertReadsBacking(f, (2L + round * 16 + i % (base + 4)) * 4 * CLUSTER, CLUSTER);
                }
                assertTrue(CorfsFixture.isMounted(f.mnt), "the mount went away after the pool shrank (round " + round + ")");
            }
            fx.umount(f.mnt);
            fx.corfs("check", f.leaf.toString()).assertOk();
        });
    }

    /**
     * FUSE workers ({@code corfs-fuse-N} threads) of the daemon serving {@code mnt}, found as every test
     * finds it ({@link CorfsFixture#daemonPidsFor}: however the launcher started it).
     */
    private static int fuseWorkers(Path mnt) throws Exception {
        List<Long> daemons = CorfsFixture.daemonPidsFor(mnt);
        if (daemons.size() != 1) {
            throw new AssertionError("not one corfs daemon serving " + mnt + ": " + daemons);
        }
        int n = 0;
        try (var tasks = Files.list(Path.of("/proc", String.valueOf(daemons.get(0)), "task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                try {
                    if (Files.readString(t.resolve("comm")).trim().matches("corfs-fuse-[0-9]+")) {
                        n++;
                    }
                } catch (java.io.IOException gone) {
                    // the thread ended
                }
            }
        }
        return n;
    }

    @Test
    @DisplayName("a full leaf filesystem: reads still return the backing, writes get ENOSPC, stream fails, check clean")
    void fullLeafFilesystem() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path small = Files.createDirectories(fx.dir().resolve("small"));
            Result tm = fx.run(Duration.ofSeconds(30), "mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                    small.toString());
            assumeTrue(tm.exit() == 0, "cannot mount a tmpfs (needs root): " + tm);
            fx.onTeardown("tmpfs at " + small, () -> {
                Result u = fx.run(Duration.ofSeconds(30), "umount", small.toString());
                if (u.exit() != 0) {
                    fx.run(Duration.ofSeconds(30), "umount", "-l", small.toString());
                }
            });
            Path backing = fx.makeBacking("base.raw", SIZE, 91);
            fillData(backing);
            Path leaf = fx.createLeaf(backing, "small/disk.raw", "--cluster-size", "64K");
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("disk.raw");
            fx.mount(mnt, List.of("--log", fx.dir().resolve("disk.log").toString()), leaf);

            fx.assertSameContent(img, backing); // COR fills fail with ENOSPC past ~4 MiB: served from the backing
            long local = Long.parseLong(fx.status(mnt, "disk.raw").get("local_bytes"));
            assertTrue(local < SIZE / 2, "the 4 MiB tmpfs holds " + local + " local bytes?");

            byte[] data = new byte[CLUSTER];
            new Random(3).nextBytes(data);
            Result w = fx.dd(img, SIZE - 2 * CLUSTER, data, true);
            assertNotEquals(0, w.exit(), "a write on a full leaf filesystem succeeded: " + w);
            assertTrue(w.stderr().contains("No space left on device"), "expected ENOSPC: " + w);

            fx.control(mnt, "stream").assertOk();
            Map<String, String> s = fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(60), "failed",
                    st -> "failed".equals(st.get("state")));
            assertTrue(s.get("error").contains("filesystem is full") || s.get("error").contains("No space left"),
                    "stream error: " + s);
            System.out.println("[BackingFaultIT] full leaf fs: " + local + " local bytes; stream error: "
                    + s.get("error"));

            fx.assertSameContent(img, backing); // still exactly the backing, the failed write left no trace
            fx.umount(mnt);
            Result check = fx.corfs("check", leaf.toString());
            assertEquals(0, check.exit(), "corfs check after ENOSPC: " + check);
        });
    }
}
