package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's security points: leaf and metadata files are created 0600; the exposed files and the control
 * file are 0600 and owned by the mounting user; another user can neither read the image nor write the
 * control file, with or without {@code -o allow_other}; the daemon holds the backing open read-only except
 * while a commit runs ({@code /proc/PID/fdinfo} flags).
 *
 * <p>The other user is {@value #USER}, a system user created for the test when missing (and removed
 * afterwards). The test directory is made traversable (0755) so that only corfs's own permissions, not the
 * temp directory's, stand between that user and the mount. Needs root.
 */
@DisplayName("permissions and backing access mode")
class SecurityIT {

    private static final String USER = "corfstest";
    private static final int MIB = 1 << 20;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(2);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path backing;
    private Path leaf;
    private Path mnt;

    @BeforeEach
    void setUp() throws Exception {
        assumeTrue("0".equals(fx.run(Duration.ofSeconds(10), "id", "-u").assertOk().stdout().trim()),
                "SecurityIT needs root (it creates a user and runs commands as it)");
        assumeTrue(CorfsFixture.onPath("runuser") && CorfsFixture.onPath("useradd"),
                "runuser/useradd missing (package util-linux, passwd)");
        if (fx.run(Duration.ofSeconds(10), "getent", "passwd", USER).exit() != 0) {
            fx.run(Duration.ofSeconds(30), "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER).assertOk();
            fx.onTeardown("user " + USER, () -> fx.run(Duration.ofSeconds(30), "userdel", USER).assertOk());
        }
        fx.run(Duration.ofSeconds(10), "chmod", "0755", fx.dir().toString()).assertOk();
        backing = fx.makeBacking("base.raw", 16L * MIB, 21);
        leaf = fx.createLeaf(backing, "disk.raw");
        mnt = fx.newMountPoint("mnt");
    }

    private static int mode(Path p) throws IOException {
        return (Integer) Files.getAttribute(p, "unix:mode") & 07777;
    }

    private static int uid(Path p) throws IOException {
        return (Integer) Files.getAttribute(p, "unix:uid");
    }

    /** {@code runuser -u corfstest -- sh -c SCRIPT sh ARGS...}. */
    private Result asOther(String script, String... args) {
        List<String> cmd = new ArrayList<>(List.of("runuser", "-u", USER, "--", "sh", "-c", script, "sh"));
        cmd.addAll(List.of(args));
        return fx.run(Duration.ofSeconds(30), cmd.toArray(String[]::new));
    }

    private void assertRefused(Result r, String what) {
        assertNotEquals(0, r.exit(), USER + " could " + what + ": " + r);
        assertTrue(r.stderr().contains("Permission denied"), what + ": expected EACCES: " + r);
    }

    @Test
    @DisplayName("leaf and metadata 0600; exposed files 0600 owned by the mounter; another user is refused")
    void modesAndOtherUserWithoutAllowOther() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            assertEquals(0600, mode(leaf), "leaf mode");
            assertEquals(0600, mode(CorfsFixture.metadataOf(leaf)), "metadata mode");
            fx.mount(mnt, leaf);
            for (Path p : List.of(mnt.resolve("disk.raw"), mnt.resolve("control"))) {
                assertEquals(0600, mode(p), p + " mode");
                assertEquals(0, uid(p), p + " owner");
            }
            assertRefused(asOther("ls \"$1\"", mnt.toString()), "list the mount without allow_other");
            assertRefused(asOther("cat \"$1\" > /dev/null", mnt.resolve("disk.raw").toString()),
                    "read the image without allow_other");
            assertRefused(asOther("/bin/echo stream > \"$1\"", mnt.resolve("control").toString()),
                    "write the control file without allow_other");
            assertEquals("none", fx.status(mnt, "disk.raw").get("job"));
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("with allow_other another user sees the directory but cannot read the image or use control")
    void otherUserWithAllowOther() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, List.of("-o", "allow_other"), leaf);
            Result ls = asOther("ls \"$1\"", mnt.toString());
            assertEquals(0, ls.exit(), "with allow_other the directory is visible: " + ls);
            assertTrue(ls.stdout().contains("disk.raw") && ls.stdout().contains("control"), ls.toString());
            assertRefused(asOther("cat \"$1\" > /dev/null", mnt.resolve("disk.raw").toString()), "read the image");
            assertRefused(asOther("/bin/echo garbage >> \"$1\"", mnt.resolve("disk.raw").toString()),
                    "write the image");
            assertRefused(asOther("/bin/echo stream > \"$1\"", mnt.resolve("control").toString()),
                    "write the control file");
            assertRefused(asOther("cat \"$1\"", mnt.resolve("control").toString()), "read the control file");
            assertEquals("none", fx.status(mnt, "disk.raw").get("job"), "a refused command started a job");
            fx.umount(mnt);
        });
    }

    /** Access modes (O_ACCMODE of fdinfo's flags: 0 read, 1 write, 2 read-write) of the pid's fds on {@code file}. */
    private static List<Integer> accessModes(long pid, Path file) throws IOException {
        List<Integer> out = new ArrayList<>();
        Path fds = Paths.get("/proc", Long.toString(pid), "fd");
        try (Stream<Path> list = Files.list(fds)) {
            for (Path fd : list.toList()) {
                try {
                    if (!Files.readSymbolicLink(fd).equals(file)) {
                        continue;
                    }
                    for (String line : Files.readAllLines(Paths.get("/proc", Long.toString(pid), "fdinfo",
                            fd.getFileName().toString()))) {
                        if (line.startsWith("flags:")) {
                            out.add(Integer.parseInt(line.substring(6).trim(), 8) & 3);
                        }
                    }
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        }
        return out;
    }

    @Test
    @DisplayName("the backing is open read-only except while a commit runs")
    void backingReadOnlyExceptDuringCommit() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path real = backing.toRealPath();
            fx.mount(mnt, leaf);
            long pid = CorfsFixture.daemonPidsFor(mnt).get(0);
            Path img = mnt.resolve("disk.raw");
            fx.assertSameContent(img, backing);
            List<Integer> idle = accessModes(pid, real);
            assertFalse(idle.isEmpty(), "the daemon has no fd on " + real);
            assertTrue(idle.stream().allMatch(m -> m == 0), "backing fds before a commit: " + idle);

            byte[] data = new byte[8 * MIB];
            new Random(8).nextBytes(data);
            fx.dd(img, 4L * MIB, data, true).assertOk();
            assertTrue(accessModes(pid, real).stream().allMatch(m -> m == 0), "writes opened the backing for writing");

            fx.control(mnt, "commit speed=2M").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));
            CorfsFixture.sleep(500);
            List<Integer> during = accessModes(pid, real);
            assertTrue(during.stream().anyMatch(m -> m != 0), "no writable backing fd during a commit: " + during);
            fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(60));
            CorfsFixture.sleep(300);
            List<Integer> after = accessModes(pid, real);
            assertTrue(after.stream().allMatch(m -> m == 0), "backing fds after the commit: " + after);
            System.out.println("[SecurityIT] backing access modes: idle " + idle + ", commit " + during + ", after "
                    + after);
            fx.umount(mnt);
        });
    }
}
