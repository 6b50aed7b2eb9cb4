package corfs.backing.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The bytes a qcow2 (or raw) layer is read from: a file here, any transport (NBD, HTTP, S3) once the
 * format is plugged in over it. The reader never writes.
 *
 * <p>Implementations are thread-safe: many threads call {@link #readFully} at once, each positional.
 * The reader only ever asks for ranges inside {@code [0, size())}; a source may (and the tests' sources
 * do) treat any other request as a bug.
 */
public interface Qcow2Source extends AutoCloseable {

    /** Size in bytes of the container (the qcow2 file itself, not its virtual disk). */
    long size();

    /**
     * Reads exactly {@code dst.remaining()} bytes at {@code offset}; a short read throws, nothing is
     * zero-filled.
     */
    void readFully(ByteBuffer dst, long offset) throws IOException;

    /**
     * Where it is, for messages and for resolving a relative backing name (a path, later a URL). Two
     * sources with the same location are the same layer: the chain's loop check relies on it.
     */
    String location();

    /**
     * What identifies this content now, so a changed layer is noticed (a file: inode, size, mtime).
     * The hook for the opaque backing identity; the default is only the location and size.
     */
    default String identity() throws IOException {
        return location() + " size=" + size();
    }

    /**
     * What the source holds at {@code offset} when it is a raw layer (the bottom of a chain): DATA, or
     * ZERO for a range that reads as zeros without being read (a hole of a sparse file), with its length
     * (at least 1, at most {@code max}). The default knows nothing of holes: all data.
     */
    default Allocation rawAllocation(long offset, long max) throws IOException {
        return new Allocation(Allocation.Kind.DATA, max);
    }

    @Override
    void close() throws IOException;

    /** Opens the backing file a qcow2 header names. */
    @FunctionalInterface
    interface Resolver {
        /**
         * Opens {@code name} (as written in the header of {@code from}: absolute, or relative to
         * {@code from}'s own location within the same transport). The caller owns the returned source.
         */
        Qcow2Source open(Qcow2Source from, String name) throws IOException;
    }
}
