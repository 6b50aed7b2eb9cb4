package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's lifecycle: {@code corfs umount} and SIGTERM while a throttled stream runs and the exposed file
 * is open (everything flushed, the job resumed on the next mount), and a mount point left dead by a killed
 * daemon ({@code corfs mount} says how to clear it, {@code --force} clears it).
 */
@DisplayName("unmount, SIGTERM and dead mounts while jobs run")
class LifecycleIT {

    private static final int MIB = 1 << 20;
    private static final long SIZE = 64L * MIB;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(2);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private long daemonPid(Path mnt) {
        List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
        assertEquals(1, pids.size(), "daemons serving " + mnt + ": " + pids);
        return pids.get(0);
    }

    /** Starts {@code command} with stdin from /dev/null, stdout discarded and stderr to {@code stderr}. */
    private static Process start(ProcessBuilder.Redirect stderr, String... command) throws IOException {
        return new ProcessBuilder(command)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(stderr)
                .start();
    }

    private static void awaitExit(long pid, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (CorfsFixture.isLiveProcess(pid)) {
            assertTrue(System.nanoTime() < deadline, what + ": daemon " + pid + " still alive after " + timeout);
            CorfsFixture.sleep(50);
        }
    }

    @Test
    @DisplayName("with the file open: corfs umount refuses (busy), SIGTERM flushes and exits, the stream resumes")
    void sigtermWithFileOpenAndJobRunning() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 11);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("disk.raw");
            byte[] model = Files.readAllBytes(backing);
            fx.mount(mnt, leaf);
            fx.control(mnt, "stream speed=4M").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));

            FileChannel open = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE);
            try {
                long[] offsets = {5L * MIB + 123, 40L * MIB + 4096, SIZE - 70_000};
                for (int i = 0; i < offsets.length; i++) {
                    byte[] data = random(70_000, i);
                    ByteBuffer b = ByteBuffer.wrap(data);
                    while (b.hasRemaining()) {
                        open.write(b, offsets[i] + b.position());
                    }
                    System.arraycopy(data, 0, model, (int) offsets[i], data.length);
                }
                open.force(true);

                Result u = fx.corfs("umount", mnt.toString());
                assertNotEquals(0, u.exit(), "corfs umount succeeded with the file open: " + u);
                assertTrue(u.stderr().contains("busy") && u.stderr().contains("close the files"),
                        "corfs umount of a busy mount should say why and what to do: " + u);
                assertEquals("fuse.corfs", CorfsFixture.mountType(mnt), "a refused umount changed the mount");
                Map<String, String> before = fx.status(mnt, "disk.raw");
                assertEquals("running", before.get("state"), "the job stopped at a refused umount: " + before);
                System.out.println("[LifecycleIT] corfs umount with the file open: " + u.stderr().trim());

                long pid = daemonPid(mnt);
                fx.run(Duration.ofSeconds(10), "kill", "-TERM", Long.toString(pid)).assertOk();
                awaitExit(pid, Duration.ofSeconds(30), "SIGTERM");
                assertFalse(CorfsFixture.isMounted(mnt), "mount still listed after the daemon exited on SIGTERM");
            } finally {
                try {
                    open.close();
                } catch (IOException e) {
                    // the mount went away under it
                }
            }
            Result check = fx.corfs("check", leaf.toString());
            assertEquals(0, check.exit(), "corfs check after SIGTERM: " + check);

            fx.mount(mnt, leaf);
            Map<String, String> after = fx.status(mnt, "disk.raw");
            assertEquals("stream", after.get("job"), after.toString());
            assertTrue(List.of("running", "completed").contains(after.get("state")),
                    "the stream did not resume: " + after);
            assertTrue(Long.parseLong(after.get("dirty_bytes")) >= 3 * 70_000, "writes not dirty: " + after);
            assertArrayEquals(model, Files.readAllBytes(img), "data after SIGTERM and remount");
            if ("running".equals(fx.status(mnt, "disk.raw").get("state"))) {
                fx.control(mnt, "speed 0"); // EALREADY if it completed meanwhile
            }
            Map<String, String> s = fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(60));
            assertEquals("yes", s.get("standalone"), s.toString());
            fx.umount(mnt);
            Files.delete(backing);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            assertArrayEquals(model, Files.readAllBytes(img), "standalone leaf without the backing");
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("corfs umount with a stream running: flushed, and the stream resumes on the next mount")
    void umountWithJobRunning() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 12);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("disk.raw");
            byte[] model = Files.readAllBytes(backing);
            fx.mount(mnt, leaf);
            fx.control(mnt, "stream speed=4M").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));
            byte[] data = random(200_000, 99);
            fx.dd(img, 17L * MIB + 1, data, false).assertOk(); // no fsync: unmount must flush it
            System.arraycopy(data, 0, model, 17 * MIB + 1, data.length);
            CorfsFixture.sleep(700);
            Map<String, String> before = fx.status(mnt, "disk.raw");
            long t0 = System.nanoTime();
            fx.umount(mnt);
            long umountMs = (System.nanoTime() - t0) / 1_000_000;
            fx.corfs("check", leaf.toString()).assertOk();

            fx.mount(mnt, leaf);
            Map<String, String> after = fx.status(mnt, "disk.raw");
            assertEquals("running", after.get("state"), "stream not resumed: " + after);
            // a resumed job counts its progress afresh over what is left; what was copied stays local
            assertTrue(Long.parseLong(after.get("local_bytes")) >= Long.parseLong(before.get("local_bytes")),
                    "local bytes went back: before " + before + ", after " + after);
            assertArrayEquals(model, Files.readAllBytes(img), "data after corfs umount and remount");
            System.out.printf("[LifecycleIT] corfs umount with a stream running took %d ms; local_bytes %s -> %s%n",
                    umountMs, before.get("local_bytes"), after.get("local_bytes"));
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a dead mount (kill -9, no_auto_unmount): mount says how to clear it; --force clears and mounts")
    void deadMountPoint() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 13);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, List.of("-o", "no_auto_unmount"), leaf);
            long pid = daemonPid(mnt);
            fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
            awaitExit(pid, Duration.ofSeconds(15), "kill -9");
            assertEquals("fuse.corfs", CorfsFixture.mountType(mnt), "no dead mount left (auto_unmount?)");
            // While the killed JVM's last threads exit, the kernel may still be aborting the connection
            // (ls then reports ECONNABORTED, "Software caused connection abort"): wait for the settled state.
            Result ls;
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            do {
                ls = fx.run(Duration.ofSeconds(10), "ls", mnt.toString());
                assertNotEquals(0, ls.exit(), "not a dead mount: " + ls);
                if (!ls.stderr().contains("Transport endpoint is not connected")) {
                    System.out.println("[LifecycleIT] ls on the dying mount: " + ls.stderr().trim());
                    CorfsFixture.sleep(100);
                }
            } while (!ls.stderr().contains("Transport endpoint is not connected") && System.nanoTime() < deadline);
            assertTrue(ls.stderr().contains("Transport endpoint is not connected"), "not a dead mount: " + ls);

            Result refused = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, refused.exit(), "mount on a dead mount point succeeded: " + refused);
            assertTrue(refused.stderr().contains("dead FUSE mount") && refused.stderr().contains("fusermount -u")
                    && refused.stderr().contains("--force"), "the message should say how to clear it: " + refused);
            System.out.println("[LifecycleIT] mount on a dead mount point: " + refused.stderr().trim());

            fx.mount(mnt, List.of("--force"), leaf);
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a daemon whose starter is gone (nobody reads its ready pipe) does not mount, and exits 1")
    void daemonWithoutStarter() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 17);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path log = fx.dir().resolve("orphan.log");
            // fd 5: the writing end of a FIFO whose only reader (fd 4) is closed before the daemon starts, as when
            // corfs mount and its relay are stopped (Ctrl-C) while the daemon starts. Before the fix the daemon
            // mounted anyway, unannounced, and served until someone found it.
            Result r = fx.run(Duration.ofSeconds(60), "sh", "-c",
                    "mkfifo \"$1\" && exec 4<>\"$1\" 5>\"$1\" 4<&- && exec \"$2\" mount -f --report-ready --log \"$3\""
                            + " \"$4\" \"$5\" >&5 5>&-",
                    "sh", fx.dir().resolve("ready.fifo").toString(), fx.launcher().toString(), log.toString(),
                    leaf.toString(), mnt.toString());
            assertEquals(1, r.exit(), "a daemon nobody waits for: " + r);
            assertFalse(CorfsFixture.isMounted(mnt), "a daemon nobody waits for mounted " + mnt);
            // With --log (as corfs mount starts it) the daemon's stderr is the log its starter opened: here r.stderr.
            assertTrue(r.stderr().contains("nobody waits for this daemon"), "the log should say why: " + r);
            fx.mount(mnt, leaf); // the leaf was left closed and unlocked
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a launcher started with stderr, stdout or stdin closed mounts: the daemon's log does not take the"
            + " place of a descriptor its JVM opened on fd 2")
    void launcherWithClosedStandardDescriptors() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 29);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            // A JVM started with fd 2 closed opens its runtime image (lib/modules) there; the daemon then made fd 2
            // its log (dup2), closing the runtime image under the JVM, which died before READY (exit 2, no message).
            for (String closed : List.of("2>&-", ">&-", "<&-", ">&- 2>&-")) {
                Result r = fx.run(Duration.ofSeconds(120), "sh", "-c", "exec \"$0\" mount \"$1\" \"$2\" " + closed,
                        fx.launcher().toString(), leaf.toString(), mnt.toString());
                assertEquals(0, r.exit(), closed + ": " + r);
                assertTrue(CorfsFixture.isMounted(mnt), closed + ": not mounted: " + r);
                assertArrayEquals(Files.readAllBytes(backing), Files.readAllBytes(mnt.resolve("disk.raw")), closed);
                fx.umount(mnt);
            }
        });
    }

    @Test
    @DisplayName("a launcher killed (SIGKILL) while the daemon it started mounts: the daemon does not stay mounted")
    void launcherKilledDuringStart() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 23);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            // The daemon is stopped (SIGSTOP) as soon as it is seen, the launcher killed, the daemon continued: it
            // finds its launcher gone at its first line for the user, or at READY. Wherever it was, nobody was told
            // of a mount: none may remain once the daemon is gone. (A launcher that had reported READY before the
            // kill landed exits 0: that mount was announced, and is unmounted here.)
            int killed = 0;
            for (int round = 0; round < 3; round++) {
                Process launcher = start(ProcessBuilder.Redirect.DISCARD, fx.launcher().toString(), "mount",
                        leaf.toString(), mnt.toString());
                List<Long> pids;
                while ((pids = CorfsFixture.daemonPidsFor(mnt)).isEmpty() && launcher.isAlive()) {
                    CorfsFixture.sleep(2);
                }
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-STOP", Long.toString(pid));
                }
                launcher.destroyForcibly();
                int exit = launcher.waitFor();
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-CONT", Long.toString(pid));
                }
                if (exit == 0) {
                    fx.umount(mnt);
                    continue;
                }
                killed++;
                for (long pid : pids) {
                    awaitExit(pid, Duration.ofSeconds(60), "a daemon whose launcher was killed");
                }
                assertFalse(CorfsFixture.isMounted(mnt), "round " + round + ": a daemon whose launcher was killed"
                        + " left " + mnt + " mounted");
            }
            System.out.println("[LifecycleIT] launchers killed during their daemon's start: " + killed + " of 3");
            fx.mount(mnt, leaf); // the leaf was left closed and unlocked
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a daemon sent SIGTERM the moment its mount appears, before it is ready: the mount is gone when it"
            + " exits, even without auto_unmount")
    void sigtermAsTheMountAppears() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 31);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            // Between the kernel mount (fuse_setup) and its shutdown hook, a daemon stopped by SIGTERM (Ctrl-C of
            // corfs mount, whose relay then sends it SIGTERM) exited with the mount still there: a dead mount with
            // no_auto_unmount, one that fusermount's watchdog removed a moment after the exit otherwise. -f runs
            // the daemon as this process's child, so the signal goes the moment /proc/mounts shows the mount.
            int early = 0;
            for (int round = 0; round < 5; round++) {
                Path log = fx.dir().resolve("round" + round + ".log");
                Process daemon = start(ProcessBuilder.Redirect.to(log.toFile()), fx.launcher().toString(), "mount", "-f",
                        "-o", "no_auto_unmount", leaf.toString(), mnt.toString());
                while (!CorfsFixture.isMounted(mnt) && daemon.isAlive()) {
                    Thread.onSpinWait();
                }
                daemon.destroy(); // SIGTERM
                int exit = daemon.waitFor();
                String said = Files.readString(log);
                if (!said.contains("ready:")) {
                    early++;
                }
                assertFalse(CorfsFixture.isMounted(mnt), "round " + round + ": the daemon exited " + exit
                        + " and left " + mnt + " mounted; it said:\n" + said);
            }
            System.out.println("[LifecycleIT] SIGTERM before ready: " + early + " of 5");
            fx.mount(mnt, leaf); // the leaf was left closed and unlocked
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("Ctrl-C of corfs mount (SIGINT to the launcher's process group) while its daemon starts: no mount"
            + " stays once the daemon is gone, the leaf is closed cleanly and mounts again")
    void launcherInterruptedDuringStart() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 37);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            // The launcher leads its own process group (setsid), as a shell's foreground job does; the daemon runs in
            // a session of its own, so only the relay's SIGTERM can stop it. The daemon is held (SIGSTOP) as soon as
            // it is seen (round 0: opening the leaf) or once its mount appears (later rounds: mounting, or mounted
            // and not yet ready), the group interrupted, the daemon continued. Timing only chooses the point;
            // wherever it was, once the daemon is gone no mount may remain (no_auto_unmount: nothing else clears it).
            int interrupted = 0;
            for (int round = 0; round < 3; round++) {
                Process launcher = start(ProcessBuilder.Redirect.DISCARD, "setsid", fx.launcher().toString(), "mount",
                        "-o", "no_auto_unmount", leaf.toString(), mnt.toString());
                List<Long> pids;
                while ((pids = CorfsFixture.daemonPidsFor(mnt)).isEmpty() && launcher.isAlive()) {
                    CorfsFixture.sleep(2);
                }
                while (round > 0 && !CorfsFixture.isMounted(mnt) && launcher.isAlive()
                        && pids.stream().allMatch(CorfsFixture::isLiveProcess)) {
                    Thread.onSpinWait();
                }
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-STOP", Long.toString(pid));
                }
                fx.run(Duration.ofSeconds(10), "kill", "-INT", "--", "-" + launcher.pid()); // Ctrl-C
                int exit = launcher.waitFor();
                for (long pid : pids) {
                    fx.run(Duration.ofSeconds(10), "kill", "-CONT", Long.toString(pid));
                }
                if (exit == 0) {
                    fx.umount(mnt); // READY was read before the interrupt: that mount was announced
                    continue;
                }
                interrupted++;
                for (long pid : pids) {
                    awaitExit(pid, Duration.ofSeconds(60), "the daemon of an interrupted launcher");
                }
                assertFalse(CorfsFixture.isMounted(mnt), "round " + round + ": the daemon of an interrupted launcher"
                        + " (exit " + exit + ") left " + mnt + " mounted");
                Result info = fx.corfs("info", leaf.toString());
                info.assertOk();
                assertFalse(info.stdout().contains("not closed cleanly"), "round " + round + ": " + info.stdout());
            }
            System.out.println("[LifecycleIT] launchers interrupted during their daemon's start: " + interrupted + " of 3");
            fx.mount(mnt, leaf); // the leaf was left closed and unlocked
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a daemon killed while it starts: the launcher says it exited before it was ready, exit 1; no mount stays")
    void daemonKilledDuringStart() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 29);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Process launcher = start(ProcessBuilder.Redirect.PIPE, fx.launcher().toString(), "mount", leaf.toString(),
                    mnt.toString());
            List<Long> pids;
            while ((pids = CorfsFixture.daemonPidsFor(mnt)).isEmpty()) {
                assertTrue(launcher.isAlive(), "the launcher ended before its daemon started");
                CorfsFixture.sleep(2);
            }
            long pid = pids.get(0);
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            String err = new String(launcher.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            int exit = launcher.waitFor();
            awaitExit(pid, Duration.ofSeconds(30), "a daemon killed by SIGKILL");
            // Nearly always the kill lands long before READY (a start takes hundreds of ms); on a machine loaded
            // enough to let the daemon get there first, the mount it made went with it (auto_unmount).
            if (exit != 0) {
                assertEquals(1, exit, err);
                assertTrue(err.contains("exited before it was ready"), err);
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (CorfsFixture.isMounted(mnt) && System.nanoTime() < deadline) {
                CorfsFixture.sleep(50);
            }
            assertFalse(CorfsFixture.isMounted(mnt), mnt + " still mounted after its daemon was killed");
        });
    }
}
