package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7, defect 4: files another local user prepared for corfs must not be written through. The runtime
 * directory ({@code /tmp/corfs-UID/} without {@code XDG_RUNTIME_DIR}) may have been created first by
 * someone else, world-writable, with symlinks planted where corfs writes its pid file; the daemon's log
 * beside the leaf may be a planted symlink. corfs must refuse with a clear message and leave the symlinks'
 * targets untouched.
 *
 * <p>The runtime directory is moved into the test's directory with {@code -Djava.io.tmpdir} (through
 * {@code CORFS_JAVA_OPTS}, which the daemon inherits), so the real {@code /tmp/corfs-UID/} of other tests
 * is never touched. Runs as any user; the "owned by another uid" case needs root (chown).
 */
@DisplayName("hostile runtime directory and log file")
class HostileFilesIT {
    private static final int MIB = 1 << 20;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(2);
    private static final String PRECIOUS = "precious, not to be overwritten\n";

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path leaf;
    private Path mnt;
    private Path tmp;
    private Path victim;
    private String uid;

    @BeforeEach
    void setUp() throws Exception {
        Path backing = fx.makeBacking("base.raw", 4L * MIB, 4);
        leaf = fx.createLeaf(backing, "disk.raw");
        mnt = fx.newMountPoint("mnt");
        tmp = Files.createDirectories(fx.dir().resolve("tmp"));
        victim = fx.dir().resolve("victim");
        Files.writeString(victim, PRECIOUS);
        uid = fx.run(Duration.ofSeconds(10), "id", "-u").assertOk().stdout().trim();
    }

    /** Without XDG_RUNTIME_DIR, with java.io.tmpdir = the test's tmp: the runtime dir is tmp/corfs-UID. */
    private Map<String, String> tmpEnv() {
        Map<String, String> env = new HashMap<>();
        env.put("XDG_RUNTIME_DIR", null);
        env.put("CORFS_JAVA_OPTS", "-Djava.io.tmpdir=" + tmp);
        return env;
    }

    private String pidName() throws Exception {
        byte[] h = MessageDigest.getInstance("SHA-256")
                .digest(mnt.toRealPath().toString().getBytes(StandardCharsets.UTF_8));
        return HexFormat.of().formatHex(h, 0, 12) + ".pid";
    }

    private void assertRefusedUntouched(Result r, String expect) throws Exception {
        assertNotEquals(0, r.exit(), "mount accepted: " + r);
        assertTrue(r.stderr().contains(expect), "no clear message (expected '" + expect + "'): " + r);
        assertFalse(CorfsFixture.isMounted(mnt), "mounted although refused: " + r);
        assertEquals(PRECIOUS, Files.readString(victim), "the symlink's target was written through");
    }

    @Test
    @DisplayName("a world-writable runtime dir with planted symlinks is refused; the targets stay untouched")
    void worldWritableRuntimeDir() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path run = Files.createDirectory(tmp.resolve("corfs-" + uid));
            fx.run(Duration.ofSeconds(10), "chmod", "0777", run.toString()).assertOk();
            String pid = pidName();
            for (String name : new String[] {pid + ".tmp", pid, pid.replace(".pid", ".failed")}) {
                Files.createSymbolicLink(run.resolve(name), victim);
            }
            Result r = fx.corfsWithEnv(tmpEnv(), "mount", leaf.toString(), mnt.toString());
            assertRefusedUntouched(r, run.toString());
            assertTrue(r.stderr().contains("group or others"), r.toString());

            // The same through XDG_RUNTIME_DIR/corfs.
            Path xdg = Files.createDirectory(fx.dir().resolve("xdg"));
            Path xrun = Files.createDirectory(xdg.resolve("corfs"));
            fx.run(Duration.ofSeconds(10), "chmod", "0777", xrun.toString()).assertOk();
            Files.createSymbolicLink(xrun.resolve(pid + ".tmp"), victim);
            Map<String, String> env = new HashMap<>();
            env.put("XDG_RUNTIME_DIR", xdg.toString());
            assertRefusedUntouched(fx.corfsWithEnv(env, "mount", leaf.toString(), mnt.toString()), xrun.toString());
        });
    }

    @Test
    @DisplayName("a runtime dir owned by another user is refused")
    void runtimeDirOfAnotherUser() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            org.junit.jupiter.api.Assumptions.assumeTrue(uid.equals("0"), "chown to another uid needs root");
            Path run = Files.createDirectory(tmp.resolve("corfs-" + uid));
            fx.run(Duration.ofSeconds(10), "chmod", "0700", run.toString()).assertOk();
            fx.run(Duration.ofSeconds(10), "chown", "65534", run.toString()).assertOk();
            Files.createSymbolicLink(run.resolve(pidName() + ".tmp"), victim);
            Result r = fx.corfsWithEnv(tmpEnv(), "mount", leaf.toString(), mnt.toString());
            assertRefusedUntouched(r, "owned by uid 65534");
        });
    }

    @Test
    @DisplayName("a runtime dir made by corfs is 0700 with a 0600 pid file; mount and umount work")
    void ownRuntimeDir() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.corfsWithEnv(tmpEnv(), "mount", leaf.toString(), mnt.toString()).assertOk();
            Path run = tmp.resolve("corfs-" + uid);
            assertEquals(0700, (Integer) Files.getAttribute(run, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0777);
            Path pid = run.resolve(pidName());
            assertEquals(0600, (Integer) Files.getAttribute(pid, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0777);
            try (Stream<Path> files = Files.list(run)) {
                assertEquals(1, files.count(), "temporary files left in " + run);
            }
            fx.corfsWithEnv(tmpEnv(), "umount", mnt.toString()).assertOk();
            assertFalse(CorfsFixture.isMounted(mnt));
            assertFalse(Files.exists(pid), "pid file left behind");
        });
    }

    @Test
    @DisplayName("a planted symlink as the daemon's log (LEAF.log) is refused, its target untouched")
    void logSymlink() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path log = leaf.resolveSibling("disk.raw.log");
            Files.createSymbolicLink(log, victim);
            Result r = fx.corfs("mount", leaf.toString(), mnt.toString());
            assertRefusedUntouched(r, log.toString());
            assertTrue(Files.isSymbolicLink(log));
        });
    }

    @Test
    @DisplayName("CORFS_JAVA_OPTS is split but never globbed: a file named like an option in the directory is not one")
    void javaOptsNotGlobbed() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            // corfs runs in fx.dir(): a name planted there matched '-Dcorfs.p*' and became a JVM option
            Files.writeString(fx.dir().resolve("-Dcorfs.planted=yes"), "");
            Result r = fx.corfsWithEnv(Map.of("CORFS_JAVA_OPTS", "-Dcorfs.p* -XshowSettings:properties"), "--version");
            r.assertOk();
            assertTrue(r.stderr().contains("corfs.p*"), "the option did not reach the JVM as written: " + r);
            assertFalse(r.stderr().contains("corfs.planted"), "a file name in the directory became a JVM option: " + r);
        });
    }
    @Test
    @DisplayName("a setsid planted early in PATH is not what starts the daemon")
    void plantedSetsidNotRun() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path evil = Files.createDirectories(fx.dir().resolve("evil-bin"));
            Path marker = fx.dir().resolve("planted-setsid-ran");
            Path setsid = evil.resolve("setsid");
            Files.writeString(setsid, "#!/bin/sh\ntouch '" + marker + "'\nexec /usr/bin/setsid \"$@\"\n");
            setsid.toFile().setExecutable(true);
            Path backing = fx.makeBacking("planted.raw", 4L << 20, 3);
            Path leaf = fx.createLeaf(backing, "planted-leaf.raw");
            Path mnt = fx.newMountPoint("planted-mnt");
            fx.corfsWithEnv(Map.of("PATH", evil + ":" + System.getenv("PATH")), "mount", leaf.toString(),
                    mnt.toString()).assertOk();
            try {
                assertTrue(CorfsFixture.isMounted(mnt), mnt + " is not mounted");
                assertFalse(Files.exists(marker), "the setsid planted in PATH ran");
            } finally {
                fx.umount(mnt);
            }
        });
    }
}
