package corfs.backing;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Where a leaf's missing data comes from. Read-only in normal operation; {@link #openWriter()} gives
 * write access for the commit job alone.
 *
 * <p>Implementations are thread-safe: every read is positional, and many threads read at once.
 */
public interface Backing extends AutoCloseable {

    /** Where it is, for status and messages (a path). */
    String location();

    /** Size in bytes; equals the leaf's virtual size. */
    long size();

    /** The identity as it is now (stat), to compare with the one recorded in the leaf. */
    BackingIdentity identity() throws IOException;

    /**
     * Reads exactly {@code dst.remaining()} bytes at {@code offset} into {@code dst}. The range lies
     * within {@link #size()}. Any failure, including a short read, throws; nothing is ever zero-filled.
     * A {@link BackingTimeoutException} means the read was abandoned and may still write into
     * {@code dst}: the caller must drop the buffer, so pass only memory you own (never a FUSE buffer).
     */
    void readFully(ByteBuffer dst, long offset) throws IOException;

    /** The first offset at or after {@code offset} that may hold data, or -1 if the rest is a hole. */
    long nextData(long offset) throws IOException;

    /** The first offset at or after {@code offset} that is surely a hole, or {@link #size()}. */
    long nextHole(long offset) throws IOException;

    /** Opens the backing for writing (commit). Fails with READ_ONLY if it cannot be written. */
    Writer openWriter() throws IOException;

    @Override
    void close() throws IOException;

    /** Write access to the backing, held only while a commit runs. */
    interface Writer extends AutoCloseable {
        /** Writes all of {@code src} at {@code offset}. */
        void writeFully(ByteBuffer src, long offset) throws IOException;

        /** Makes every write so far durable (fsync). */
        void flush() throws IOException;

        @Override
        void close() throws IOException;
    }
}
