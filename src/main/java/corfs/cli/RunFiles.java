package corfs.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Set;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where a mount daemon leaves its pid, so that {@code corfs umount} can wait until it has flushed and exited:
 * {@code $XDG_RUNTIME_DIR/corfs/} (or {@code /tmp/corfs-UID/}), one file per mount point, named by a hash of
 * its real path.
 *
 * <p>Security invariants (another local user may have prepared any of these paths):
 * <ul>
 *   <li>The directory is used only when it is a real directory (not a symlink) owned by this user with no
 *       group or other access; otherwise writing refuses ({@link UnsafeRunDirException}) and reading trusts
 *       nothing in it. It is created 0700 when missing.</li>
 *   <li>Files are created with {@code O_CREAT|O_EXCL|O_NOFOLLOW} (CREATE_NEW + NOFOLLOW_LINKS) under an
 *       unpredictable temporary name, mode 0600, then renamed into place: a write never follows a link.</li>
 *   <li>A pid or failure file is read without following links and trusted only when it is a regular file
 *       owned by this user, mode without group/other bits; a pid is trusted only when that process belongs
 *       to this user, is a corfs {@code mount} and names the same mount point.</li>
 * </ul>
 */
final class RunFiles {
    private static final int MAX_FILE_BYTES = 8192;
    private static final SecureRandom RANDOM = new SecureRandom();

    private RunFiles() {
    }

    /** A runtime directory that is not this user's private directory. */
    static final class UnsafeRunDirException extends IOException {
        private static final long serialVersionUID = 1L;

        UnsafeRunDirException(String message) {
            super(message);
        }
    }

    static Path dir() {
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isBlank() && Files.isDirectory(Path.of(xdg))) {
            return Path.of(xdg, "corfs");
        }
        return Path.of(System.getProperty("java.io.tmpdir"), "corfs-" + uid());
    }

    /** This process's (effective) uid: the owner of /proc/self. */
    static int uid() {
        try {
            return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        } catch (IOException | RuntimeException e) {
            throw new IllegalStateException("cannot tell this process's uid from /proc/self: " + e, e);
        }
    }

    /**
     * The runtime directory, created 0700 if missing; refused unless it is a directory (not a symlink)
     * owned by this user with no group or other access.
     */
    static Path secureDir() throws IOException {
        Path d = dir();
        try {
            Files.createDirectory(d, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (FileAlreadyExistsException e) {
            // made earlier (by us, or by someone else: checked next)
        }
        checkDir(d);
        return d;
    }

    /** Refuses a directory that another user controls or can write to. */
    static void checkDir(Path d) throws IOException {
        Map<String, Object> a = Files.readAttributes(d, "unix:mode,uid", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        int owner = (Integer) a.get("uid");
        String fix = " (remove it, or set XDG_RUNTIME_DIR to a private directory)";
        if ((mode & 0170000) != 0040000) {
            throw new UnsafeRunDirException("runtime directory " + d + " is not a directory (a symbolic link?)" + fix);
        }
        if (owner != uid()) {
            throw new UnsafeRunDirException("runtime directory " + d + " is owned by uid " + owner + ", not by uid "
                    + uid() + fix);
        }
        if ((mode & 077) != 0) {
            throw new UnsafeRunDirException(String.format("runtime directory %s has mode %04o: group or others have"
                    + " access%s", d, mode & 07777, fix));
        }
    }

    static Path pidFile(Path realMountPoint) {
        return pidFile(dir(), realMountPoint);
    }

    static Path pidFile(Path dir, Path realMountPoint) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256")
                    .digest(realMountPoint.toString().getBytes(StandardCharsets.UTF_8));
            return dir.resolve(HexFormat.of().formatHex(h, 0, 12) + ".pid");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Where a daemon that failed to close cleanly leaves its reason for {@code corfs umount} to report. */
    static Path failureFile(Path dir, Path realMountPoint) {
        Path pid = pidFile(dir, realMountPoint);
        return pid.resolveSibling(pid.getFileName().toString().replace(".pid", ".failed"));
    }

    static void writePid(Path realMountPoint) throws IOException {
        writePid(secureDir(), realMountPoint);
    }

    static void writePid(Path dir, Path realMountPoint) throws IOException {
        checkDir(dir);
        writeAtomically(pidFile(dir, realMountPoint), ProcessHandle.current().pid() + "\n" + realMountPoint + "\n");
    }

    /**
     * Creates {@code target}'s content under an unpredictable temporary name in the same directory
     * (O_EXCL|O_NOFOLLOW, mode 0600), then renames it over {@code target} (rename replaces a link, never
     * follows it). The temporary file is removed on failure.
     */
    static void writeAtomically(Path target, String content) throws IOException {
        Path tmp = target.resolveSibling("." + target.getFileName() + "." + randomHex() + ".tmp");
        try {
            try (SeekableByteChannel ch = Files.newByteChannel(tmp, Set.<OpenOption>of(StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS),
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
                ByteBuffer b = ByteBuffer.wrap(content.getBytes(StandardCharsets.UTF_8));
                while (b.hasRemaining()) {
                    ch.write(b);
                }
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    private static String randomHex() {
        byte[] b = new byte[12];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    /**
     * The file's text, if it is a regular file (not a link) owned by this user with no group/other access,
     * in a trusted directory; empty otherwise.
     */
    static Optional<String> readTrusted(Path file) {
        try {
            checkDir(file.getParent());
            Map<String, Object> a = Files.readAttributes(file, "unix:mode,uid,size", LinkOption.NOFOLLOW_LINKS);
            int mode = (Integer) a.get("mode");
            if ((mode & 0170000) != 0100000 || (Integer) a.get("uid") != uid() || (mode & 077) != 0
                    || (Long) a.get("size") > MAX_FILE_BYTES) {
                return Optional.empty();
            }
            try (SeekableByteChannel ch = Files.newByteChannel(file, Set.<OpenOption>of(StandardOpenOption.READ,
                    LinkOption.NOFOLLOW_LINKS))) {
                ByteBuffer b = ByteBuffer.allocate(MAX_FILE_BYTES);
                while (b.hasRemaining() && ch.read(b) > 0) {
                    // read it all
                }
                return Optional.of(new String(b.array(), 0, b.position(), StandardCharsets.UTF_8));
            }
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    static Optional<ProcessHandle> daemon(Path realMountPoint) {
        return daemon(dir(), realMountPoint);
    }

    /** A live daemon found through its pid file in {@code dir}. */
    record Recorded(Path dir, ProcessHandle process) {
    }

    /**
     * Every runtime directory a daemon of this user may have recorded itself in: the one this environment
     * names first, then the others. A mount made at boot by {@code mount -a} through the mount helper runs
     * without XDG_RUNTIME_DIR (so in {@code /tmp/corfs-UID/}), and is unmounted later from a login shell
     * that has one: umount must still find the daemon, to wait for its flush.
     */
    static List<Path> candidateDirs() {
        java.util.LinkedHashSet<Path> dirs = new java.util.LinkedHashSet<>();
        dirs.add(dir());
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isBlank()) {
            dirs.add(Path.of(xdg, "corfs"));
        }
        dirs.add(Path.of("/run/user", Integer.toString(uid()), "corfs"));
        dirs.add(Path.of(System.getProperty("java.io.tmpdir"), "corfs-" + uid()));
        return List.copyOf(dirs);
    }

    /** The live daemon serving {@code realMountPoint}, looked for in every {@link #candidateDirs()}. */
    static Optional<Recorded> findDaemon(Path realMountPoint) {
        for (Path d : candidateDirs()) {
            Optional<ProcessHandle> p = daemon(d, realMountPoint);
            if (p.isPresent()) {
                return Optional.of(new Recorded(d, p.get()));
            }
        }
        return Optional.empty();
    }

    /** The live corfs daemon serving {@code realMountPoint}, per a pid file verified as the class says. */
    static Optional<ProcessHandle> daemon(Path dir, Path realMountPoint) {
        Optional<String> text = readTrusted(pidFile(dir, realMountPoint));
        if (text.isEmpty()) {
            return Optional.empty();
        }
        String[] lines = text.get().split("\n");
        if (lines.length < 2 || !lines[1].equals(realMountPoint.toString())) {
            return Optional.empty();
        }
        long pid;
        try {
            pid = Long.parseLong(lines[0].trim());
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
        return ProcessHandle.of(pid).filter(p -> isCorfsMountOf(pid, realMountPoint));
    }

    /**
     * True when process {@code pid} belongs to this user and is a corfs {@code mount} whose mount point argument
     * ({@link #mountPointArg}, resolved against the process's working directory) is {@code realMountPoint}: a
     * stale pid reused by another program, or a pid file naming someone else's process, does not count.
     */
    static boolean isCorfsMountOf(long pid, Path realMountPoint) {
        try {
            Path proc = Path.of("/proc", Long.toString(pid));
            if ((Integer) Files.getAttribute(proc, "unix:uid") != uid()) {
                return false;
            }
            String[] args = new String(Files.readAllBytes(proc.resolve("cmdline")), StandardCharsets.UTF_8)
                    .split("\0");
            String arg = mountPointArg(args);
            if (arg == null) {
                return false;
            }
            Path last = Path.of(arg);
            Path resolved = last.isAbsolute() ? last : proc.resolve("cwd").toRealPath().resolve(last);
            return resolved.toRealPath().equals(realMountPoint);
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * The mount point argument of a corfs daemon's command line, or null when {@code args} are no daemon's:
     * {@code java ... corfs.cli.Main mount ... MOUNTPOINT} (started by {@code corfs mount}), {@code java ... -jar
     * .../corfs.jar mount ... MOUNTPOINT} ({@code bin/corfs mount -f}), {@code java ... corfs.cli.LaunchedMount
     * mount ... MOUNTPOINT} or {@code ... LaunchedMount mount-helper SOURCE MOUNTPOINT [OPTIONS]} (started by a
     * launcher: the helper's second operand; {@code -o}, {@code -N} and {@code -t} take a value).
     */
    static String mountPointArg(String[] args) {
        int command = -1;
        boolean launched = false;
        for (int i = 0; i < args.length && command < 0; i++) {
            if (args[i].equals(Main.class.getName())
                    || (i > 0 && args[i - 1].equals("-jar") && args[i].endsWith("corfs.jar"))) {
                command = i + 1;
            } else if (args[i].equals(LaunchedMount.class.getName())) {
                command = i + 1;
                launched = true;
            }
        }
        if (command <= 0 || command >= args.length - 1) {
            return null;
        }
        if (args[command].equals("mount")) {
            return args[args.length - 1];
        }
        if (!launched || !args[command].equals(HostHelpers.MOUNT_HELPER)) {
            return null;
        }
        int operand = 0;
        for (int i = command + 1; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-o") || a.equals("-N") || a.equals("-t")) {
                i++;
            } else if (!a.startsWith("-") && ++operand == 2) {
                return a;
            }
        }
        return null;
    }

    /** Records why closing failed (best effort: the log has it too). */
    static void writeFailure(Path realMountPoint, String reason) {
        try {
            Path d = secureDir();
            writeAtomically(failureFile(d, realMountPoint), reason + "\n");
        } catch (IOException | RuntimeException e) {
            // the log says it anyway
        }
    }

    /** Takes (reads and removes) a recorded close failure, if any. */
    static Optional<String> takeFailure(Path realMountPoint) {
        return takeFailure(dir(), realMountPoint);
    }

    static Optional<String> takeFailure(Path dir, Path realMountPoint) {
        Path f = failureFile(dir, realMountPoint);
        Optional<String> reason = readTrusted(f).map(String::trim);
        if (reason.isPresent()) {
            try {
                Files.deleteIfExists(f);
            } catch (IOException e) {
                // reported once anyway
            }
        }
        return reason;
    }

    static void removePid(Path realMountPoint) {
        Path f = pidFile(realMountPoint);
        Optional<String> text = readTrusted(f);
        if (text.isPresent() && text.get().split("\n")[0].trim().equals(Long.toString(ProcessHandle.current().pid()))) {
            try {
                Files.deleteIfExists(f);
            } catch (IOException e) {
                // already gone
            }
        }
    }
}
