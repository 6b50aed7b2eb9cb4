package corfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;

/** API SKELETON (being implemented): the virtual disk of one mounted leaf. */
public final class LeafDisk implements AutoCloseable {
    /** The exposed file name (the leaf's file name). */
    public String name() { throw new UnsupportedOperationException(); }
    /** Virtual size in bytes. */
    public long size() { throw new UnsupportedOperationException(); }
    public boolean readOnly() { throw new UnsupportedOperationException(); }
    /** Reads min(dst.remaining(), size-offset) bytes at offset into dst; returns the count (0 at/after EOF). */
    public int read(ByteBuffer dst, long offset) throws IOException { throw new UnsupportedOperationException(); }
    /** Writes src at offset; returns bytes written. Past the end: CorfsException FILE_TOO_BIG. */
    public int write(ByteBuffer src, long offset) throws IOException { throw new UnsupportedOperationException(); }
    /** Makes [offset, offset+length) read as zeros without fetching it (fallocate PUNCH_HOLE / ZERO_RANGE). */
    public void zeroRange(long offset, long length) throws IOException { throw new UnsupportedOperationException(); }
    /** A durability barrier: every write acknowledged before the call is durable when it returns. */
    public void flush() throws IOException { throw new UnsupportedOperationException(); }
    /** Bytes the leaf's data file really occupies (for st_blocks). */
    public long allocatedBytes() throws IOException { throw new UnsupportedOperationException(); }
    /** Modification time of the leaf data in ms (for st_mtime). */
    public long modifiedMillis() { throw new UnsupportedOperationException(); }
    @Override public void close() throws IOException { }
}
