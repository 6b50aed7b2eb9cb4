package corfs.cli;

import corfs.control.ControlParser;
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
            throw new Main.ExitException(Main.EXIT_FAILURE, "'" + StatusCommand.readable(line) + "' refused: "
                    + (reason != null ? reason + " (" + errnoText(e) + ")" : errnoText(e)));
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
                    String err = s.get("command_error"); // the refusal's reason; "error" is the job's
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

    /**
     * The mounted image IMAGE names: the leaf of that file name, or else the one whose name IMAGE is when
     * percent-decoded (the form the status shows, {@code my%20disk.raw}); null for "the only leaf" when
     * IMAGE is null. Refuses, saying what is mounted, an IMAGE that names none (exit 1) and a missing IMAGE
     * when several leaves are mounted (a usage error, 64).
     */
    String resolveImage(String image) throws IOException {
        List<Map<String, String>> all = status();
        List<String> names = new java.util.ArrayList<>();
        for (Map<String, String> s : all) {
            names.add(s.get("image"));
        }
        if (image == null) {
            if (names.size() > 1) {
                throw new Main.ExitException(Main.EXIT_USAGE, names.size() + " leaves are mounted at " + mountPoint
                        + ": name the IMAGE (one of " + readableList(names) + ")");
            }
            return null;
        }
        if (names.contains(image)) {
            return image;
        }
        String decoded = StatusFormat.decodeImage(image);
        if (names.contains(decoded)) {
            return decoded;
        }
        throw new Main.ExitException(Main.EXIT_FAILURE, "no image " + StatusCommand.readable(image) + " at "
                + mountPoint + " (mounted: " + readableList(names) + ")");
    }

    private static String readableList(List<String> names) {
        List<String> r = new java.util.ArrayList<>();
        for (String n : names) {
            r.add(StatusCommand.readable(n));
        }
        return String.join(", ", r);
    }

    /** " IMAGE" encoded for a control line ({@link ControlParser#encodeImage}), or "" for none. */
    static String imageArg(String name) {
        return name == null ? "" : " " + ControlParser.encodeImage(name);
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
