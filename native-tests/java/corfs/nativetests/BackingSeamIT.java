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
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7's backing defects for real: a backing truncated under a mount (2), a backing whose
 * {@code lseek(SEEK_DATA)} blocks (3), and two leaves over one backing with a commit (7).
 */
@DisplayName("the backing seam for real")
class BackingSeamIT {
    private static final int KIB = 1 << 10;
    private static final int MIB = 1 << 20;
    private static final int CLUSTER = 64 * KIB;
    private static final long SIZE = 16 * MIB;
    /** Hang guards only: far above any deadline under test. */
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(3);
    private static final Duration BOUNDED = Duration.ofSeconds(40);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private static void fillData(Path file) throws Exception {
        CorfsFixture.fillRandom(file, SIZE, 5);
    }

    private Result directRead(Path img, long offset, int length) {
        return fx.directRead(img, offset, length, fx.dir().resolve("read.bin"));
    }

    @Test
    @DisplayName("defect 2: a backing truncated while mounted reads as EIO past its new end, and a stream fails")
    void shrunkBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path base = fx.makeBacking("base.raw", SIZE, 21);
            fillData(base);
            Path leaf = fx.createLeaf(base, "disk.raw", "--cluster-size", "64K");
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            Path img = mnt.resolve("disk.raw");
            byte[] head = CorfsFixture.pread(base, 0, CLUSTER);
            fx.run(Duration.ofSeconds(30), "truncate", "-s", "1M", base.toString()).assertOk();

            Result r = directRead(img, 4L * MIB, CLUSTER);
            assertNotEquals(0, r.exit(), "a read past the shrunk end succeeded: " + r);
            assertTrue(r.stderr().contains("Input/output error"), "expected EIO: " + r);
            directRead(img, 0, CLUSTER).assertOk();
            assertArrayEquals(head, Files.readAllBytes(fx.dir().resolve("read.bin")), "before the new end");

            fx.control(mnt, "stream").assertOk();
            Map<String, String> s = fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(60), "failed",
                    st -> "failed".equals(st.get("state")) || "completed".equals(st.get("state")));
            assertEquals("failed", s.get("state"), "a stream over a shrunk backing: " + s);
            assertEquals("no", s.get("standalone"), s.toString());
            assertTrue(Long.parseLong(s.get("local_bytes")) <= MIB, "clusters past the end became local: " + s);
            System.out.println("[BackingSeamIT] shrunk backing: stream error: " + s.get("error"));
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("defect 3: while lseek(SEEK_DATA) on the backing blocks, a cold read, a stream step, cat control and"
            + " corfs umount all return")
    void seekDataHangs() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path src = Files.createDirectories(fx.dir().resolve("src"));
            Path real = fx.makeBacking("src/base.raw", SIZE, 77);
            fillData(real);
            FaultFs.Handle faults = FaultFs.Handle.start(fx, src, fx.dir().resolve("faulty"));
            Path leaf = fx.createLeaf(faults.mountPoint.resolve("base.raw"), "disk.raw", "--cluster-size", "64K");
            Path other = fx.createLeaf(faults.mountPoint.resolve("base.raw"), "other.raw", "--cluster-size", "64K");
            Path mnt = fx.newMountPoint("mnt");
            Path log = fx.dir().resolve("daemon.log");
            fx.mount(mnt, List.of("-o", "backing_timeout=2", "--log", log.toString()), leaf);
            Path img = mnt.resolve("disk.raw");
            directRead(img, 0, CLUSTER).assertOk();

            faults.set("hang-getattr");
            CorfsFixture.sleep(1500); // the kernel's cached attributes of the backing expire (1 s)
            assertTimeoutPreemptively(BOUNDED, () -> {
                Result r = directRead(img, 6L * MIB, CLUSTER);
                assertNotEquals(0, r.exit(), "a cold read while the backing hangs succeeded: " + r);
                assertTrue(r.stderr().contains("Input/output error"), "expected EIO: " + r);
            }, "a cold read");
            assertTimeoutPreemptively(BOUNDED, () -> directRead(img, 0, CLUSTER).assertOk(), "a local read");
            assertTimeoutPreemptively(BOUNDED, () -> fx.control(mnt, "stream").assertOk(), "the stream command");
            Map<String, String> s = assertTimeoutPreemptively(BOUNDED, () -> fx.awaitStatus(mnt, "disk.raw",
                    Duration.ofSeconds(35), "failed", st -> "failed".equals(st.get("state"))), "the stream step");
            assertEquals(Long.toString(CLUSTER), s.get("local_bytes"), s.toString());
            assertTimeoutPreemptively(BOUNDED, () -> fx.status(mnt), "cat control");
            String logText = Files.readString(log);
            assertTrue(logText.contains("did not answer allocation"),
                    "the hang was not in the backing's allocation (SEEK_DATA): " + logText);
            List<Long> daemons = CorfsFixture.daemonPidsFor(mnt);
            long t0 = System.nanoTime();
            Result u = assertTimeoutPreemptively(Duration.ofSeconds(90), () -> fx.corfs("umount", mnt.toString()),
                    "corfs umount");
            long umountMs = (System.nanoTime() - t0) / 1_000_000;
            u.assertOk();
            assertTrue(!CorfsFixture.isMounted(mnt), mnt + " still mounted");
            System.out.printf("[BackingSeamIT] SEEK_DATA hang: stream error: %s; umount %d ms: %s%n", s.get("error"),
                    umountMs, u.stderr().trim());
            // the probe and open of the backing at mount are bounded too: the mount fails, it does not hang
            Path mnt2 = fx.newMountPoint("mnt2");
            Result refused = assertTimeoutPreemptively(BOUNDED, () -> fx.tryMount(mnt2,
                    List.of("-o", "backing_timeout=2", "--log", fx.dir().resolve("other.log").toString()), other),
                    "a mount while the backing hangs");
            assertNotEquals(0, refused.exit(), "a mount over a hanging backing succeeded: " + refused);
            assertTrue(refused.stderr().contains("did not answer within"), "expected the deadline: " + refused);
            assertTrue(!CorfsFixture.isMounted(mnt2), mnt2 + " mounted");
            faults.set("ok"); // the daemon's threads stuck in the backing's filesystem return, and it exits
            for (long pid : daemons) {
                long deadline = System.nanoTime() + 30_000_000_000L;
                while (CorfsFixture.isLiveProcess(pid) && System.nanoTime() < deadline) {
                    CorfsFixture.sleep(100);
                }
                assertTrue(!CorfsFixture.isLiveProcess(pid), "daemon " + pid + " never exited after the backing healed");
            }
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }

    @Test
    @DisplayName("defect 7: a commit is refused with EBUSY naming the other mount of the same backing, runs once"
            + " it is unmounted; qemu-io cannot write the backing while it is mounted")
    void commitRefusedWhileAnotherLeafUsesTheBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path base = fx.makeBacking("base.raw", SIZE, 33);
            Path a = fx.createLeaf(base, "a.raw", "--cluster-size", "64K");
            Path b = fx.createLeaf(base, "b.raw", "--cluster-size", "64K");
            Path mntA = fx.newMountPoint("mnt-a");
            Path mntB = fx.newMountPoint("mnt-b");
            fx.mount(mntA, a);
            fx.mount(mntB, b);
            byte[] data = new byte[CLUSTER];
            new Random(9).nextBytes(data);
            fx.dd(mntA.resolve("a.raw"), 3L * MIB, data, true).assertOk();

            Result refused = fx.control(mntA, "commit");
            assertNotEquals(0, refused.exit(), "a commit under another mount of the backing was accepted");
            assertTrue(refused.stderr().contains("Device or resource busy"), "expected EBUSY: " + refused);
            // a refused command's reason is in command_error, percent-encoded (the mount path has no '%' or '+')
            String error = java.net.URLDecoder.decode(fx.status(mntA, "a.raw").get("command_error"),
                    java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(error.contains(mntB.toString()), "the error names the other mount " + mntB + ": " + error);
            System.out.println("[BackingSeamIT] commit refused: " + error);

            if (CorfsFixture.onPath("qemu-io")) {
                Result q = fx.run(Duration.ofSeconds(30), "qemu-io", "-f", "raw", "-c", "write -P 0x55 0 4k",
                        base.toString());
                assertNotEquals(0, q.exit(), "qemu-io wrote a mounted backing: " + q);
                assertTrue((q.stdout() + q.stderr()).contains("lock"), "qemu-io should fail on its lock: " + q);
            }

            fx.umount(mntB);
            fx.control(mntA, "commit").assertOk();
            fx.awaitJobState(mntA, "a.raw", "completed", Duration.ofSeconds(60));
            assertArrayEquals(data, CorfsFixture.pread(base, 3L * MIB, CLUSTER), "the commit reached the backing");
            fx.umount(mntA);
        });
    }

    @Test
    @DisplayName("defect 7: mounting is refused while qemu-io holds the backing open for writing")
    void mountRefusedWhileQemuWrites() {
        assumeTrue(CorfsFixture.onPath("qemu-io"), "qemu-io not installed");
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path base = fx.makeBacking("base.raw", SIZE, 34);
            Path leaf = fx.createLeaf(base, "disk.raw");
            Path out = fx.dir().resolve("qemu-io.out");
            Process q = new ProcessBuilder("qemu-io", "-f", "raw", base.toString())
                    .redirectErrorStream(true).redirectOutput(out.toFile()).start();
            fx.onTeardown("qemu-io", () -> {
                q.destroy();
                q.waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
            });
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!Files.readString(out).contains("qemu-io>") && q.isAlive() && System.nanoTime() < deadline) {
                CorfsFixture.sleep(50);
            }
            Path mnt = fx.newMountPoint("mnt");
            Result r = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, r.exit(), "mounted while qemu-io writes the backing: " + r);
            assertTrue(r.stderr().contains("pid " + q.pid()), "the refusal names qemu-io: " + r);
        });
    }
}
