package corfs.backing.qcow2;

import java.io.IOException;

/**
 * One image of a chain, as the chain sees it: its size and how a range of its virtual disk maps.
 * Immutable after open and thread-safe.
 */
sealed interface Layer permits Qcow2Layer, RawLayer {

    /** The layer's virtual size; reads past it (in a shorter backing) are zeros. */
    long size();

    Qcow2Source source();

    LayerInfo info();

    /**
     * How {@code [offset, offset + max)} begins: a run of one kind, at least one byte and at most
     * {@code max}. The range lies within {@link #size()}. Throws on damage the lookup touches.
     */
    default Mapping map(long offset, long max) throws IOException {
        return map(offset, max, new Cursor());
    }

    /**
     * {@link #map(long, long)} that starts from and updates {@code cursor}: the L2 table the last call
     * with it looked at, so a caller that maps run after run of one layer (a read of many compressed
     * clusters) looks tables up once per table rather than once per cluster. A cursor belongs to one
     * layer and one thread.
     */
    Mapping map(long offset, long max, Cursor cursor) throws IOException;

    /** Where a run of {@link #map} calls on one layer is: the last L1 index and its L2 table (null: none). */
    final class Cursor {
        long l1Index = -1;
        long[] table;
    }

    /** Cluster size in bytes (0 for a raw layer, which has no clusters). */
    int clusterSize();

    /**
     * Decompresses the cluster that the compressed L2 entry {@code descriptor} describes into all of
     * {@code cluster} (exactly {@link #clusterSize()} bytes).
     */
    void readCompressed(long descriptor, byte[] cluster) throws IOException;

    /** What a run of a layer's virtual disk is. */
    enum MapKind {
        /** Stored uncompressed at {@link Mapping#host()} onwards, contiguous. */
        DATA,
        /** Inside one compressed cluster; {@link Mapping#host()} is the L2 entry. */
        COMPRESSED,
        /** Reads as zeros here; the backing is not consulted. */
        ZERO,
        /** Not allocated here: read from the backing. */
        UNALLOCATED,
    }

    /**
     * @param kind   what the run is
     * @param length bytes, at least 1
     * @param host   DATA: host offset of the first byte; COMPRESSED: the L2 entry; else 0
     */
    record Mapping(MapKind kind, long length, long host) {
    }
}
