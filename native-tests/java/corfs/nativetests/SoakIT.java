package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's soak: the daemon with {@code -Xmx256m} (through {@code CORFS_JAVA_OPTS}) under a mixed workload
 * for {@code CORFS_SOAK_MINUTES} minutes: fio random read/write with {@code --verify=crc32c} in a loop, stream
 * and commit cycles with pauses, resumes and speed changes, and control reads; the daemon's RSS, open fds
 * and threads are sampled every 30 s. Asserts no fio or job error and no growth: the average of the last
 * third of the samples (after the one taken before any load) is at most the first third's plus a margin
 * (RSS 64 MiB, fds 8, threads 8).
 * Skipped unless CORFS_SOAK_MINUTES is set.
 */
@DisplayName("soak: mixed workload with -Xmx256m, no errors, no growth")
class SoakIT {

    private static final long MIB = 1 << 20;
    private static final long SIZE = 128 * MIB;
    private static final long SAMPLE_MS = 30_000;
    private static final long RSS_MARGIN_KB = 64 * 1024;
    private static final int FD_MARGIN = 8;
    private static final int THREAD_MARGIN = 8;

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private record Sample(long seconds, long rssKb, int fds, int threads) { }

    @Test
    @DisplayName("runs CORFS_SOAK_MINUTES minutes")
    void soak() {
        String minutesEnv = System.getenv("CORFS_SOAK_MINUTES");
        assumeTrue(minutesEnv != null && !minutesEnv.isBlank(), "soak skipped: run it with CORFS_SOAK_MINUTES=30"
                + " mvn -B -o verify -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false -Dit.test=SoakIT");
        assumeTrue(CorfsFixture.onPath("fio"), "fio is not installed (scripts/install-deps installs it)");
        double minutes = Double.parseDouble(minutesEnv);
        assertTimeoutPreemptively(Duration.ofSeconds((long) (minutes * 60) + 300), () -> soak(minutes));
    }

    private void soak(double minutes) throws Exception {
        Path backing = fx.makeBacking("base.raw", SIZE, 31);
        Path leaf = fx.createLeaf(backing, "disk.raw");
        Path mnt = fx.newMountPoint("mnt");
        Path img = mnt.resolve("disk.raw");
        Result m = fx.run(CorfsFixture.COMMAND_TIMEOUT, "env", "CORFS_JAVA_OPTS=-Xmx256m", fx.launcher().toString(),
                "mount", leaf.toString(), mnt.toString());
        m.assertOk();
        assertEquals("fuse.corfs", CorfsFixture.mountType(mnt), m.toString());
        long pid = CorfsFixture.daemonPidsFor(mnt).get(0);
        String cmdline = new String(Files.readAllBytes(Paths.get("/proc", Long.toString(pid), "cmdline")),
                StandardCharsets.UTF_8).replace('\0', ' ');
        assertTrue(cmdline.contains("-Xmx256m"), "CORFS_JAVA_OPTS did not reach the daemon: " + cmdline);

        long deadline = System.nanoTime() + (long) (minutes * 60e9);
        AtomicBoolean stop = new AtomicBoolean();
        List<String> errors = new CopyOnWriteArrayList<>();
        AtomicLong fioRuns = new AtomicLong();
        AtomicLong fioBytes = new AtomicLong();
        AtomicLong jobCycles = new AtomicLong();
        AtomicLong controlReads = new AtomicLong();

        Thread fio = new Thread(() -> {
            int i = 0;
            while (!stop.get() && errors.isEmpty()) {
                boolean direct = i++ % 2 == 1;
                Result r = fx.run(Duration.ofMinutes(5), "fio", "--name=soak", "--filename=" + img,
                        "--rw=randrw", "--bsrange=4k-128k", "--ioengine=psync", "--numjobs=2", "--size=16M",
                        "--offset=" + (direct ? 64 * MIB : 0), "--offset_increment=16M", "--verify=crc32c",
                        "--verify_fatal=1", "--direct=" + (direct ? 1 : 0), "--output-format=terse",
                        "--group_reporting");
                if (r.exit() != 0 || r.stderr().contains("verify")) {
                    errors.add("fio: " + r);
                    return;
                }
                fioRuns.incrementAndGet();
                fioBytes.addAndGet(32 * MIB);
            }
        }, "soak-fio");

        Thread jobs = new Thread(() -> {
            try {
                while (!stop.get() && errors.isEmpty()) {
                    for (String cmd : List.of("stream speed=32M", "commit speed=32M")) {
                        Result r = fx.control(mnt, cmd);
                        if (r.exit() != 0) {
                            errors.add(cmd + ": " + r);
                            return;
                        }
                        CorfsFixture.sleep(300);
                        fx.control(mnt, "pause");
                        CorfsFixture.sleep(200);
                        fx.control(mnt, "resume");
                        fx.control(mnt, "speed 64M");
                        while (!stop.get()) {
                            Map<String, String> s = fx.status(mnt, "disk.raw");
                            controlReads.incrementAndGet();
                            String st = s.get("state");
                            if ("failed".equals(st) || "cancelled".equals(st) || "completed_with_errors".equals(st)) {
                                errors.add("job ended " + st + ": " + s);
                                return;
                            }
                            if ("completed".equals(st)) {
                                break;
                            }
                            CorfsFixture.sleep(250);
                        }
                        jobCycles.incrementAndGet();
                    }
                }
            } catch (RuntimeException | AssertionError e) {
                errors.add("job cycle: " + e);
            }
        }, "soak-jobs");

        List<Sample> samples = new ArrayList<>();
        long start = System.nanoTime();
        samples.add(sample(pid, 0));
        fio.start();
        jobs.start();
        try {
            while (System.nanoTime() < deadline && errors.isEmpty()) {
                long next = start + (samples.size()) * SAMPLE_MS * 1_000_000L;
                while (System.nanoTime() < Math.min(next, deadline) && errors.isEmpty()) {
                    CorfsFixture.sleep(200);
                }
                if (!CorfsFixture.isLiveProcess(pid)) {
                    errors.add("the daemon died");
                    break;
                }
                Sample s = sample(pid, (System.nanoTime() - start) / 1_000_000_000L);
                samples.add(s);
                System.out.println("[SoakIT] " + s);
            }
        } finally {
            stop.set(true);
            fio.join(300_000);
            jobs.join(60_000);
        }
        if (!errors.isEmpty()) {
            fail("soak errors: " + errors);
        }
        fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(120), "no active job",
                s -> !"running".equals(s.get("state")) && !"paused".equals(s.get("state")));
        fx.umount(mnt);
        fx.corfs("check", leaf.toString()).assertOk();

        List<Sample> all = samples;
        if (samples.size() > 3) {
            samples = samples.subList(1, samples.size()); // the first sample is before the JIT and heap warm up
        }
        int third = Math.max(1, samples.size() / 3);
        double rssFirst = samples.subList(0, third).stream().mapToLong(Sample::rssKb).average().orElse(0);
        double rssLast = samples.subList(samples.size() - third, samples.size()).stream()
                .mapToLong(Sample::rssKb).average().orElse(0);
        double fdFirst = samples.subList(0, third).stream().mapToInt(Sample::fds).average().orElse(0);
        double fdLast = samples.subList(samples.size() - third, samples.size()).stream().mapToInt(Sample::fds)
                .average().orElse(0);
        double thFirst = samples.subList(0, third).stream().mapToInt(Sample::threads).average().orElse(0);
        double thLast = samples.subList(samples.size() - third, samples.size()).stream().mapToInt(Sample::threads)
                .average().orElse(0);
        String summary = String.format("%.1f min, %d fio runs of 2 x 16 MiB randrw (%d MiB region passes, 0 verify errors), %d job cycles, %d status"
                + " reads; RSS first third %.0f MiB, last third %.0f MiB; fds %.1f -> %.1f; threads %.1f -> %.1f;"
                + " samples %s", minutes, fioRuns.get(), fioBytes.get() / MIB, jobCycles.get(), controlReads.get(),
                rssFirst / 1024, rssLast / 1024, fdFirst, fdLast, thFirst, thLast, all);
        System.out.println("[SoakIT] " + summary);
        assertTrue(fioRuns.get() > 0 && jobCycles.get() > 0, "the workload did not run: " + summary);
        assertTrue(rssLast <= rssFirst + RSS_MARGIN_KB, "RSS grew: " + summary);
        assertTrue(fdLast <= fdFirst + FD_MARGIN, "open fds grew: " + summary);
        assertTrue(thLast <= thFirst + THREAD_MARGIN, "threads grew: " + summary);
    }

    private static Sample sample(long pid, long seconds) throws IOException {
        long rss = 0;
        int threads = 0;
        for (String line : Files.readAllLines(Paths.get("/proc", Long.toString(pid), "status"))) {
            if (line.startsWith("VmRSS:")) {
                rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
            } else if (line.startsWith("Threads:")) {
                threads = Integer.parseInt(line.replaceAll("[^0-9]", ""));
            }
        }
        int fds;
        try (Stream<Path> s = Files.list(Paths.get("/proc", Long.toString(pid), "fd"))) {
            fds = (int) s.count();
        }
        return new Sample(seconds, rss, fds, threads);
    }
}
