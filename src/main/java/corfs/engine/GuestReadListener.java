package corfs.engine;

/**
 * Told of every guest read of a {@link LeafDisk} while installed ({@link LeafDisk#guestReads}): what a
 * prefetch follows. Called on the FUSE thread of the read, before the read is served, so the disk's
 * {@code local} bits still show whether the read finds its clusters local (a hit) or fetches them (a
 * miss).
 *
 * <p>Implementations run on the hot path of every read: they must be thread-safe, must not block, must
 * not do I/O and must not throw.
 */
@FunctionalInterface
public interface GuestReadListener {
    /** A guest read of clusters [first, last] (both within the disk) is about to be served. */
    void guestRead(long first, long last);
}
