package corfs.engine;

/**
 * Why a {@link LeafDisk} fetched bytes from its backing: the key of its fetched-bytes counters
 * ({@link LeafDisk#fetchedBytes}).
 */
public enum FetchPurpose {
    /** A guest read of missing clusters, or the partly written edge clusters of a guest write. */
    COPY_ON_READ,
    /** Ahead of a sequential cold reader ({@link SequentialReadAhead}). */
    READ_AHEAD,
    /** The stream job. */
    STREAM,
    /** The prefetch job (an access profile's clusters, ahead of the guest). */
    PREFETCH
}
