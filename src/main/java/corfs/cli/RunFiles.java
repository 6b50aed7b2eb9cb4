package corfs.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Optional;

/**
 * Where a mount daemon leaves its pid, so that {@code corfs umount} can wait until it has flushed and exited:
 * {@code $XDG_RUNTIME_DIR/corfs/} (or {@code /tmp/corfs-UID/}), one file per mount point, named by a hash of
 * its real path.
 */
final class RunFiles {
    private RunFiles() {
    }

    static Path dir() {
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        if (xdg != null && !xdg.isBlank() && Files.isDirectory(Path.of(xdg))) {
            return Path.of(xdg, "corfs");
        }
        return Path.of(System.getProperty("java.io.tmpdir"), "corfs-" + uid());
    }

    private static String uid() {
        try {
            return String.valueOf(Files.getAttribute(Path.of("/proc/self"), "unix:uid"));
        } catch (IOException | RuntimeException e) {
            return System.getProperty("user.name", "user");
        }
    }

    static Path pidFile(Path realMountPoint) {
        try {
            byte[] h = MessageDigest.getInstance("SHA-256")
                    .digest(realMountPoint.toString().getBytes(StandardCharsets.UTF_8));
            return dir().resolve(HexFormat.of().formatHex(h, 0, 12) + ".pid");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static void writePid(Path realMountPoint) throws IOException {
        Path d = dir();
        if (!Files.isDirectory(d)) {
            Files.createDirectories(d, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        }
        Path f = pidFile(realMountPoint);
        Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
        Files.writeString(tmp, ProcessHandle.current().pid() + "\n" + realMountPoint + "\n");
        Files.move(tmp, f, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    static Optional<ProcessHandle> daemon(Path realMountPoint) {
        try {
            String[] lines = Files.readString(pidFile(realMountPoint)).split("\n");
            if (lines.length >= 2 && lines[1].equals(realMountPoint.toString())) {
                // A stale file (daemon killed) may name a pid reused by something else: only a corfs daemon counts.
                return ProcessHandle.of(Long.parseLong(lines[0].trim()))
                        .filter(p -> p.info().commandLine().map(c -> c.contains("corfs")).orElse(true));
            }
        } catch (IOException | NumberFormatException e) {
            // no pid file: nothing to wait for
        }
        return Optional.empty();
    }

    /** Where a daemon that failed to close cleanly leaves its reason for {@code corfs umount} to report. */
    static Path failureFile(Path realMountPoint) {
        Path pid = pidFile(realMountPoint);
        return pid.resolveSibling(pid.getFileName().toString().replace(".pid", ".failed"));
    }

    /** Records why closing failed (best effort: the log has it too). */
    static void writeFailure(Path realMountPoint, String reason) {
        try {
            Files.writeString(failureFile(realMountPoint), reason + "\n");
        } catch (IOException | RuntimeException e) {
            // the log says it anyway
        }
    }

    /** Takes (reads and removes) a recorded close failure, if any. */
    static Optional<String> takeFailure(Path realMountPoint) {
        Path f = failureFile(realMountPoint);
        try {
            String reason = Files.readString(f).trim();
            Files.deleteIfExists(f);
            return Optional.of(reason);
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    static void removePid(Path realMountPoint) {
        try {
            Path f = pidFile(realMountPoint);
            String[] lines = Files.readString(f).split("\n");
            if (lines.length > 0 && lines[0].trim().equals(Long.toString(ProcessHandle.current().pid()))) {
                Files.deleteIfExists(f);
            }
        } catch (IOException | RuntimeException e) {
            // already gone
        }
    }
}
