package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7's job identity through real mounts: a commit that ends in any way (cancelled, failed, killed)
 * leaves the leaf mountable without {@code --force}; {@code --wait} follows the job its own command
 * started and says so when another replaced it; the backing is writable only while a commit runs
 * (counted in the daemon's {@code /proc/PID/fdinfo}).
 */
@DisplayName("job identity: commits that end any way, --wait following its own job, backing writers")
class JobIdentityIT {
    private static final int MIB = 1 << 20;
    private static final long SIZE = 64L * MIB;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(3);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private long daemonPid(Path mnt) {
        List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
        assertEquals(1, pids.size(), "daemons serving " + mnt + ": " + pids);
        return pids.get(0);
    }

    /** Writes {@code mib} MiB of random data through the mount, fsynced: that much is dirty. */
    private void dirty(Path img, int mib) {
        fx.run(Duration.ofSeconds(60), "dd", "if=/dev/urandom", "of=" + img, "bs=1M", "count=" + mib,
                "conv=notrunc,fsync", "status=none").assertOk();
    }

    private static long num(Map<String, String> s, String key) {
        return Long.parseLong(s.get(key));
    }

    /** After the commit ended some way: unmount, check clean, remount without --force. */
    private void assertRemountsWithoutForce(Path mnt, Path leaf) {
        fx.umount(mnt);
        Result check = fx.corfs("check", leaf.toString());
        assertEquals(0, check.exit(), "check after the commit: " + check);
        Result again = fx.tryMount(mnt, List.of(), leaf);
        assertEquals(0, again.exit(), "mount without --force after the commit: " + again);
    }

    @Test
    @DisplayName("a cancelled commit: check is clean and the leaf remounts without --force")
    void cancelledCommit() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 1);
            Path leaf = fx.createLeaf(backing, "leaf.raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            dirty(mnt.resolve("leaf.raw"), 32);
            fx.control(mnt, "commit speed=4M").assertOk();
            fx.awaitStatus(mnt, "leaf.raw", Duration.ofSeconds(30), "some progress", s -> num(s, "done_bytes") > 0);
            fx.control(mnt, "cancel").assertOk();
            assertRemountsWithoutForce(mnt, leaf);
            assertEquals("cancelled", fx.status(mnt, "leaf.raw").get("state"));
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a commit failed by the backing (EIO on write): the leaf remounts without --force")
    void failedCommit() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path src = Files.createDirectories(fx.dir().resolve("src"));
            fx.makeBacking("src/base.raw", SIZE, 2);
            FaultFs.Handle faults = FaultFs.Handle.start(fx, src, fx.dir().resolve("faulty"));
            Path leaf = fx.createLeaf(faults.mountPoint.resolve("base.raw"), "leaf.raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            dirty(mnt.resolve("leaf.raw"), 32);
            fx.control(mnt, "commit speed=4M").assertOk();
            fx.awaitStatus(mnt, "leaf.raw", Duration.ofSeconds(30), "some progress", s -> num(s, "done_bytes") > 0);
            faults.set("eio");
            Map<String, String> st = fx.awaitStatus(mnt, "leaf.raw", Duration.ofSeconds(60), "failed",
                    s -> "failed".equals(s.get("state")));
            faults.set("ok");
            assertTrue(st.get("error").contains("Input/output error"), st.toString());
            assertRemountsWithoutForce(mnt, leaf);
            assertEquals("failed", fx.status(mnt, "leaf.raw").get("state"));
            fx.control(mnt, "resume").assertOk();
            fx.awaitJobState(mnt, "leaf.raw", "completed", Duration.ofSeconds(60));
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a commit killed by kill -9: the next mount accepts its change, resumes and completes it")
    void killedCommit() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 3);
            Path leaf = fx.createLeaf(backing, "leaf.raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            dirty(mnt.resolve("leaf.raw"), 32);
            fx.control(mnt, "commit speed=4M").assertOk();
            fx.awaitStatus(mnt, "leaf.raw", Duration.ofSeconds(30), "some progress",
                    s -> num(s, "done_bytes") >= 2 * MIB);
            long pid = daemonPid(mnt);
            fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (CorfsFixture.isLiveProcess(pid) && System.nanoTime() < deadline) {
                CorfsFixture.sleep(50);
            }
            fx.clearDeadMount(mnt);
            Result check = fx.corfs("check", leaf.toString());
            assertEquals(0, check.exit(), "check after kill -9 mid-commit: " + check);
            Result again = fx.tryMount(mnt, List.of(), leaf);
            assertEquals(0, again.exit(), "mount without --force after kill -9 mid-commit: " + again);
            fx.control(mnt, "speed 0").assertOk();
            fx.awaitJobState(mnt, "leaf.raw", "completed", Duration.ofSeconds(60));
            fx.assertSameContent(mnt.resolve("leaf.raw"), backing);
            fx.umount(mnt);
            assertEquals(0, fx.corfs("check", leaf.toString()).exit());
        });
    }

    @Test
    @DisplayName("stream --wait exits non-zero when its stream is cancelled and a commit replaces it")
    void waitFollowsItsOwnJob() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 4);
            Path leaf = fx.createLeaf(backing, "leaf.raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            CompletableFuture<Result> waiting = CompletableFuture.supplyAsync(
                    () -> fx.corfs(Duration.ofSeconds(120), "stream", "--wait", "--speed", "512K", mnt.toString()));
            fx.awaitStatus(mnt, "leaf.raw", Duration.ofSeconds(30), "stream running",
                    s -> "stream".equals(s.get("job")) && "running".equals(s.get("state")));
            CorfsFixture.sleep(1000); // the CLI has read the job it started and follows it
            fx.sh("printf 'cancel\\ncommit\\n' > " + mnt.resolve("control")).assertOk();
            Result r = waiting.get(120, TimeUnit.SECONDS);
            Map<String, String> st = fx.status(mnt, "leaf.raw");
            assertEquals("commit", st.get("job"), st.toString());
            assertNotEquals(0, r.exit(), "stream --wait reported another job's end as its own: " + r + "; " + st);
            assertTrue(r.stderr().contains("replaced") || r.stderr().contains("cancelled"), r.toString());
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("100 rounds of cancel+commit: no writable descriptor on the backing once the last commit ends")
    void noLeakedWriters() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 5);
            Path leaf = fx.createLeaf(backing, "leaf.raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            long pid = daemonPid(mnt);
            assertEquals(0, writableDescriptors(pid, backing), "before any commit");
            dirty(mnt.resolve("leaf.raw"), 16);
            fx.control(mnt, "commit speed=64K").assertOk();
            // the writer, and the descriptor that holds its exclusive OFD locks (opened for writing, as
            // F_WRLCK needs): two while a commit runs, none before or after
            assertEquals(2, writableDescriptors(pid, backing), "while the commit runs");
            StringBuilder rounds = new StringBuilder();
            for (int i = 0; i < 100; i++) {
                rounds.append("printf 'cancel\\ncommit speed=64K\\n' > ").append(mnt.resolve("control")).append('\n');
            }
            fx.sh(rounds.toString()).assertOk();
            fx.control(mnt, "speed 0").assertOk();
            fx.awaitJobState(mnt, "leaf.raw", "completed", Duration.ofSeconds(90));
            assertEquals(0, writableDescriptors(pid, backing), "after the last commit completed");
            fx.umount(mnt);
        });
    }

    /** Descriptors of {@code pid} open on {@code file} with O_WRONLY or O_RDWR, from /proc/PID/fdinfo. */
    private static int writableDescriptors(long pid, Path file) throws IOException {
        Path real = file.toRealPath();
        int n = 0;
        try (Stream<Path> fds = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    if (!Files.readSymbolicLink(fd).equals(real)) {
                        continue;
                    }
                    String info = Files.readString(Path.of("/proc", Long.toString(pid), "fdinfo",
                            fd.getFileName().toString()));
                    for (String line : info.split("\n")) {
                        if (line.startsWith("flags:")) {
                            int flags = Integer.parseInt(line.substring(6).trim(), 8);
                            if ((flags & 3) != 0) {
                                n++;
                            }
                        }
                    }
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        }
        return n;
    }
}
