package corfs.image;

/**
 * A run of clusters in the same state, as {@code corfs map} lists them.
 *
 * @param offset first byte
 * @param length bytes (the last extent may end at the virtual size, not on a cluster boundary)
 * @param local  the data is in the leaf
 * @param dirty  written through corfs and not committed
 * @param unreadable not local, and a job found the backing unreadable there (on_error=skip)
 */
public record Extent(long offset, long length, boolean local, boolean dirty, boolean unreadable) {
    /**
     * "backing", "local", "dirty" or "unreadable": where the data of this extent is read from, whether it
     * is committed, and whether the backing failed to give it.
     */
    public String state() {
        return dirty ? "dirty" : local ? "local" : unreadable ? "unreadable" : "backing";
    }
}
