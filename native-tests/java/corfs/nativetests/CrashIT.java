package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's process-crash test: mount, run a random workload (writes of random size and offset, fsync at
 * random points, reads checked against a model, stream and commit jobs started now and then),
 * {@code kill -9} the daemon at a random moment, clear the dead mount with {@code fusermount -u -z}, run
 * {@code corfs check}, remount and verify every byte against the model:
 * <blockquote>each byte holds its value at the last acknowledged fsync, or a value written after it
 * (never zeros from nowhere, never backing data over an fsynced write)</blockquote>
 * and that a job running at the crash resumes. {@code CORFS_CRASH_ITERATIONS} (default 30) sets the
 * number of crashes, {@code CORFS_CRASH_SEED} replays a run (the seed is printed).
 */
@DisplayName("kill -9 of the daemon at random moments")
class CrashIT {

    private static final int MIB = 1 << 20;
    private static final int SIZE = 8 * MIB;

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("loses no fsynced byte, leaves clean metadata and resumes the interrupted job")
    void survivesRepeatedKill9() {
        int iterations = Integer.parseInt(System.getenv().getOrDefault("CORFS_CRASH_ITERATIONS", "30"));
        long seed = Long.parseLong(System.getenv().getOrDefault("CORFS_CRASH_SEED",
                Long.toString(System.nanoTime())));
        System.out.println("[CrashIT] " + iterations + " iterations, CORFS_CRASH_SEED=" + seed);
        assertTimeoutPreemptively(Duration.ofSeconds(120 + 20L * iterations), () -> crashLoop(iterations, seed),
                "crash loop with CORFS_CRASH_SEED=" + seed);
    }

    /**
     * Issue 7, defect 1, as a user met it: a write to a committed (local, clean) cluster, {@code kill -9}
     * before the flusher ran. The data reached the leaf file (a killed process loses nothing it wrote), so
     * its dirty bit must be durable too: after the remount the write is either invisible, or visible and
     * dirty, and a commit then makes the backing equal the exposed file. A few rounds, each on a cluster
     * made clean by a completed commit (the last, a partial write of a cluster made local by copy-on-read).
     */
    @Test
    @DisplayName("a write to a committed cluster, then kill -9: the next commit still carries it")
    void writeAfterCommitSurvivesKill9() {
        assertTimeoutPreemptively(Duration.ofMinutes(4), () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 7);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("disk.raw");
            Random r = new Random(7);
            fx.mount(mnt, leaf);
            int cluster = 64 * 1024;
            for (int round = 0; round < 4; round++) {
                String where = "round " + round;
                long off = (long) (round * 17 + 3) * cluster;
                byte[] first = new byte[cluster];
                r.nextBytes(first);
                fx.dd(img, off, first, true).assertOk();
                fx.control(mnt, "commit").assertOk();
                fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(60));
                assertEquals("0", fx.status(mnt, "disk.raw").get("dirty_bytes"), where + ": committed");

                // the write to the clean cluster, then kill -9 at once (the flusher runs once a second)
                byte[] second = new byte[round == 3 ? 4096 : cluster];
                r.nextBytes(second);
                long at = round == 3 ? off + 5L * cluster + 8192 : off; // round 3: part of a cluster local by COR
                List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
                fx.dd(img, at, second, false).assertOk();
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
                }
                waitGone(pids, where);
                fx.clearDeadMount(mnt);

                fx.mount(mnt, leaf);
                Map<String, String> s = fx.status(mnt, "disk.raw");
                byte[] now = CorfsFixture.pread(img, at, second.length);
                boolean visible = Arrays.equals(second, now);
                if (visible) {
                    assertTrue(Long.parseLong(s.get("dirty_bytes")) > 0, where + ": the write survived the kill"
                            + " but its cluster is clean, so no commit will ever copy it: " + s);
                }
                fx.control(mnt, "commit").assertOk();
                fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(60));
                fx.assertSameContent(img, backing);
                System.out.println("[CrashIT] " + where + ": write " + (visible ? "survived" : "lost")
                        + " the kill; the commit after it left the backing equal to the disk");
            }
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }

    private void crashLoop(int iterations, long seed) throws Exception {
        Random r = new Random(seed);
        Path backing = fx.makeBacking("base.raw", SIZE, seed);
        Path leaf = fx.createLeaf(backing, "disk.raw", "--cluster-size", "16K");
        Path mnt = fx.newMountPoint("mnt");
        Path img = mnt.resolve("disk.raw");
        Model model = new Model(Files.readAllBytes(backing));
        int resumed = 0;
        long unsyncedLost = 0;
        long started = System.nanoTime();

        fx.mount(mnt, leaf);
        for (int it = 1; it <= iterations; it++) {
            String where = "iteration " + it + " (CORFS_CRASH_SEED=" + seed + ")";
            List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
            assertFalse(pids.isEmpty(), where + ": cannot find the daemon serving " + mnt);

            if (r.nextInt(4) == 0 && "running".equals(fx.status(mnt, "disk.raw").get("state"))) {
                // now and then end a long job, so that later crashes also hit fresh streams and commits
                fx.control(mnt, "cancel").assertOk();
                fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(30), "not running",
                        s -> !"running".equals(s.get("state")));
            }
            Workload w = new Workload(img, mnt.resolve("control"), model, new Random(r.nextLong()));
            Thread t = new Thread(w, "crash-workload-" + it);
            t.start();
            CorfsFixture.sleep(100 + r.nextInt(1900));
            // The snapshot and the kill happen with the workload's command lock held, so no job command
            // can land between them: "before" is the job the daemon had when it died. (A job may still
            // end by itself in between, which the checks below allow.)
            Map<String, String> before;
            synchronized (w.commandLock) {
                before = fx.status(mnt, "disk.raw");
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
                }
            }
            w.stop.set(true);
            t.join(30_000);
            assertFalse(t.isAlive(), where + ": the workload is stuck after the daemon died");
            assertNull(w.failure.get(), where + ": a live read disagreed with the model");
            waitGone(pids, where);
            fx.clearDeadMount(mnt);

            Result check = fx.corfs("check", leaf.toString());
            assertEquals(0, check.exit(), where + ": corfs check after the crash: " + check);

            Result m = fx.tryMount(mnt, List.of(), leaf);
            assertEquals(0, m.exit(), where + ": remount after the crash (without --force) failed: " + m);
            Map<String, String> after = fx.status(mnt, "disk.raw");
            if ("running".equals(before.get("state"))) {
                assertEquals(before.get("job"), after.get("job"), where + ": job lost; before " + before
                        + ", after " + after);
                assertTrue(List.of("running", "completed").contains(after.get("state")),
                        where + ": job did not resume; before " + before + ", after " + after);
                resumed++;
            }

            byte[] actual = readAll(img);
            String bad = model.verify(actual);
            if (bad != null) {
                fail(where + ": " + bad + "\nstatus before the kill: " + before + "\nafter: " + after
                        + "\nworkload: " + w.summary());
            }
            unsyncedLost += model.acknowledgedButLost(actual);
            model.rebase(actual);
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                ch.force(true); // what was read is now the durable baseline
            }
            System.out.println("[CrashIT] " + where + ": " + w.summary() + "; before kill " + before.get("job")
                    + "/" + before.get("state") + ", after " + after.get("job") + "/" + after.get("state"));
        }

        // Finish: let any job end, commit everything, and the backing must equal what we wrote.
        fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(120), "no active job",
                s -> !"running".equals(s.get("state")) && !"paused".equals(s.get("state")));
        fx.control(mnt, "commit").assertOk();
        fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(120));
        assertTrue(Arrays.equals(model.synced, readAll(img)), "exposed file changed after the last check");
        assertTrue(Arrays.equals(model.synced, Files.readAllBytes(backing)), "commit after the crashes:"
                + " backing differs from the exposed file");
        fx.umount(mnt);
        fx.corfs("check", leaf.toString()).assertOk();
        System.out.printf("[CrashIT] %d crashes survived in %d s, %d interrupted jobs resumed, %d acknowledged"
                + " unsynced bytes not visible after a crash (allowed)%n", iterations,
                (System.nanoTime() - started) / 1_000_000_000L, resumed, unsyncedLost);
    }

    private static byte[] readAll(Path img) throws IOException {
        byte[] b = new byte[SIZE];
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            ByteBuffer buf = ByteBuffer.wrap(b);
            while (buf.hasRemaining()) {
                if (ch.read(buf, buf.position()) < 0) {
                    fail("exposed file ended at " + buf.position() + " of " + SIZE);
                }
            }
        }
        return b;
    }

    private static void waitGone(List<Long> pids, String where) {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        for (long pid : pids) {
            while (CorfsFixture.isLiveProcess(pid)) {
                assertTrue(System.nanoTime() < deadline, where + ": killed daemon " + pid + " did not exit");
                CorfsFixture.sleep(20);
            }
        }
    }

    /**
     * What the disk may hold: {@code synced} (its content at the last acknowledged fsync) and the writes
     * started since, in order (the last one possibly unacknowledged). {@code current} is what a read must
     * return while the daemon lives. Owned by the workload thread while it runs, then by the test thread.
     */
    static final class Model {
        final byte[] synced;
        final byte[] current;
        final List<long[]> sinceRanges = new ArrayList<>(); // {offset, length, acknowledged(0/1)}
        final List<byte[]> sinceData = new ArrayList<>();

        Model(byte[] initial) {
            synced = initial.clone();
            current = initial.clone();
        }

        synchronized void beginWrite(long offset, byte[] data) {
            sinceRanges.add(new long[] {offset, data.length, 0});
            sinceData.add(data);
            System.arraycopy(data, 0, current, (int) offset, data.length);
        }

        synchronized void acknowledged() {
            sinceRanges.get(sinceRanges.size() - 1)[2] = 1;
        }

        synchronized int pending() {
            return sinceRanges.size();
        }

        /** An fsync returned: the first {@code n} writes (all acknowledged before it started) are durable. */
        synchronized void synced(int n) {
            for (int i = 0; i < n; i++) {
                long[] w = sinceRanges.get(i);
                System.arraycopy(sinceData.get(i), 0, synced, (int) w[0], (int) w[1]);
            }
            sinceRanges.subList(0, n).clear();
            sinceData.subList(0, n).clear();
        }

        /** Null when every byte is allowed, else a description of the first byte that is not. */
        synchronized String verify(byte[] actual) {
            boolean[] explained = new boolean[actual.length];
            for (int i = 0; i < actual.length; i++) {
                explained[i] = actual[i] == synced[i];
            }
            for (int k = 0; k < sinceRanges.size(); k++) {
                int off = (int) sinceRanges.get(k)[0];
                byte[] d = sinceData.get(k);
                for (int j = 0; j < d.length; j++) {
                    if (actual[off + j] == d[j]) {
                        explained[off + j] = true;
                    }
                }
            }
            for (int i = 0; i < actual.length; i++) {
                if (!explained[i]) {
                    int end = i;
                    while (end < actual.length && !explained[end]) {
                        end++;
                    }
                    return String.format("bytes %d..%d (%d bytes) hold neither the fsynced value nor a later"
                            + " write: at %d found 0x%02x, fsynced 0x%02x; %d writes since the last fsync",
                            i, end - 1, end - i, i, actual[i] & 0xff, synced[i] & 0xff, sinceRanges.size());
                }
            }
            return null;
        }

        /** Bytes of acknowledged writes whose newest value is not visible (allowed: not fsynced). */
        synchronized long acknowledgedButLost(byte[] actual) {
            long n = 0;
            for (int i = 0; i < actual.length; i++) {
                if (actual[i] != current[i]) {
                    n++;
                }
            }
            return n;
        }

        /** After a verified crash: the content read is the new baseline. */
        synchronized void rebase(byte[] actual) {
            System.arraycopy(actual, 0, synced, 0, actual.length);
            System.arraycopy(actual, 0, current, 0, actual.length);
            sinceRanges.clear();
            sinceData.clear();
        }
    }

    /** The random workload on the exposed file; runs until stopped or until the daemon dies under it. */
    static final class Workload implements Runnable {
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<String> failure = new AtomicReference<>();
        /** Held while a job command is written; the test holds it from its status snapshot to the kill. */
        final Object commandLock = new Object();
        private final Path img;
        private final Path control;
        private final Model model;
        private final Random r;
        int writes;
        int fsyncs;
        int reads;
        final List<String> jobs = new ArrayList<>();
        String endedBy = "stop";

        Workload(Path img, Path control, Model model, Random r) {
            this.img = img;
            this.control = control;
            this.model = model;
            this.r = r;
        }

        @Override
        public void run() {
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                while (!stop.get()) {
                    int op = r.nextInt(100);
                    if (op < 50) {
                        int len = 1 + (r.nextBoolean() ? r.nextInt(8192) : r.nextInt(256 * 1024));
                        long off = (long) (r.nextDouble() * (SIZE - len));
                        byte[] data = new byte[len];
                        r.nextBytes(data);
                        model.beginWrite(off, data);
                        ByteBuffer b = ByteBuffer.wrap(data);
                        while (b.hasRemaining()) {
                            ch.write(b, off + b.position());
                        }
                        model.acknowledged();
                        writes++;
                    } else if (op < 60) {
                        int n = model.pending();
                        ch.force(true);
                        model.synced(n);
                        fsyncs++;
                    } else if (op < 99) {
                        int len = 1 + r.nextInt(128 * 1024);
                        long off = (long) (r.nextDouble() * (SIZE - len));
                        ByteBuffer b = ByteBuffer.allocate(len);
                        while (b.hasRemaining()) {
                            if (ch.read(b, off + b.position()) < 0) {
                                break;
                            }
                        }
                        byte[] want;
                        synchronized (model) {
                            want = Arrays.copyOfRange(model.current, (int) off, (int) off + len);
                        }
                        if (!stop.get() && !Arrays.equals(want, b.array())) {
                            int i = Arrays.mismatch(want, b.array());
                            failure.compareAndSet(null, String.format("read of %d+%d: byte %d is 0x%02x, the"
                                    + " model says 0x%02x", off, len, off + i, b.array()[i] & 0xff, want[i] & 0xff));
                            return;
                        }
                        reads++;
                    } else {
                        String cmd = (r.nextBoolean() ? "stream" : "commit") + " speed="
                                + List.of("0", "1M", "2M", "4M").get(r.nextInt(4)) + "\n";
                        synchronized (commandLock) {
                            if (stop.get()) {
                                break;
                            }
                            try {
                                Files.write(control, cmd.getBytes(StandardCharsets.US_ASCII), StandardOpenOption.WRITE);
                                jobs.add(cmd.strip());
                            } catch (IOException e) {
                                jobs.add(cmd.strip() + " (" + e.getMessage() + ")");
                            }
                        }
                    }
                }
            } catch (IOException e) {
                endedBy = e.toString(); // the daemon died under us: expected
            }
        }

        String summary() {
            long refused = jobs.stream().filter(j -> j.contains("(")).count();
            return writes + " writes, " + fsyncs + " fsyncs, " + reads + " reads, " + jobs.size() + " job commands ("
                    + (jobs.size() - refused) + " accepted: " + jobs.stream().filter(j -> !j.contains("(")).toList()
                    + "), ended by " + endedBy;
        }
    }
}
