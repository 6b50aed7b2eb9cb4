package corfs.cli;

import corfs.control.StatusFormat;
import corfs.fuse.MountTable;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

/** Talks to a running mount through MOUNTPOINT/control, exactly as {@code echo} and {@code cat} would. */
final class ControlClient {
    private final Path mountPoint;
    private final Path control;

    private ControlClient(Path mountPoint) {
        this.mountPoint = mountPoint;
        this.control = mountPoint.resolve("control");
    }

    /** Refuses a path that is not a live corfs mount, with a message that says what it is. */
    static ControlClient of(Path mountPoint) throws IOException {
        Path mp;
        try {
            mp = mountPoint.toRealPath();
        } catch (java.nio.file.FileSystemException e) {
            if (corfs.fuse.FuseMount.isDeadMountError(e)) {
                throw new Main.ExitException(Main.EXIT_FAILURE, mountPoint + " is a dead FUSE mount (its daemon is "
                        + "gone): clear it with 'fusermount -u " + mountPoint + "'");
            }
            throw e;
        }
        if (!MountTable.isCorfsMounted(mp)) {
            throw new Main.ExitException(Main.EXIT_FAILURE, mp + " is not a corfs mount");
        }
        try {
            Files.readAttributes(mp.resolve("control"), java.nio.file.attribute.BasicFileAttributes.class);
        } catch (java.nio.file.FileSystemException e) {
            if (corfs.fuse.FuseMount.isDeadMountError(e)) {
                throw new Main.ExitException(Main.EXIT_FAILURE, mp + " is a dead FUSE mount (its daemon is "
                        + "gone): clear it with 'fusermount -u " + mp + "' or 'corfs mount --force'");
            }
            throw e;
        }
        return new ControlClient(mp);
    }

    Path mountPoint() {
        return mountPoint;
    }

    /** Writes one command line; on refusal, fails with the errno's text and the reason from the status. */
    void send(String line, String image) throws IOException {
        try (OutputStream out = Files.newOutputStream(control, StandardOpenOption.WRITE)) {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            String reason = lastError(image);
            throw new Main.ExitException(Main.EXIT_FAILURE, "'" + line + "' refused: "
                    + (reason != null ? reason : Main.message(e)) + " (" + errnoText(e) + ")");
        }
    }

    private static String errnoText(IOException e) {
        String m = e.getMessage();
        return m == null ? e.toString() : m;
    }

    private String lastError(String image) {
        try {
            for (Map<String, String> s : status()) {
                if (image == null || image.equals(s.get("image"))) {
                    String err = s.get("error");
                    if (err != null && !err.equals("-")) {
                        return err;
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            // the refusal itself is reported
        }
        return null;
    }

    String statusText() throws IOException {
        return Files.readString(control, StandardCharsets.UTF_8);
    }

    List<Map<String, String>> status() throws IOException {
        return StatusFormat.parse(statusText());
    }

    /** The status line of IMAGE, or of the only leaf when IMAGE is null. */
    Map<String, String> statusOf(String image) throws IOException {
        List<Map<String, String>> all = status();
        if (image == null) {
            if (all.size() != 1) {
                throw new Main.ExitException(Main.EXIT_FAILURE, all.size() + " leaves are mounted at " + mountPoint
                        + ": name the IMAGE");
            }
            return all.get(0);
        }
        for (Map<String, String> s : all) {
            if (image.equals(s.get("image"))) {
                return s;
            }
        }
        throw new Main.ExitException(Main.EXIT_FAILURE, "no image " + image + " at " + mountPoint);
    }
}
