package corfs.backing.qcow2;

/**
 * The bit layouts of qcow2's mapping tables (QEMU docs/interop/qcow2.txt, "Cluster mapping" and
 * "Extended L2 Entries"), in one place, so they can be checked against the specification on their own.
 *
 * <p>Reserved bits are masked away, not refused: QEMU reads the same entries with the same masks
 * ({@code L1E_OFFSET_MASK}, {@code L2E_OFFSET_MASK}), so an image QEMU reads is read here too.
 */
final class Qcow2Layout {
    /** L1 entry bits 9-55: the L2 table's host offset. */
    static final long L1E_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    /** Standard cluster descriptor bits 9-55: the host cluster offset. */
    static final long L2E_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    /** L2 entry bit 62: compressed cluster. */
    static final long L2E_COMPRESSED = 1L << 62;
    /** Standard cluster descriptor bit 0: reads as zeros (ignored with extended L2 entries). */
    static final long L2E_ZERO = 1L;
    /** The compressed-data unit of the descriptor's sector count. */
    static final int COMPRESSED_SECTOR = 512;

    private Qcow2Layout() {
    }

    /** The L2 table's host offset of an L1 entry; 0 means unallocated. */
    static long l2TableOffset(long l1Entry) {
        return l1Entry & L1E_OFFSET_MASK;
    }

    static boolean isCompressed(long l2Entry) {
        return (l2Entry & L2E_COMPRESSED) != 0;
    }

    /** The host cluster offset of a standard (not compressed) descriptor; 0 means unallocated. */
    static long standardOffset(long l2Entry) {
        return l2Entry & L2E_OFFSET_MASK;
    }

    /** Bit 0 of a standard descriptor (meaningful only without extended L2 entries). */
    static boolean zeroFlag(long l2Entry) {
        return (l2Entry & L2E_ZERO) != 0;
    }

    /** {@code x = 62 - (cluster_bits - 8)}: where the sector count starts in a compressed descriptor. */
    static int compressedSizeShift(int clusterBits) {
        return 62 - (clusterBits - 8);
    }

    /** Compressed descriptor bits 0..x-1: the host byte offset of the compressed data. */
    static long compressedOffset(long l2Entry, int clusterBits) {
        return l2Entry & ((1L << compressedSizeShift(clusterBits)) - 1);
    }

    /** Compressed descriptor bits x..61: additional 512-byte sectors beyond the one holding the offset. */
    static long compressedExtraSectors(long l2Entry, int clusterBits) {
        return (l2Entry >>> compressedSizeShift(clusterBits)) & ((1L << (clusterBits - 8)) - 1);
    }

    /**
     * Bytes of host file the compressed data may span, from its offset to the end of its last sector
     * (what QEMU reads: {@code (sectors + 1) * 512 - offset % 512}). The data may end earlier.
     */
    static long compressedSpan(long l2Entry, int clusterBits) {
        long sectors = compressedExtraSectors(l2Entry, clusterBits) + 1;
        return sectors * COMPRESSED_SECTOR - (compressedOffset(l2Entry, clusterBits) % COMPRESSED_SECTOR);
    }

    /** Extended L2 bitmap bits 0-31: subcluster {@code sc} is allocated. */
    static boolean subclusterAllocated(long bitmap, int sc) {
        return (bitmap >>> sc & 1) != 0;
    }

    /** Extended L2 bitmap bits 32-63: subcluster {@code sc} reads as zeros. */
    static boolean subclusterZero(long bitmap, int sc) {
        return (bitmap >>> (32 + sc) & 1) != 0;
    }

    /** A subcluster both allocated and zero: the bitmap is invalid (QEMU: QCOW2_SUBCLUSTER_INVALID). */
    static boolean bitmapContradicts(long bitmap) {
        return ((bitmap >>> 32) & bitmap & 0xffff_ffffL) != 0;
    }
}
