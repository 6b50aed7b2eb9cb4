package corfs.io;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * What a file that corfs replaces atomically (a temporary file renamed over it) may be before: nothing, or
 * a regular file; a symbolic link only where the caller says so (it is replaced, never written through).
 * A directory, a device, a FIFO or a socket is refused: a rename over {@code /dev/null} as root breaks the
 * host, and a name the user typed wrong should say so rather than become a regular file.
 */
public final class ReplaceTarget {
    private ReplaceTarget() {
    }

    /**
     * @param what      names the file in the message ("profile", "metrics_file")
     * @param allowLink a symbolic link at {@code target} may be replaced (a link planted in a shared directory)
     * @throws CorfsException INVALID_ARGUMENT when {@code target} exists and may not be replaced
     */
    public static void check(Path target, String what, boolean allowLink) throws IOException {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (java.nio.file.NoSuchFileException e) {
            return;
        }
        if (a.isRegularFile() || (allowLink && a.isSymbolicLink())) {
            return;
        }
        String kind = a.isDirectory() ? "a directory" : a.isSymbolicLink() ? "a symbolic link" : "not a regular file";
        throw new CorfsException(Reason.INVALID_ARGUMENT, what + " " + target + " exists and is " + kind
                + ": not replaced");
    }
}
