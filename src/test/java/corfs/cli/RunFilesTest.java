package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Issue 7, defect 4: the runtime directory and the pid/failure files are trusted only when verified. */
@DisplayName("RunFiles: runtime directory and pid files")
class RunFilesTest {
    @TempDir
    Path tmp;

    private Path run;
    private Path mp;
    private Path victim;

    @BeforeEach
    void setUp() throws Exception {
        run = Files.createDirectory(tmp.resolve("run"), PosixFilePermissions.asFileAttribute(
                PosixFilePermissions.fromString("rwx------")));
        mp = Files.createDirectory(tmp.resolve("mnt")).toRealPath();
        victim = Files.writeString(tmp.resolve("victim"), "precious\n");
    }

    private static int mode(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 07777;
    }

    @Test
    @DisplayName("a directory with group/other access, or a symlink to one, is refused")
    void unsafeDirectories() throws Exception {
        RunFiles.checkDir(run);
        Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxrwxrwx"));
        RunFiles.UnsafeRunDirException e = assertThrows(RunFiles.UnsafeRunDirException.class,
                () -> RunFiles.checkDir(run));
        assertTrue(e.getMessage().contains("group or others"), e.getMessage());
        assertThrows(RunFiles.UnsafeRunDirException.class, () -> RunFiles.writePid(run, mp));
        Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwx------"));
        Path link = Files.createSymbolicLink(tmp.resolve("link"), run);
        assertThrows(RunFiles.UnsafeRunDirException.class, () -> RunFiles.checkDir(link));
    }

    @Test
    @DisplayName("writePid replaces planted symlinks (pid and old temp name) without writing through them")
    void writePidDoesNotFollowLinks() throws Exception {
        Path pid = RunFiles.pidFile(run, mp);
        Files.createSymbolicLink(pid.resolveSibling(pid.getFileName() + ".tmp"), victim);
        Files.createSymbolicLink(pid, victim);
        RunFiles.writePid(run, mp);
        assertEquals("precious\n", Files.readString(victim));
        assertFalse(Files.isSymbolicLink(pid));
        assertEquals(0600, mode(pid));
        assertEquals(ProcessHandle.current().pid() + "\n" + mp + "\n", Files.readString(pid));
    }

    @Test
    @DisplayName("a pid is trusted only for this user's corfs mount of that mount point, from a private file")
    void pidVerification() throws Exception {
        // Stand-ins with a daemon's command line (bin/corfs's and the background daemon's forms).
        Process fake = new ProcessBuilder("sh", "-c", "sleep 60; exit 0", "-jar", "/opt/corfs/target/corfs.jar",
                "mount", "-f", "disk.raw", mp.toString()).start();
        Process fake2 = new ProcessBuilder("sh", "-c", "sleep 60; exit 0", "-cp", "/opt/corfs/target/corfs.jar",
                Main.class.getName(), "mount", "-f", "--", "/x/disk.raw", mp.toString()).start();
        Process other = new ProcessBuilder("sh", "-c", "sleep 60; exit 0", "corfs", "mount", "elsewhere").start();
        try {
            Path pid = RunFiles.pidFile(run, mp);
            Files.writeString(pid, fake.pid() + "\n" + mp + "\n");
            Files.setPosixFilePermissions(pid, PosixFilePermissions.fromString("rw-------"));
            assertEquals(Optional.of(fake.pid()), RunFiles.daemon(run, mp).map(ProcessHandle::pid),
                    "a corfs mount of this mount point");
            Files.writeString(pid, fake2.pid() + "\n" + mp + "\n");
            assertEquals(Optional.of(fake2.pid()), RunFiles.daemon(run, mp).map(ProcessHandle::pid),
                    "a corfs mount of this mount point, daemon form");
            Files.writeString(pid, fake.pid() + "\n" + mp + "\n");

            Files.setPosixFilePermissions(pid, PosixFilePermissions.fromString("rw-r--r--"));
            assertTrue(RunFiles.daemon(run, mp).isEmpty(), "pid file readable by others");
            Files.setPosixFilePermissions(pid, PosixFilePermissions.fromString("rw-------"));

            Files.writeString(pid, other.pid() + "\n" + mp + "\n");
            assertTrue(RunFiles.daemon(run, mp).isEmpty(), "a process that only mentions corfs");
            Files.writeString(pid, ProcessHandle.current().pid() + "\n" + mp + "\n");
            assertTrue(RunFiles.daemon(run, mp).isEmpty(), "this test JVM");

            Files.delete(pid);
            Path planted = Files.writeString(tmp.resolve("planted"), fake.pid() + "\n" + mp + "\n");
            Files.createSymbolicLink(pid, planted);
            assertTrue(RunFiles.daemon(run, mp).isEmpty(), "a symlinked pid file");

            Files.delete(pid);
            Files.writeString(pid, fake.pid() + "\n" + mp + "\n");
            Files.setPosixFilePermissions(pid, PosixFilePermissions.fromString("rw-------"));
            Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxrwxrwx"));
            assertTrue(RunFiles.daemon(run, mp).isEmpty(), "a pid file in a world-writable directory");
        } finally {
            fake.destroyForcibly();
            fake2.destroyForcibly();
            other.destroyForcibly();
        }
    }

    @Test
    @DisplayName("a failure record is reported only from a private file, and taken once")
    void failureFiles() throws Exception {
        Path f = RunFiles.failureFile(run, mp);
        Files.writeString(f, "planted\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-rw-rw-"));
        assertTrue(RunFiles.takeFailure(run, mp).isEmpty());
        Files.delete(f);
        Files.createSymbolicLink(f, victim);
        assertTrue(RunFiles.takeFailure(run, mp).isEmpty());
        Files.delete(f);
        RunFiles.writeAtomically(f, "flush failed\n");
        assertEquals(Optional.of("flush failed"), RunFiles.takeFailure(run, mp));
        assertTrue(RunFiles.takeFailure(run, mp).isEmpty());
        assertEquals("precious\n", Files.readString(victim));
    }

    @Test
    @DisplayName("a daemon's mount point argument: corfs mount's, bin/corfs -f's, and a launcher's (mount, mount-helper)")
    void mountPointArg() {
        assertEquals("/m", RunFiles.mountPointArg(new String[] {"/usr/bin/java", "-cp", "x.jar", "corfs.cli.Main",
            "mount", "-f", "--report-ready", "--", "/a.raw", "/m"}));
        assertEquals("m", RunFiles.mountPointArg(new String[] {"java", "-jar", "/o/corfs.jar", "mount", "-f", "a", "m"}));
        assertEquals("rel/m", RunFiles.mountPointArg(new String[] {"java", "-cp", "/o/corfs.jar",
            "corfs.cli.LaunchedMount", "mount", "-o", "ro", "a.raw", "rel/m"}));
        assertEquals("/m", RunFiles.mountPointArg(new String[] {"java", "-cp", "/o/corfs.jar",
            "corfs.cli.LaunchedMount", "mount-helper", "/a.raw:/b.raw", "/m", "-o", "rw,nofail", "-t", "fuse.corfs"}));
        assertEquals("/m", RunFiles.mountPointArg(new String[] {"java", "-cp", "/o/corfs.jar",
            "corfs.cli.LaunchedMount", "mount-helper", "-o", "ro", "-n", "/a.raw", "/m"}));
        assertNull(RunFiles.mountPointArg(new String[] {"java", "-cp", "/o/corfs.jar", "corfs.cli.Main", "status", "/m"}));
        assertNull(RunFiles.mountPointArg(new String[] {"java", "-cp", "/o/corfs.jar", "corfs.cli.Main",
            "mount-helper", "/a.raw", "/m"})); // a helper's command JVM starts a daemon; it is none
        assertNull(RunFiles.mountPointArg(new String[] {"sleep", "mount", "/m"}));
        assertNull(RunFiles.mountPointArg(new String[] {"java", "corfs.cli.LaunchedMount", "mount"}));
    }
}
