package corfs.image;

/**
 * A run of clusters in the same state, as {@code corfs map} lists them.
 *
 * @param offset first byte
 * @param length bytes (the last extent may end at the virtual size, not on a cluster boundary)
 * @param local  the data is in the leaf
 * @param dirty  written through corfs and not committed
 * @param unreadable not local, and a job found the backing unreadable there (on_error=skip)
 * @param zero   local and a hole of the leaf's data file: reads as zeros and takes no space (a hole or
 *               zero cluster of the backing, or zeros written by the guest)
 */
public record Extent(long offset, long length, boolean local, boolean dirty, boolean unreadable, boolean zero) {
    public Extent(long offset, long length, boolean local, boolean dirty, boolean unreadable) {
        this(offset, length, local, dirty, unreadable, false);
    }

    /**
     * "backing", "local", "dirty" or "unreadable": where the data of this extent is read from, whether it
     * is committed, and whether the backing failed to give it; a local extent that is a hole of the leaf
     * is "local-zero" (dirty ones stay "dirty").
     */
    public String state() {
        return dirty ? "dirty" : local ? (zero ? "local-zero" : "local") : unreadable ? "unreadable" : "backing";
    }
}
