package corfs.backing.nbd;

/**
 * One extent of a {@code base:allocation} block status reply.
 *
 * @param offset where it starts in the export
 * @param length its length, at least 1
 * @param hole   {@code NBD_STATE_HOLE}: not allocated on the server
 * @param zero   {@code NBD_STATE_ZERO}: reads as zeros (when clear, the content is unknown: data)
 */
public record NbdExtent(long offset, long length, boolean hole, boolean zero) {
    public NbdExtent {
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("extent " + offset + "+" + length);
        }
    }

    public long end() {
        return offset + length;
    }

    @Override
    public String toString() {
        return offset + "+" + length + (hole ? " hole" : "") + (zero ? " zero" : "") + (hole || zero ? "" : " data");
    }
}
