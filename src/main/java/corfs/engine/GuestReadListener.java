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
    /**
     * A guest read of clusters [first, last] (both within the disk) is about to be served. Returns true when
     * the read is on the listener's path (a prefetch's profile names some of its clusters): the disk then
     * fetches nothing ahead of it (no sequential read-ahead), since the listener fetches what the guest reads
     * next, in the order it read it before. Read-ahead past a profile's clusters is what the recorded boot
     * did not read: on a slow link it took the link from the prefetch and the guest's own misses (a think-0
     * boot replay at 26 MB/s fetched 6-20 MB of it and took 2.4-4.7 s against the 2.5 s the profile needs).
     */
    boolean guestRead(long first, long last);
}
