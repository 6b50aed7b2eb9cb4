package corfs.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/**
 * Whether a file corfs keeps beside a leaf ({@code LEAF.corfs-profile}, {@code LEAF.corfs-prefetch}) may be
 * trusted: a leaf may live in a directory other users can write, where they could plant one. A sidecar is
 * used only when it is owned by the owner of the leaf's metadata (of the leaf, of this process when
 * neither exists yet), has one link and is writable by no one
 * else; otherwise it is someone else's file and is not read (a profile sidecar is started anew, replacing
 * the entry, never writing into it).
 */
public final class Sidecars {
    private Sidecars() {
    }

    /** Why {@code sidecar} of {@code leaf} is not to be trusted, or null when it may be used. */
    public static String untrusted(Path sidecar, Path leaf) {
        try {
            int uid = (Integer) Files.getAttribute(sidecar, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            int mode = (Integer) Files.getAttribute(sidecar, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            int nlink = (Integer) Files.getAttribute(sidecar, "unix:nlink", LinkOption.NOFOLLOW_LINKS);
            int owner = ownerOf(leaf);
            if (uid != owner) {
                return "it is owned by uid " + uid + ", not by the leaf's owner (uid " + owner + ")";
            }
            if (nlink != 1) {
                return "it has " + nlink + " links";
            }
            if ((mode & 0022) != 0) {
                return "others may write it (mode " + Integer.toOctalString(mode & 07777) + ")";
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return "its owner cannot be checked (" + e.getMessage() + ")";
        }
    }

    /** The owner of the leaf's metadata, else of its data file, else (neither made yet) this process's. */
    private static int ownerOf(Path leaf) throws IOException {
        for (Path p : new Path[] {LeafImage.metadataPathOf(leaf), leaf, Path.of("/proc/self")}) {
            if (Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
                return (Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            }
        }
        throw new IOException("neither the leaf nor /proc/self exists");
    }
}
