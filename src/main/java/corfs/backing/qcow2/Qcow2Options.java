package corfs.backing.qcow2;

/**
 * How a chain is opened.
 *
 * @param l2CacheBytes budget of the metadata cache (L2 tables and L1 pages) of the whole chain, bytes; at
 *                     least one table is always kept, whatever the budget
 * @param maxChainDepth most images in a chain, the top included
 */
public record Qcow2Options(long l2CacheBytes, int maxChainDepth) {
    /** 4 MiB of L2 tables (64 GiB of virtual disk at 64 KiB clusters), chains of at most 16 images. */
    public static final Qcow2Options DEFAULT = new Qcow2Options(4L << 20, 16);

    public Qcow2Options {
        if (l2CacheBytes < 0 || l2CacheBytes > (1L << 40)) {
            throw new IllegalArgumentException("l2 cache size out of range: " + l2CacheBytes);
        }
        if (maxChainDepth < 1 || maxChainDepth > 16) {
            throw new IllegalArgumentException("chain depth must be 1 to 16: " + maxChainDepth);
        }
    }

    public Qcow2Options withL2CacheBytes(long bytes) {
        return new Qcow2Options(bytes, maxChainDepth);
    }
}
