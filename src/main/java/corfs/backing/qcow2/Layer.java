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
    Mapping map(long offset, long max) throws IOException;

    /** The cluster that the compressed L2 entry {@code descriptor} describes, decompressed. */
    byte[] readCompressed(long descriptor) throws IOException;

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
