package corfs.image;

/**
 * A run of clusters in the same state, as {@code corfs map} lists them.
 *
 * @param offset first byte
 * @param length bytes (the last extent may end at the virtual size, not on a cluster boundary)
 * @param local  the data is in the leaf
 * @param dirty  written through corfs and not committed
 */
public record Extent(long offset, long length, boolean local, boolean dirty) {
    /** "backing", "local" or "dirty": where the data of this extent is read from and whether it is committed. */
    public String state() {
        return dirty ? "dirty" : local ? "local" : "backing";
    }
}
