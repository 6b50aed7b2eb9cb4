package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
    void singleValuedOptionsOnce() {
        for (String twice : List.of("profile=on,profile=off", "profile=off,profile=off", "backing_timeout=5,backing_timeout=0",
                "threads=2,threads=4", "metrics_file=/m/a,metrics_file=/m/b")) {
            Main.ExitException e = assertThrows(Main.ExitException.class,
                    () -> MountCommand.parseOptions(List.of(twice)), twice);
            assertEquals(Main.EXIT_USAGE, e.code);
            assertTrue(e.getMessage().contains("given twice"), e.getMessage());
        }
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("profile=on", "profile=off")),
                "across -o groups too");
        assertEquals(false, MountCommand.parseOptions(List.of("profile=off,ro,ro")).recordProfile(), "flags may repeat");
    }

    @Test
    void prefetchOption() {
        MountCommand.MountOptions o = MountCommand.parseOptions(List.of("prefetch=/p/a.profile,allow_other"));
        assertEquals(List.of("/p/a.profile"), o.prefetch());
        assertEquals(List.of("allow_other"), o.fuseOptions(), "never handed to libfuse");
        assertEquals(java.util.Map.of("a.img", java.nio.file.Path.of("/p/a.profile")),
                MountCommand.prefetchOf(List.of(java.nio.file.Path.of("/v/a.img")), o.prefetch()));
        List<java.nio.file.Path> two = List.of(java.nio.file.Path.of("/v/a.img"), java.nio.file.Path.of("/v/b=c.img"));
        assertEquals(java.util.Map.of("a.img", java.nio.file.Path.of("/p/x=y"), "b=c.img", java.nio.file.Path.of("/p/b")),
                MountCommand.prefetchOf(two, List.of("a.img=/p/x=y", "b=c.img=/p/b")));
        assertThrows(Main.ExitException.class, () -> MountCommand.prefetchOf(two, List.of("/p/a.profile")),
                "several leaves: IMAGE= is required");
        assertThrows(Main.ExitException.class, () -> MountCommand.prefetchOf(two, List.of("a.img=/p/1", "a.img=/p/2")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("prefetch=")));
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("ro,prefetch=/p")));
    }

    @Test
    void exitCodes() {
        assertEquals(Main.EXIT_USAGE, Main.run("mount", "only-one"));
        assertEquals(Main.EXIT_USAGE, Main.run("frobnicate"));
        assertEquals(Main.EXIT_FAILURE, Main.run("status", "/nonexistent-corfs-mount"));
        assertEquals(0, Main.run("--version"));
    }

    /** Runs a command line, capturing what it prints. */
    record Run(int exit, String out, String err) {
    }

    static synchronized Run capture(String... args) {
        java.io.PrintStream oldOut = System.out;
        java.io.PrintStream oldErr = System.err;
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        try {
            System.setOut(new java.io.PrintStream(out, true, java.nio.charset.StandardCharsets.UTF_8));
            System.setErr(new java.io.PrintStream(err, true, java.nio.charset.StandardCharsets.UTF_8));
            int exit = Main.run(args);
            return new Run(exit, out.toString(java.nio.charset.StandardCharsets.UTF_8),
                    err.toString(java.nio.charset.StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    @DisplayName("issue 7: usage errors exit 64, always (bad --speed/--on-error/--cluster-size/RATE, extra args)")
    void usageErrorsAre64(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path backing = java.nio.file.Files.write(dir.resolve("b.raw"), new byte[1 << 16]);
        String leaf = dir.resolve("l.raw").toString();
        for (String[] args : new String[][] {
            {"stream", "/nonexistent-corfs-mount", "--speed", "1.5M"},
            {"commit", "/nonexistent-corfs-mount", "--speed", "-1"},
            {"stream", "/nonexistent-corfs-mount", "--on-error", "ignore"},
            {"speed", "/nonexistent-corfs-mount", "1M", "extra"},
            {"speed", "/nonexistent-corfs-mount", "img", "fast"},
            {"speed", "/nonexistent-corfs-mount", "img", "auto:0ms"},
            {"stream", "/nonexistent-corfs-mount", "--speed", "auto:5"},
            {"commit", "/nonexistent-corfs-mount", "--speed", "auto"},
            {"prioritize", "/nonexistent-corfs-mount", "img"},
            {"prioritize", "/nonexistent-corfs-mount", "img", "0+0"},
            {"prioritize", "/nonexistent-corfs-mount", "1G+1x"},
            {"create", "--cluster-size", "3K", "--backing", backing.toString(), leaf},
            {"create", "--cluster-size", "4M", "--backing", backing.toString(), leaf},
            {"create", "--cluster-size", "-4K", "--backing", backing.toString(), leaf},
        }) {
            Run r = capture(args);
            assertEquals(Main.EXIT_USAGE, r.exit(), String.join(" ", args) + ": " + r);
            assertTrue(r.err().startsWith("corfs: ") && r.err().strip().lines().count() == 1,
                    String.join(" ", args) + ": " + r);
        }
        assertTrue(!java.nio.file.Files.exists(dir.resolve("l.raw")), "a refused create made the leaf");
    }

    @Test
    @DisplayName("an argument '@FILE' is a name, never the contents of FILE (picocli's argument files are off)")
    void atFilesAreNames(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path x = java.nio.file.Files.writeString(dir.resolve("x"), "--force\n--read-only\n/etc/passwd\n");
        java.nio.file.Path help = java.nio.file.Files.writeString(dir.resolve("h"), "--help\n");
        Run info = capture("info", "@" + help);
        assertEquals(Main.EXIT_FAILURE, info.exit(), "a leaf named @" + help + " that does not exist: " + info);
        assertFalse(info.out().contains("Usage"), info.toString());
        // picocli parses a mount the quick parse leaves to it (an option after the paths) with the same paths
        String[] line = {"mount", "@" + x, "/mnt", "-f"};
        picocli.CommandLine cl = Main.commandLine(line);
        picocli.CommandLine.ParseResult parsed = cl.parseArgs(line);
        MountCommand m = (MountCommand) parsed.subcommand().commandSpec().userObject();
        assertEquals(List.of(java.nio.file.Path.of("@" + x), java.nio.file.Path.of("/mnt")), m.paths);
        assertFalse(m.force || m.readOnly, "options read from the file " + x);
        assertEquals(MountCommand.parseQuickly("mount", "-f", "@" + x, "/mnt").paths, m.paths);
    }

    @Test
    @DisplayName("issue 10: prioritize encodes an image named like a range, so the daemon reads it as the IMAGE")
    void prioritizeImageArg() throws Exception {
        assertEquals(" %31G", JobCommands.rangeSafeImageArg("1G"));
        assertEquals(" a.raw", JobCommands.rangeSafeImageArg("a.raw"));
        assertEquals(" my%20disk", JobCommands.rangeSafeImageArg("my disk"));
        assertEquals("", JobCommands.rangeSafeImageArg(null));
        corfs.control.ControlCommand c = corfs.control.ControlParser.parse("prioritize"
                + JobCommands.rangeSafeImageArg("4096") + " 0").orElseThrow();
        assertEquals("4096", c.image());
    }

    @Test
    @DisplayName("issue 7: help and messages read well")
    void helpTexts() {
        Run none = capture();
        assertEquals(Main.EXIT_USAGE, none.exit());
        assertEquals(1, none.err().split("see 'corfs --help'", -1).length - 1, none.err());
        Run speed = capture("speed", "--help");
        assertTrue(speed.out().contains("speed [-hV] MOUNTPOINT [IMAGE] RATE\n"), speed.out());
        assertFalse(speed.out().contains("[["), speed.out());
        Run prioritize = capture("prioritize", "--help");
        assertTrue(prioritize.out().contains("prioritize [-hV] MOUNTPOINT [IMAGE] RANGE...\n"), prioritize.out());
        Run mount = capture("mount", "--help");
        assertTrue(mount.out().replaceAll("\\s+", " ").contains("adopt a copied data file"), mount.out());
    }

    @Test
    @DisplayName("issue 7: backing_timeout is whole seconds; -o ro is --read-only, -o rw the default")
    void mountOptionValues() {
        for (String bad : new String[] {"1e-9", "5d", "0x1p3", "1.5", "-1", "86401", "", " 5", "99999999999999"}) {
            Main.ExitException e = assertThrows(Main.ExitException.class,
                    () -> MountCommand.parseOptions(List.of("backing_timeout=" + bad)), bad);
            assertEquals(Main.EXIT_USAGE, e.code, bad);
        }
        assertEquals(0, MountCommand.parseOptions(List.of("backing_timeout=0")).backingTimeoutMillis());
        assertEquals(86_400_000L, MountCommand.parseOptions(List.of("backing_timeout=86400")).backingTimeoutMillis());
        MountCommand.MountOptions ro = MountCommand.parseOptions(List.of("ro"));
        assertTrue(ro.readOnly());
        assertEquals(List.of(), ro.fuseOptions(), "ro must not reach libfuse");
        MountCommand.MountOptions rw = MountCommand.parseOptions(List.of("rw,allow_other"));
        assertFalse(rw.readOnly());
        assertEquals(List.of("allow_other"), rw.fuseOptions(), "rw must not reach libfuse");
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("ro,rw")));
    }

    @Test
    @DisplayName("issue 7: status escapes control characters in names")
    void statusEscapesNames() {
        java.util.Map<String, String> s = new java.util.LinkedHashMap<>();
        s.put("image", "new\nline\u001b[31m.raw");
        s.put("size", "65536");
        s.put("job", "none");
        String text = StatusCommand.describe(s);
        assertEquals(3, text.lines().count(), text);
        assertTrue(text.startsWith("new%0Aline%1B[31m.raw: "), text);
    }

    @Test
    void progressLine() {
        String s = JobCommands.progressLine("a.raw", "stream", "running", 50, 100, 1 << 20, 65);
        assertTrue(s.contains("50.0%") && s.contains("1.0 MiB/s") && s.contains("ETA 1:05"), s);
    }

    @Test
    void errorMessagesStayOneLine() {
        assertEquals("backing /tmp/no\\nfile does not exist", Main.oneLine("backing /tmp/no\nfile does not exist"));
        assertEquals("a\\x1b[31mred\\r\\tb\\x7f", Main.oneLine("a\u001b[31mred\r\tb\u007f"));
        assertEquals("plain: \u00e9t\u00e9", Main.oneLine("plain: \u00e9t\u00e9"));
    }
}
