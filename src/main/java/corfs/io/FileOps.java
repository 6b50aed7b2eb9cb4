package corfs.io;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The few file operations Java's NIO lacks: holes (punch, SEEK_DATA/SEEK_HOLE), allocated size and
 * I/O priority.
 *
 * <p>The engine depends only on this interface, so it runs and is unit-tested without native code;
 * {@code corfs.os.LinuxFileOps} implements it with libc through jnr-ffi, {@link PortableFileOps} in
 * pure Java (holes become written zeros, priorities are ignored).
 */
public interface FileOps {

    /**
     * Opens a channel for data I/O. Every channel the engine reads or writes through comes from here, so
     * tests can interpose (record writes and fsyncs to simulate a power cut, inject faults).
     */
    default java.nio.channels.FileChannel openChannel(Path path, java.nio.file.OpenOption... options) throws IOException {
        return java.nio.channels.FileChannel.open(path, options);
    }

    /** Opens {@code path} for the sparse-file operations; data I/O still goes through a FileChannel. */
    SparseFile open(Path path, boolean writable) throws IOException;

    /**
     * Puts the calling thread in Linux's idle I/O priority class (IOPRIO_CLASS_IDLE), so that any other
     * I/O on the host is served first. Best effort: returns false where it is not possible.
     */
    boolean setCurrentThreadIdleIoPriority();

    /**
     * Reads the first {@code maxBytes} bytes of a regular file others may have put in place: a symbolic link
     * is not followed and anything but a regular file is refused with {@link NotRegularFileException}, checked
     * on what was opened, not on the name beforehand (a FIFO swapped in after a check would block the open
     * forever). A missing file is {@link java.nio.file.NoSuchFileException}. This default checks, then
     * opens: the native implementation opens with O_NONBLOCK|O_NOFOLLOW and checks the open file.
     */
    default byte[] readRegularFile(Path path, int maxBytes) throws IOException {
        if (!java.nio.file.Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new java.nio.file.NoSuchFileException(path.toString());
        }
        if (!java.nio.file.Files.isRegularFile(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new NotRegularFileException(path);
        }
        try (var ch = java.nio.file.Files.newByteChannel(path, java.util.Set.<java.nio.file.OpenOption>of(
                java.nio.file.StandardOpenOption.READ, java.nio.file.LinkOption.NOFOLLOW_LINKS));
             var in = java.nio.channels.Channels.newInputStream(ch)) {
            return in.readNBytes(maxBytes);
        }
    }

    /** {@link #readRegularFile} found something else than a regular file (or a symbolic link) at the path. */
    final class NotRegularFileException extends IOException {
        private static final long serialVersionUID = 1L;

        public NotRegularFileException(Path path) {
            super(path + " is not a regular file");
        }
    }

    /** The best implementation available here: native on Linux when it loads, else portable. */
    static FileOps system() {
        return SystemFileOps.INSTANCE;
    }

    /** Byte-range lock modes for {@link SparseFile#tryLock}. */
    enum LockMode { SHARED, EXCLUSIVE, NONE }

    /** An open file's sparse operations. Thread-safe: every call is positional. */
    interface SparseFile extends AutoCloseable {
        /** Makes [offset, offset+length) read as zeros and frees its blocks; the file size is unchanged. */
        void punchHole(long offset, long length) throws IOException;

        /** The first offset at or after {@code offset} that holds data, or -1 if none (SEEK_DATA). */
        long nextData(long offset) throws IOException;

        /** The first offset at or after {@code offset} that is a hole, or the file size (SEEK_HOLE). */
        long nextHole(long offset) throws IOException;

        /**
         * Copies up to {@code length} bytes at {@code offset} of this file to {@code target} at
         * {@code targetOffset} inside the kernel ({@code copy_file_range}: no copy through user space, no
         * file position used or moved). Returns the bytes copied (at least 1; fewer than asked when the
         * kernel stops early, so callers loop), 0 at this file's end, or -1 when the kernel cannot copy
         * between these two files (another filesystem, a kernel or filesystem without it: the caller then
         * copies through a buffer). Throws {@link UnsupportedOperationException} where this implementation
         * has no in-kernel copy at all ({@link #copySupported()} false).
         */
        default long copyTo(long offset, SparseFile target, long targetOffset, long length) throws IOException {
            throw new UnsupportedOperationException("no in-kernel copy here");
        }

        /** Whether {@link #copyTo} may work; false for the portable implementation. */
        default boolean copySupported() {
            return false;
        }

        /**
         * Tells the kernel this open file will be read sequentially ({@code POSIX_FADV_SEQUENTIAL}: a larger
         * read-ahead for reads and in-kernel copies through this descriptor). Advice only: never fails.
         */
        default void adviseSequential() {
        }

        /** Bytes the file really occupies on its filesystem (st_blocks * 512). */
        long allocatedBytes() throws IOException;

        /**
         * Takes, changes or (with {@link LockMode#NONE}) drops this open file's lock on bytes
         * [start, start+length): an open file description (OFD) lock, the kind QEMU uses for image
         * locking, owned by this open file and not by the process. Never waits. Returns false when
         * another open file (in this process or another) holds a conflicting lock.
         *
         * @throws UnsupportedOperationException where this implementation cannot lock (see
         *         {@link #locksSupported()})
         */
        default boolean tryLock(long start, long length, LockMode mode) throws IOException {
            throw new UnsupportedOperationException("no byte-range locks here");
        }

        /** True when another open file holds a lock on a byte of [start, start+length) (F_OFD_GETLK). */
        default boolean lockedByOthers(long start, long length) throws IOException {
            throw new UnsupportedOperationException("no byte-range locks here");
        }

        /** Whether {@link #tryLock} and {@link #lockedByOthers} work; false for the portable implementation. */
        default boolean locksSupported() {
            return false;
        }

        /**
         * What this open file is, as "device:inode" of the open descriptor (not of a path that may have been
         * replaced since), or null where that cannot be told (the portable implementation).
         */
        default String fileKey() throws IOException {
            return null;
        }

        /**
         * A path that opens this same open file's inode again, whatever its name points at now
         * ({@code /proc/self/fd/N} on Linux); {@code openedAs} where there is no such path.
         */
        default Path reopenPath(Path openedAs) {
            return openedAs;
        }

        @Override
        void close() throws IOException;
    }
}
