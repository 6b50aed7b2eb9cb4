package corfs.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * What {@code mount -t fuse.corfs} and {@code umount} run. util-linux looks for {@code /sbin/mount.fuse.corfs}
 * (then {@code mount.fuse}) and {@code /sbin/umount.fuse.corfs}, and calls them as
 * <pre>
 *   mount.fuse.corfs SOURCE MOUNTPOINT [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t fuse.corfs]
 *   umount.fuse.corfs MOUNTPOINT [-flnrv] [-N NAMESPACE] [-t fuse.corfs]
 * </pre>
 * The installed helpers are two-line scripts that run {@code corfs mount-helper "$@"} and
 * {@code corfs umount-helper "$@"}: these hidden commands, which translate to {@code corfs mount} and
 * {@code corfs umount} so that both paths share every check, the readiness wait and the flush wait.
 *
 * <p>SOURCE is one leaf, or several separated by colons ({@code /vm/a.raw:/vm/b.raw}, as mergerfs lists its
 * branches): an fstab field cannot hold a space. A colon in a leaf's path is written {@code \:} (see
 * {@link #leaves}). Exit
 * codes follow mount(8): 0 success, 1 a bad invocation, 32 the mount (or unmount) failed.
 */
final class HostHelpers {
    /** mount(8)'s exit code for incorrect invocation or permissions. */
    static final int MOUNT_USAGE = 1;
    /** mount(8)'s exit code for a failed mount. */
    static final int MOUNT_FAILURE = 32;
    static final String MOUNT_HELPER = "mount-helper";
    static final String UMOUNT_HELPER = "umount-helper";

    private HostHelpers() {
    }

    /** True when {@code args} run one of the helpers, whose exit codes follow mount(8). */
    static boolean isHelper(String... args) {
        return args.length > 0 && (args[0].equals(MOUNT_HELPER) || args[0].equals(UMOUNT_HELPER));
    }

    /** corfs's exit code (0, 64 usage, anything else a failure) as mount(8) and umount(8) report it. */
    static int mountExitCode(int corfsExit) {
        return corfsExit == 0 ? 0 : corfsExit == Main.EXIT_USAGE ? MOUNT_USAGE : MOUNT_FAILURE;
    }

    /**
     * The leaves a SOURCE names: split at colons, none empty. {@code \:} is a colon inside a leaf's path and
     * {@code \\} a backslash (fstab's own {@code \040} escapes are undone by mount(8) before the helper
     * runs). A colon left unescaped in the name of a file that exists is refused, naming the escape: split,
     * it would name other files (or none) than the one meant.
     */
    static List<Path> leaves(String source) {
        List<String> parts = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < source.length(); i++) {
            char c = source.charAt(i);
            if (c == '\\' && i + 1 < source.length() && (source.charAt(i + 1) == ':' || source.charAt(i + 1) == '\\')) {
                cur.append(source.charAt(++i));
            } else if (c == ':') {
                parts.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        List<Path> out = new ArrayList<>();
        for (String part : parts) {
            if (part.isEmpty()) {
                throw new Main.ExitException(Main.EXIT_USAGE, "source '" + source + "': an empty leaf path (leaves are"
                        + " separated by single colons: /vm/a.raw:/vm/b.raw)");
            }
            out.add(Path.of(part));
        }
        for (int from = 0; from < parts.size(); from++) {
            for (int to = from + 1; to < parts.size(); to++) {
                String joined = String.join(":", parts.subList(from, to + 1));
                if (java.nio.file.Files.isRegularFile(Path.of(joined))) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "source '" + source + "': ':' separates leaves,"
                            + " so this is not the file " + joined + "; write a colon in a leaf's path as '\\:' ("
                            + joined.replace("\\", "\\\\").replace(":", "\\:") + ")");
                }
            }
        }
        return out;
    }

    /** Refuses a filesystem type other than corfs's (a helper called by hand with another -t). */
    static void checkType(String type) {
        if (type != null && !type.equals("fuse.corfs") && !type.equals("corfs")) {
            throw new Main.ExitException(Main.EXIT_USAGE, "-t " + type + ": this helper mounts only fuse.corfs");
        }
    }

    /**
     * {@code mount-helper SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]}: {@code corfs mount -o OPTIONS
     * LEAF... MOUNTPOINT}, quiet on success. {@code log=FILE} in OPTIONS is {@code --log FILE}; {@code ro} is
     * {@code --read-only}; mount's and systemd's own options are accepted and dropped by {@code corfs mount}.
     */
    @Command(name = MOUNT_HELPER, hidden = true,
            description = "mount(8) helper: what /sbin/mount.fuse.corfs runs (see corfs-mount(1))")
    static final class Mount implements Callable<Integer> {
        @Option(names = "-s", description = "sloppy: accepted (corfs refuses unknown options anyway)")
        boolean sloppy;

        @Option(names = "-f", description = "fake: check the arguments, mount nothing")
        boolean fake;

        @Option(names = "-n", description = "no mtab: accepted (the kernel's table is the only one)")
        boolean noMtab;

        @Option(names = "-v", description = "verbose: print what is run")
        boolean verbose;

        @Option(names = "-N", paramLabel = "NAMESPACE")
        String namespace;

        @Option(names = "-o", paramLabel = "OPTIONS")
        List<String> options = new ArrayList<>();

        @Option(names = "-t", paramLabel = "TYPE")
        String type;

        @Parameters(index = "0", paramLabel = "SOURCE")
        String source;

        @Parameters(index = "1", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Override
        public Integer call() throws Exception {
            MountCommand mount = translate();
            if (verbose) {
                System.err.println(Main.oneLine("corfs: mounting " + mount.paths.subList(0, mount.paths.size() - 1)
                        + " at " + mountPoint + (mount.options.isEmpty() ? "" : " with -o " + String.join(",",
                        mount.options)) + (mount.log != null ? " --log " + mount.log : "")));
            }
            if (fake) {
                MountCommand.parseOptions(mount.options); // refuse what a real mount would refuse
                return 0;
            }
            return mount.call();
        }

        /** The {@code corfs mount} this helper call means. */
        MountCommand translate() {
            checkType(type);
            if (namespace != null) {
                throw new Main.ExitException(Main.EXIT_USAGE, "-N " + namespace + ": mounting in another namespace"
                        + " is not supported");
            }
            MountCommand mount = new MountCommand();
            mount.quiet = true;
            List<Path> paths = new ArrayList<>(leaves(source));
            paths.add(mountPoint);
            mount.paths = paths;
            for (String group : options) {
                for (String o : group.split(",")) {
                    if (o.startsWith("log=")) {
                        if (o.length() == "log=".length()) {
                            throw new Main.ExitException(Main.EXIT_USAGE, "-o log= needs a file");
                        }
                        if (mount.log != null) {
                            throw new Main.ExitException(Main.EXIT_USAGE, "-o log is given twice (log=" + mount.log
                                    + ", " + o + "): give it once");
                        }
                        mount.log = Path.of(o.substring("log=".length()));
                    } else if (!o.isEmpty()) {
                        mount.options.add(o);
                    }
                }
            }
            return mount;
        }
    }

    /**
     * {@code umount-helper MOUNTPOINT [-flnrv] [-N NS] [-t TYPE]}: {@code corfs umount [-l] MOUNTPOINT}, which
     * returns once the daemon has flushed and exited. {@code -f} (force) and {@code -r} (remount read-only on
     * failure) are accepted and mean nothing more for a FUSE mount: the unmount is the same.
     */
    @Command(name = UMOUNT_HELPER, hidden = true,
            description = "umount(8) helper: what /sbin/umount.fuse.corfs runs (see corfs-umount(1))")
    static final class Umount implements Callable<Integer> {
        @Option(names = "-f")
        boolean force;

        @Option(names = "-l")
        boolean lazy;

        @Option(names = "-n")
        boolean noMtab;

        @Option(names = "-r")
        boolean remountReadOnly;

        @Option(names = "-v")
        boolean verbose;

        @Option(names = "-N", paramLabel = "NAMESPACE")
        String namespace;

        @Option(names = "-t", paramLabel = "TYPE")
        String type;

        @Parameters(index = "0", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Override
        public Integer call() throws Exception {
            checkType(type);
            if (namespace != null) {
                throw new Main.ExitException(Main.EXIT_USAGE, "-N " + namespace + ": unmounting in another namespace"
                        + " is not supported");
            }
            UmountCommand umount = new UmountCommand();
            umount.mountPoint = mountPoint;
            umount.lazy = lazy;
            if (verbose) {
                System.err.println(Main.oneLine("corfs: unmounting " + mountPoint + (lazy ? " (lazily if busy)" : "")));
            }
            return umount.call();
        }
    }
}
