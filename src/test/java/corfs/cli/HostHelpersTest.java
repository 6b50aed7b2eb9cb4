package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

@DisplayName("mount(8) and umount(8) helpers")
class HostHelpersTest {

    private static HostHelpers.Mount parseMount(String... args) {
        HostHelpers.Mount m = new HostHelpers.Mount();
        new CommandLine(m).parseArgs(args);
        return m;
    }

    @Nested
    @DisplayName("mount.fuse.corfs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS] [-t TYPE]")
    class MountHelper {
        @Test
        @DisplayName("the argv util-linux passes becomes corfs mount -o OPTIONS LEAF MOUNTPOINT, quiet")
        void translatesUtilLinuxArgv() {
            MountCommand c = parseMount("/vm/a.raw", "/mnt/a", "-o", "ro,nosuid,nodev,threads=3,nofail,_netdev,user",
                    "-t", "fuse.corfs").translate();
            assertEquals(List.of(Path.of("/vm/a.raw"), Path.of("/mnt/a")), c.paths);
            assertEquals(List.of("ro", "nosuid", "nodev", "threads=3", "nofail", "_netdev", "user"), c.options);
            assertTrue(c.quiet);
            assertNull(c.log);
            MountCommand.MountOptions o = MountCommand.parseOptions(c.options);
            assertTrue(o.readOnly());
            assertEquals(3, o.threads());
            assertEquals(List.of("nosuid", "nodev"), o.fuseOptions(), "mount's own options never reach libfuse");
        }

        @Test
        @DisplayName("several leaves are colon-separated; an empty one is a usage error")
        void severalLeaves() {
            MountCommand c = parseMount("/vm/a.raw:/vm/b.raw:/vm/c d.raw", "/mnt/v").translate();
            assertEquals(List.of(Path.of("/vm/a.raw"), Path.of("/vm/b.raw"), Path.of("/vm/c d.raw"), Path.of("/mnt/v")),
                    c.paths);
            for (String bad : List.of("/vm/a.raw:", ":/vm/a.raw", "/vm/a.raw::/vm/b.raw", "")) {
                Main.ExitException e = assertThrows(Main.ExitException.class, () -> HostHelpers.leaves(bad), bad);
                assertEquals(Main.EXIT_USAGE, e.code);
            }
        }

        @Test
        @DisplayName("a colon in a leaf's path is written \\:; an unescaped one in an existing file's name is refused")
        void colonInLeafName(@TempDir Path dir) throws Exception {
            Path leaf = Files.createFile(dir.resolve("10:00.raw"));
            Path other = dir.resolve("b\\x.raw");
            assertEquals(List.of(leaf, other), HostHelpers.leaves(dir + "/10\\:00.raw:" + dir + "/b\\\\x.raw"));
            Main.ExitException e = assertThrows(Main.ExitException.class, () -> HostHelpers.leaves(leaf.toString()));
            assertEquals(Main.EXIT_USAGE, e.code);
            assertTrue(e.getMessage().contains(dir + "/10\\:00.raw"), e.getMessage());
            assertThrows(Main.ExitException.class, () -> HostHelpers.leaves("/vm/a.raw:" + leaf),
                    "a later leaf with a colon too");
        }

        @Test
        @DisplayName("a repeated log= or single-valued corfs option is refused, through the helper as through corfs mount")
        void repeatedOptions() {
            Main.ExitException e = assertThrows(Main.ExitException.class,
                    () -> parseMount("/a", "/m", "-o", "log=/l/1", "-o", "log=/l/2").translate());
            assertTrue(e.getMessage().contains("log=/l/1") && e.getMessage().contains("log=/l/2"), e.getMessage());
            MountCommand c = parseMount("/a", "/m", "-o", "profile=on,nofail", "-o", "profile=off").translate();
            e = assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(c.options));
            assertEquals("-o profile is given twice (profile=on, profile=off): give it once", e.getMessage());
        }

        @Test
        @DisplayName("log=FILE is --log; clustered flags and -t fuse.corfs are accepted, other types and -N refused")
        void flagsAndLog() {
            HostHelpers.Mount m = parseMount("/vm/a.raw", "/mnt/a", "-snv", "-o", "log=/var/log/a.log,backing_timeout=9");
            assertTrue(m.sloppy && m.noMtab && m.verbose);
            MountCommand c = m.translate();
            assertEquals(Path.of("/var/log/a.log"), c.log);
            assertEquals(List.of("backing_timeout=9"), c.options);
            assertTrue(parseMount("/vm/a.raw", "/mnt/a", "-f").fake);
            assertThrows(Main.ExitException.class, () -> parseMount("/a", "/m", "-t", "fuse.sshfs").translate());
            assertThrows(Main.ExitException.class, () -> parseMount("/a", "/m", "-N", "/proc/1/ns/mnt").translate());
            assertThrows(Main.ExitException.class, () -> parseMount("/a", "/m", "-o", "log=").translate());
        }

        @Test
        @DisplayName("-f (fake) checks the options and mounts nothing")
        void fake() throws Exception {
            assertEquals(0, parseMount("/nonexistent/a.raw", "/nonexistent/mnt", "-f", "-o", "nofail").call());
            assertThrows(Main.ExitException.class,
                    () -> parseMount("/nonexistent/a.raw", "/nonexistent/mnt", "-f", "-o", "threads=0").call());
        }
    }

    @Test
    @DisplayName("mount, fstab and systemd options are accepted and dropped; libfuse's and corfs's are kept")
    void hostOptions() {
        MountCommand.MountOptions o = MountCommand.parseOptions(List.of(
                "defaults,auto,noauto,nofail,_netdev,user,users,nouser,owner,group,comment=x,user=root",
                "x-systemd.before=libvirtd.service,x-systemd.requires-mounts-for=/srv,x-mount.mkdir",
                "rw,suid,nosuid,dev,nodev,exec,noexec,allow_other,backing_timeout=7"));
        assertEquals(List.of("suid", "nosuid", "dev", "nodev", "exec", "noexec", "allow_other"), o.fuseOptions());
        assertEquals(7000, o.backingTimeoutMillis());
        assertFalse(o.readOnly());
    }

    @Test
    @DisplayName("exit codes follow mount(8): 0, 1 for a bad invocation, 32 for a failure")
    void exitCodes() {
        assertEquals(0, HostHelpers.mountExitCode(0));
        assertEquals(1, HostHelpers.mountExitCode(Main.EXIT_USAGE));
        assertEquals(32, HostHelpers.mountExitCode(Main.EXIT_FAILURE));
        assertEquals(32, HostHelpers.mountExitCode(2));
        assertTrue(HostHelpers.isHelper("mount-helper", "a", "b"));
        assertTrue(HostHelpers.isHelper("umount-helper", "b"));
        assertFalse(HostHelpers.isHelper("mount", "a", "b"));
        assertEquals(Main.EXIT_USAGE, Main.run("mount-helper", "/only-a-source"));
        assertEquals(Main.EXIT_FAILURE, Main.run("umount-helper", "/nonexistent-corfs-mount"));
    }

    @Test
    @DisplayName("the helpers are hidden from help, man pages and completion")
    void hidden() {
        CommandLine cl = new CommandLine(new Main());
        assertTrue(cl.getSubcommands().get("mount-helper").getCommandSpec().usageMessage().hidden());
        assertTrue(cl.getSubcommands().get("umount-helper").getCommandSpec().usageMessage().hidden());
        assertFalse(cl.getUsageMessage().contains("mount-helper"));
    }

    @Test
    @DisplayName("--version names corfs, Java, libfuse and jnr-fuse")
    void version() {
        List<String> v = Main.Version.report();
        assertEquals(4, v.size());
        assertTrue(v.get(0).startsWith("corfs "), v.toString());
        assertTrue(v.get(1).startsWith("Java " + Runtime.version().feature()), v.toString());
        assertTrue(v.get(2).startsWith("libfuse "), v.toString());
        assertTrue(v.get(3).startsWith("jnr-fuse "), v.toString());
        CliTest.Run r = CliTest.capture("--version");
        assertEquals(0, r.exit());
        assertEquals(String.join("\n", v), r.out().trim());
    }
}
