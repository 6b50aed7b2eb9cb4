package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("command-line parsing")
class CliTest {
    @Test
    void sizes() {
        assertEquals(65536, Sizes.parse("64K"));
        assertEquals(65536, Sizes.parse("64KiB"));
        assertEquals(2 << 20, Sizes.parse("2M"));
        assertEquals(4096, Sizes.parse("4096"));
        assertEquals(1L << 30, Sizes.parse("1g"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("-1"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("1.5M"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("K"));
        assertThrows(IllegalArgumentException.class, () -> Sizes.parse("99999999999T"));
        assertEquals("64.0 KiB", Sizes.human(65536));
        assertEquals("12 B", Sizes.human(12));
    }

    @Test
    void mountOptions() {
        MountCommand.MountOptions o = MountCommand.parseOptions(List.of("backing_timeout=5,allow_other", "single_threaded"));
        assertEquals(5000, o.backingTimeoutMillis());
        assertTrue(o.singleThreaded());
        assertTrue(o.autoUnmount());
        assertEquals(List.of("allow_other"), o.fuseOptions());
        assertEquals(1, o.threads());
        assertEquals(false, MountCommand.parseOptions(List.of("no_auto_unmount")).autoUnmount());
        assertEquals(corfs.fuse.FuseMount.DEFAULT_THREADS, MountCommand.parseOptions(List.of()).threads());
        assertEquals(16, MountCommand.parseOptions(List.of("threads=16")).threads());
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("threads=0")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("threads=65")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("threads=x")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("single_threaded,threads=4")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("backing_timeout=x")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("fsname=foo")));
    }

    @Test
    void exitCodes() {
        assertEquals(Main.EXIT_USAGE, Main.run("mount", "only-one"));
        assertEquals(Main.EXIT_USAGE, Main.run("frobnicate"));
        assertEquals(Main.EXIT_FAILURE, Main.run("status", "/nonexistent-corfs-mount"));
        assertEquals(0, Main.run("--version"));
    }

    @Test
    void progressLine() {
        String s = JobCommands.progressLine("a.raw", "stream", "running", 50, 100, 1 << 20, 65);
        assertTrue(s.contains("50.0%") && s.contains("1.0 MiB/s") && s.contains("ETA 1:05"), s);
    }
}
