package corfs.image;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingIdentity;
import corfs.io.AtomicReplace;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A pending prefetch, kept beside the leaf in {@code LEAF.corfs-prefetch}: a copy of the access profile
 * ({@link AccessProfile}'s file format) that the leaf's mounts prefetch until every cluster it names is
 * local. {@code corfs create --prefetch FILE}, {@code mount -o prefetch=FILE} and the control command
 * {@code prefetch [IMAGE] FILE} write it; the prefetch removes it when it completes (after the fetched
 * clusters' bits are durable), and {@code prefetch [IMAGE] cancel} removes it. Its presence at mount is
 * what resumes an unfinished prefetch.
 *
 * <p>Advisory, not crash-critical: the clusters' local bits decide what is fetched, whatever this file
 * says. It is replaced atomically: a temporary file of unpredictable name created with O_EXCL|O_NOFOLLOW
 * (mode 0600), forced, then renamed over it, so a link planted beside the leaf is replaced, never written
 * through. It is read like any profile a user hands corfs ({@link AccessProfile#read}: no link followed,
 * bounded, validated), and checked against the leaf ({@link #check}) before every use.
 */
public final class PrefetchRecord {
    public static final String SUFFIX = ".corfs-prefetch";
    /** The temporary name does not grow with the leaf's: LEAF.corfs-unreadable stays the longest name kept. */
    private static final AtomicReplace REPLACE = AtomicReplace.durable(".corfs-prefetch-", "rw-------");

    private static final Logger LOG = LoggerFactory.getLogger(PrefetchRecord.class);

    private PrefetchRecord() {
    }

    public static Path pathOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + SUFFIX);
    }

    /**
     * The pending profile, or empty when none is recorded.
     *
     * @throws IOException when one is there but cannot be read or is not a valid profile
     */
    public static Optional<AccessProfile> load(Path leaf) throws IOException {
        Path p = pathOf(leaf);
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            return Optional.empty();
        }
        String untrusted = Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS) ? Sidecars.untrusted(p, leaf) : null;
        if (untrusted != null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "pending prefetch " + p + " is not used: " + untrusted);
        }
        return Optional.of(AccessProfile.read(p));
    }

    /** Records {@code profile} as the leaf's pending prefetch, replacing any. */
    public static void save(Path leaf, AccessProfile profile) throws IOException {
        REPLACE.write(pathOf(leaf), profile.toBytes());
    }

    /**
     * Removes the leaf's pending prefetch when it was recorded over another backing identity than
     * {@code now} (the leaf's backing changed: set-backing, a commit), logging it: every later mount would
     * refuse it. A record that cannot be read or is not trusted is left for the mount to report. Never
     * throws: the change of identity is already recorded, and this is advisory.
     *
     * @return true when a record was dropped
     */
    public static boolean dropStale(Path leaf, BackingIdentity now) {
        Path p = pathOf(leaf);
        try {
            Optional<AccessProfile> pending = load(leaf);
            if (pending.isEmpty() || now == null || pending.get().identityToken().equals(now.token())) {
                return false;
            }
            remove(leaf);
            LOG.info("{}: dropped the pending prefetch {}: it was recorded over the previous backing, the leaf's"
                    + " backing is now {}", leaf.getFileName(), p.getFileName(), now.describe());
            return true;
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: the pending prefetch {} was not checked against the new backing identity: {}",
                    leaf.getFileName(), p.getFileName(), e.getMessage());
            return false;
        }
    }

    /** Removes the leaf's pending prefetch, if any. */
    public static void remove(Path leaf) throws IOException {
        Files.deleteIfExists(pathOf(leaf));
    }

    /**
     * Refuses a profile that is not for this leaf's disk: recorded over a backing of another identity, or
     * for a disk of another size. Messages name the profile ({@code source}) and the leaf's backing, never
     * the profile's text.
     *
     * @throws CorfsException INVALID_ARGUMENT naming both where it can
     */
    public static void check(AccessProfile profile, String source, String leafName, BackingIdentity leafIdentity,
                             long virtualSize) throws CorfsException {
        if (!profile.identityToken().equals(leafIdentity.token())) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + source + " was recorded over another"
                    + " backing than " + leafName + "'s (" + leafIdentity.describe() + "): refusing to prefetch it");
        }
        if (profile.backingSize() != virtualSize) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + source + " is for a disk of another size"
                    + " than " + leafName + " (" + virtualSize + " bytes): refusing to prefetch it");
        }
    }
}
