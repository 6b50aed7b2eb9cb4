package corfs.cli;

import corfs.control.PrometheusFormat;
import corfs.control.StatusFormat;
import corfs.jobs.MountSession;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The training run of corfs's class-data-sharing archive ({@code scripts/install}, the package's postinst,
 * {@code bin/corfs} on first use): run once as {@code java -XX:ArchiveClassesAtExit=ARCHIVE -cp corfs.jar
 * corfs.cli.CdsTraining}, it loads the classes a mount and the control verbs need, without a kernel mount
 * (none may be possible where a package installs: a chroot), so that every later JVM of corfs maps them from
 * the archive instead of loading and verifying them. What it leaves out only loads the ordinary way.
 *
 * <p>In a private temporary directory: makes a 1 GiB sparse backing and a leaf over it, runs the CLI's
 * offline commands on it ({@code create}, {@code info}, {@code map}, {@code check}, {@code --version}, the
 * mount helper's fake mode, a background mount's quick parse ({@link LaunchedMount}), {@code status} of a directory that is no mount), opens the leaf as a mount does
 * ({@link MountSession}), renders its status in every format and builds the FUSE side of a mount without
 * mounting ({@link corfs.fuse.FuseMount#rehearse}), then deletes everything. Prints nothing.
 */
final class CdsTraining {
    private CdsTraining() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "off");
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
        Path dir = Files.createTempDirectory("corfs-cds-");
        try {
            System.setOut(nowhere);
            System.setErr(nowhere);
            Path backing = dir.resolve("base.raw");
            try (var f = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
                f.setLength(1L << 30);
                f.write(new byte[] {1, 2, 3});
            }
            Path leaf = dir.resolve("leaf.raw");
            Path mnt = Files.createDirectory(dir.resolve("mnt"));
            Main.run("create", "--backing", backing.toString(), "--cluster-size", "64K", leaf.toString());
            Main.run("info", leaf.toString());
            Main.run("map", leaf.toString());
            Main.run("check", leaf.toString());
            Main.run("--version");
            Main.run("mount-helper", leaf.toString(), mnt.toString(), "-f", "-o", "nofail,backing_timeout=5");
            // a background mount as the launchers start it: LaunchedMount's line relay, the quick parse, the -o checks
            Class.forName(LaunchedMount.class.getName() + "$Lines", true, CdsTraining.class.getClassLoader());
            MountCommand.parseOptions(MountCommand.parseQuickly("mount", "-o", "backing_timeout=5", "--", leaf.toString(),
                    mnt.toString()).options);
            Main.run("status", mnt.toString());
            Main.run("stream", mnt.toString());
            try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 5000))) {
                s.leaves().get(0).read(java.nio.ByteBuffer.allocate(4096), 0);
                StatusFormat.parse(StatusFormat.render(s.status()));
                StatusFormat.renderJson(s.status());
                PrometheusFormat.render(mnt.toString(), s.status());
                try {
                    corfs.fuse.FuseMount.rehearse(s, mnt);
                } catch (LinkageError | RuntimeException e) {
                    // no libfuse 2 here (a chroot without it): the mount's classes load the ordinary way
                }
            }
        } finally {
            System.setOut(out);
            System.setErr(err);
            deleteTree(dir);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
