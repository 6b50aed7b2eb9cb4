package corfs.io;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Set;

/**
 * How corfs replaces a small file whole (a sidecar beside a leaf, an exported profile, the metrics file):
 * the content goes to a temporary file of unpredictable name in the target's directory, created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, forced (when {@link #durable}), then renamed over the target, then the
 * directory is forced (when {@link #durable}). A reader sees the old file or the new one, never a part;
 * a link planted at the temporary name makes the creation fail, and a link at the target is replaced,
 * never written through. On failure the temporary file is removed and the target is left as it was.
 *
 * <p>A target that exists is checked first by {@link ReplaceTarget} when the replacement says so
 * ({@link #refusing}): a device, FIFO or directory (and a link unless allowed) is not replaced.
 *
 * @param tempPrefix the temporary name's start; it does not grow with the target's name where the caller
 *                   bounds name lengths
 * @param mode       the temporary file's mode at creation (the umask applies unless {@link #exactMode})
 * @param exactMode  set {@code mode} again after creation, whatever the umask took away
 * @param durable    fsync the file before the rename and the directory after it
 * @param refuseWhat null, or the name {@link ReplaceTarget#check} gives the target in its message
 * @param allowLink  with {@code refuseWhat}: a symbolic link at the target may be replaced
 */
public record AtomicReplace(String tempPrefix, Set<PosixFilePermission> mode, boolean exactMode, boolean durable,
                            String refuseWhat, boolean allowLink) {
    private static final Logger LOG = LoggerFactory.getLogger(AtomicReplace.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    public AtomicReplace {
        mode = Set.copyOf(mode);
    }

    /** A durable replacement: temporary names start with {@code tempPrefix}, created with {@code mode} ("rw-------"). */
    public static AtomicReplace durable(String tempPrefix, String mode) {
        return new AtomicReplace(tempPrefix, PosixFilePermissions.fromString(mode), false, true, null, false);
    }

    /** The same without fsync of the file and the directory (a file rewritten every few seconds). */
    public AtomicReplace notDurable() {
        return new AtomicReplace(tempPrefix, mode, exactMode, false, refuseWhat, allowLink);
    }

    /** The same, setting the mode after creation so that the umask does not narrow it. */
    public AtomicReplace withExactMode() {
        return new AtomicReplace(tempPrefix, mode, true, durable, refuseWhat, allowLink);
    }

    /** The same, refusing a target that is not a regular file ({@link ReplaceTarget#check}). */
    public AtomicReplace refusing(String what, boolean linkAllowed) {
        return new AtomicReplace(tempPrefix, mode, exactMode, durable, what, linkAllowed);
    }

    /** Replaces {@code target} with {@code content} (from its position to its limit). */
    public void write(Path target, ByteBuffer content) throws IOException {
        if (refuseWhat != null) {
            ReplaceTarget.check(target, refuseWhat, allowLink);
        }
        Path dir = target.toAbsolutePath().getParent();
        byte[] rnd = new byte[12];
        RANDOM.nextBytes(rnd);
        Path tmp = dir.resolve(tempPrefix + HexFormat.of().formatHex(rnd) + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, Set.<OpenOption>of(StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS), PosixFilePermissions.asFileAttribute(mode))) {
                if (exactMode) {
                    Files.getFileAttributeView(tmp, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
                            .setPermissions(mode);
                }
                ByteBuffer b = content.duplicate();
                long pos = 0;
                while (b.hasRemaining()) {
                    pos += ch.write(b, pos);
                }
                if (durable) {
                    ch.force(true);
                }
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        if (durable) {
            syncDirectory(dir);
        }
    }

    /** {@link #write(Path, ByteBuffer)} of {@code content}. */
    public void write(Path target, byte[] content) throws IOException {
        write(target, ByteBuffer.wrap(content));
    }

    /**
     * Forces {@code dir}'s entries (a rename, a creation) to disk. Some filesystems refuse to fsync a
     * directory: that is logged at debug and otherwise ignored, as there is nothing more to do.
     */
    public static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, EnumSet.of(StandardOpenOption.READ))) {
            ch.force(true);
        } catch (IOException e) {
            LOG.debug("fsync of directory {} not possible: {}", dir, e.toString());
        }
    }
}
