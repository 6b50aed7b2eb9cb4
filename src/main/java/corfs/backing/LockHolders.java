package corfs.backing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Who holds locks on a file, for error messages: "in use by pid 1234 (qemu-io ...)".
 *
 * <p>OFD locks show pid -1 in {@code /proc/locks}, so the holder is found the way {@code lslocks} does
 * it: every {@code /proc/PID/fdinfo/FD} lists the locks of that open file ({@code lock:} lines naming
 * the file as {@code MAJOR:MINOR:INODE}). Only processes this user may inspect are seen; the answer is
 * best effort and never fails.
 */
final class LockHolders {
    private static final int MAX_NAMED = 4;

    private LockHolders() {
    }

    /** A readable list of the processes holding a lock on {@code file}, or a note that none was found. */
    static String describe(Path file) {
        String key;
        try {
            long dev = ((Number) Files.getAttribute(file, "unix:dev")).longValue();
            long ino = ((Number) Files.getAttribute(file, "unix:ino")).longValue();
            long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
            long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
            key = String.format(" %02x:%02x:%d ", major, minor, ino);
        } catch (IOException | RuntimeException e) {
            return "a holder that cannot be identified (" + e.getMessage() + ")";
        }
        Set<Long> pids = new LinkedHashSet<>();
        try (DirectoryStream<Path> procs = Files.newDirectoryStream(Path.of("/proc"), "[0-9]*")) {
            for (Path proc : procs) {
                if (holds(proc, key)) {
                    pids.add(Long.parseLong(proc.getFileName().toString()));
                }
            }
        } catch (IOException | RuntimeException e) {
            // best effort
        }
        if (pids.isEmpty()) {
            return "another process (not found in /proc: another user's, or on another host)";
        }
        List<String> named = new ArrayList<>();
        for (long pid : pids) {
            if (named.size() == MAX_NAMED) {
                named.add("and " + (pids.size() - MAX_NAMED) + " more");
                break;
            }
            named.add(process(pid));
        }
        return String.join(", ", named);
    }

    private static boolean holds(Path proc, String key) {
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(proc.resolve("fdinfo"))) {
            for (Path fd : fds) {
                try {
                    for (String line : Files.readAllLines(fd, StandardCharsets.UTF_8)) {
                        if (line.startsWith("lock:") && (line + " ").contains(key)) {
                            return true;
                        }
                    }
                } catch (IOException | RuntimeException e) {
                    // the fd closed meanwhile
                }
            }
        } catch (IOException | RuntimeException e) {
            // gone, or not ours to see
        }
        return false;
    }

    /** "pid N (this process)", or "pid N: corfs mount LEAF... MOUNTPOINT", or "pid N: COMMAND LINE". */
    static String process(long pid) {
        String self = pid == ProcessHandle.current().pid() ? " (this process)" : "";
        String cmdline;
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc/" + pid + "/cmdline"));
            List<String> args = new ArrayList<>(List.of(new String(raw, StandardCharsets.UTF_8).split("\0")));
            int main = args.indexOf("corfs.cli.Main");
            if (main < 0) {
                for (int i = 0; i < args.size(); i++) {
                    if (args.get(i).endsWith("corfs.jar") || args.get(i).endsWith("/corfs")) {
                        main = i;
                        break;
                    }
                }
            }
            List<String> tail = main >= 0 ? args.subList(main, args.size()) : List.of();
            if (tail.contains("mount") && tail.size() >= 3) {
                // corfs mount [OPTIONS] [--] LEAF... MOUNTPOINT
                List<String> rest = tail.subList(tail.indexOf("mount") + 1, tail.size());
                int dashes = rest.indexOf("--");
                List<String> leaves = dashes >= 0 ? rest.subList(dashes + 1, rest.size() - 1)
                        : rest.subList(rest.size() - 1, rest.size() - 1);
                cmdline = "corfs mount at " + rest.get(rest.size() - 1)
                        + (leaves.isEmpty() ? "" : " of " + String.join(" ", leaves));
            } else {
                cmdline = String.join(" ", args);
            }
        } catch (IOException | RuntimeException e) {
            cmdline = "?";
        }
        // another user's process chooses its arguments: no control characters into our messages and status
        cmdline = cmdline.codePoints().map(c -> Character.isISOControl(c) ? '?' : c)
                .collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append).toString();
        if (cmdline.length() > 1000) {
            cmdline = cmdline.substring(0, 1000) + "...";
        }
        return "pid " + pid + self + ": " + cmdline;
    }
}
