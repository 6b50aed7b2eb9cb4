package corfs.backing;

import corfs.io.FileOps;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Where a leaf's missing data comes from: the one seam between the engine and jobs on one side and how a
 * virtual disk is reached (a file today; NBD, HTTP, S3 later) and decoded (raw today; qcow2 later) on the
 * other. Read-only in normal operation; {@link #openWriter()} gives write access for the commit job alone.
 *
 * <h2>Contract</h2> ({@code BackingContractTest} checks it for every implementation)
 * <ul>
 * <li>Thread-safe: up to {@link #maxInFlight()} reads run at once from different threads; every call is
 * positional.</li>
 * <li>{@link #readFully} reads exactly the range or throws; a range outside [0, {@link #size()}) is
 * refused; a backing that ends early (it shrank since it was opened) is an error, never zeros.</li>
 * <li>{@link #allocation} answers in one call what lies at an offset, and fails (never answers "hole")
 * when the backing ended before its recorded size.</li>
 * <li>Every call may block on a slow medium; {@link TimeoutBacking} puts a deadline on each, so callers
 * on FUSE threads never wait longer than that.</li>
 * </ul>
 */
public interface Backing extends AutoCloseable {

    /** Where it is, for status and messages (a path or a URI). */
    String location();

    /** Size in bytes as recorded when it was opened; equals the leaf's virtual size. */
    long size();

    /** The identity as it is now, to compare with the one recorded in the leaf. */
    BackingIdentity identity() throws IOException;

    /** How many calls may usefully run at once (reads in flight); at least 1. */
    int maxInFlight();

    /**
     * Reads exactly {@code dst.remaining()} bytes at {@code offset} into {@code dst}, advancing its
     * position. The range must lie within {@link #size()}. Any failure, including a short read, throws;
     * nothing is ever zero-filled. A {@link BackingTimeoutException} means the read was abandoned and may
     * still write into {@code dst}: the caller must drop the buffer, so pass only memory you own (never a
     * FUSE buffer).
     */
    void readFully(ByteBuffer dst, long offset) throws IOException;

    /**
     * Copies exactly {@code length} bytes at {@code offset} (within {@link #size()}) into {@code target} at
     * {@code targetOffset} without passing them through user space, when this backing is a file the
     * kernel can copy from ({@code copy_file_range}); returns false, having written nothing, when it cannot
     * (the default: any backing that is not such a file, or a target on a filesystem the kernel cannot
     * copy to), and the caller reads and writes instead. Failures as {@link #readFully}; a
     * {@link BackingTimeoutException} means the copy was abandoned and may still write into {@code target}
     * until {@link BackingTimeoutException#stillWriting()} completes: until then the caller must keep everyone
     * else off that range of the target.
     */
    default boolean copyTo(long offset, int length, FileOps.SparseFile target, long targetOffset) throws IOException {
        return false;
    }

    /**
     * Whether {@link #copyTo} into {@code target} may work (it can still answer false, once, when the
     * kernel refuses); asks nothing of the medium, so it never blocks.
     */
    default boolean canCopyTo(FileOps.SparseFile target) {
        return false;
    }

    /**
     * What lies at {@code offset} (0 &le; offset &lt; {@link #size()}): one extent of one kind, of at
     * least one and at most {@code max} bytes (less if the kind changes sooner or the backing ends).
     * Fails when the backing no longer reaches {@code offset} (it shrank).
     */
    Allocation allocation(long offset, long max) throws IOException;

    /**
     * Opens the backing for writing (commit). Fails with READ_ONLY if it cannot be written, BUSY (naming
     * the holder) if another user of the backing forbids writing.
     */
    Writer openWriter() throws IOException;

    @Override
    void close() throws IOException;

    /** Write access to the backing, held only while a commit runs. */
    interface Writer extends AutoCloseable {
        /** Writes all of {@code src} at {@code offset}, advancing its position. */
        void writeFully(ByteBuffer src, long offset) throws IOException;

        /** Makes every write so far durable (fsync). */
        void flush() throws IOException;

        /**
         * Makes {@code [offset, offset + length)} read as zeros, like {@link #writeFully} of zeros (and with
         * the same durability: {@link #flush} covers it). A transport that can say "zeros" without sending
         * them (NBD {@code WRITE_ZEROES}) overrides this; the default writes a zero buffer, 1 MiB at a time.
         */
        default void writeZeroes(long offset, long length) throws IOException {
            if (offset < 0 || length < 0) {
                throw new IllegalArgumentException("zeroes at " + offset + "+" + length);
            }
            ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
            for (long done = 0; done < length; ) {
                int n = (int) Math.min(zeros.capacity(), length - done);
                zeros.clear().limit(n);
                writeFully(zeros, offset + done);
                done += n;
            }
        }

        @Override
        void close() throws IOException;
    }
}
