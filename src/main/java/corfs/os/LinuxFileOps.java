package corfs.os;

import corfs.io.FileOps;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link FileOps} on Linux through libc: holes are real ({@code fallocate(PUNCH_HOLE)},
 * {@code lseek(SEEK_DATA/SEEK_HOLE)}), allocated size comes from {@code fstat}'s st_blocks, and the idle
 * I/O class is set with {@code ioprio_set}.
 *
 * <p>Loaded by name from {@code corfs.io.SystemFileOps}; {@link #load()} fails (and the portable
 * implementation is used) when libc cannot be bound or the platform is not Linux.
 *
 * <p>Thread-safety: every operation is positional on a private file descriptor; a {@link SparseFile} may
 * be used from many threads, and closed once (later calls fail with "closed").
 */
public final class LinuxFileOps implements FileOps {
    private static final Logger LOG = LoggerFactory.getLogger(LinuxFileOps.class);
    private static final int IOPRIO_WHO_PROCESS = 1;
    private static final int IOPRIO_CLASS_IDLE = 3;
    private static final int IOPRIO_CLASS_SHIFT = 13;

    /** Two off_t for copy_file_range (source, target), one pair per thread: allocated once, not per copy. */
    private static final ThreadLocal<Pointer> COPY_OFFSETS =
            ThreadLocal.withInitial(() -> Memory.allocateDirect(Libc.runtime(), 16, true));

    private final Libc.Native libc;
    private final AtomicBoolean ioprioWarned = new AtomicBoolean();

    private LinuxFileOps(Libc.Native libc) {
        this.libc = libc;
    }

    /** Binds libc; throws (UnsupportedOperationException or a LinkageError) when not on Linux. */
    public static LinuxFileOps load() {
        if (!System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) {
            throw new UnsupportedOperationException("not Linux");
        }
        return new LinuxFileOps(Libc.get());
    }

    @Override
    public SparseFile open(Path path, boolean writable) throws IOException {
        int flags = (writable ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_CLOEXEC;
        int fd = libc.open(path.toString(), flags, 0);
        if (fd < 0) {
            throw failure("open", path, Libc.errno());
        }
        return new NativeSparseFile(path, fd);
    }

    @Override
    public boolean setCurrentThreadIdleIoPriority() {
        long nr = Libc.ioprioSetSyscall();
        if (nr < 0) {
            return false;
        }
        int tid = libc.gettid();
        long rc = libc.syscall(nr, IOPRIO_WHO_PROCESS, tid, (long) IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
        if (rc != 0) {
            int e = Libc.errno();
            if (ioprioWarned.compareAndSet(false, true)) {
                LOG.warn("cannot set idle I/O priority: {}", Libc.message(e));
            }
            return false;
        }
        return true;
    }

    /**
     * Opens with O_NONBLOCK (a FIFO's open does not wait for a writer) and O_NOFOLLOW, then checks that what
     * was opened is a regular file (fstat) before reading: no window between a check and the open.
     */
    @Override
    public byte[] readRegularFile(Path path, int maxBytes) throws IOException {
        // What is seen not to be a regular file is refused unopened: opening a FIFO releases a writer waiting on
        // it, opening a device has effects of its own (a terminal, a watchdog, a tape). The fstat below is the
        // check that counts: something swapped in after this one is opened, but never blocks nor is read.
        if (java.nio.file.Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                && !java.nio.file.Files.isRegularFile(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new NotRegularFileException(path);
        }
        int fd = libc.open(path.toString(),
                Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.O_NOCTTY | Libc.oNoFollow(), 0);
        if (fd < 0) {
            int e = Libc.errno();
            if (e == Libc.ENOENT) {
                throw new java.nio.file.NoSuchFileException(path.toString());
            }
            if (e == Libc.ELOOP) {
                throw new NotRegularFileException(path);
            }
            throw failure("open", path, e);
        }
        try {
            Pointer stat = Memory.allocateDirect(Libc.runtime(), Libc.STAT_SIZE);
            if (libc.fstat(fd, stat) != 0) {
                throw failure("stat", path, Libc.errno());
            }
            if ((stat.getInt(Libc.statModeOffset()) & Libc.S_IFMT) != Libc.S_IFREG) {
                throw new NotRegularFileException(path);
            }
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            Pointer buf = Memory.allocateDirect(Libc.runtime(), 1 << 16);
            long offset = 0;
            while (offset < maxBytes) {
                long n = libc.pread(fd, buf, Math.min(1 << 16, maxBytes - offset), offset);
                if (n < 0) {
                    int e = Libc.errno();
                    if (e == Libc.EINTR) {
                        continue;
                    }
                    throw failure("read", path, e);
                }
                if (n == 0) {
                    break;
                }
                byte[] chunk = new byte[(int) n];
                buf.get(0, chunk, 0, (int) n);
                out.write(chunk, 0, (int) n);
                offset += n;
            }
            return out.toByteArray();
        } finally {
            libc.close(fd);
        }
    }

    static IOException failure(String op, Path path, int errno) {
        String msg = op + " " + path + ": " + Libc.message(errno);
        if (errno == Libc.ENOSPC) {
            return new corfs.CorfsException(corfs.CorfsException.Reason.NO_SPACE, msg); // classified by errno
        }
        return errno == Libc.EOPNOTSUPP ? new UnsupportedIoException(msg) : new IOException(msg);
    }

    /** An operation the file's filesystem does not support (EOPNOTSUPP), such as punching holes on some. */
    public static final class UnsupportedIoException extends IOException {
        UnsupportedIoException(String message) {
            super(message);
        }
    }

    private final class NativeSparseFile implements SparseFile {
        private final Path path;
        private final int fd;
        private final AtomicBoolean closed = new AtomicBoolean();

        NativeSparseFile(Path path, int fd) {
            this.path = path;
            this.fd = fd;
        }

        private void ensureOpen() throws IOException {
            if (closed.get()) {
                throw new IOException(path + ": closed");
            }
        }

        @Override
        public void punchHole(long offset, long length) throws IOException {
            ensureOpen();
            if (length <= 0) {
                return;
            }
            int rc;
            do {
                rc = libc.fallocate(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            } while (rc != 0 && Libc.errno() == Libc.EINTR);
            if (rc != 0) {
                throw failure("punch hole in", path, Libc.errno());
            }
        }

        @Override
        public long nextData(long offset) throws IOException {
            ensureOpen();
            long r = libc.lseek(fd, offset, Libc.SEEK_DATA);
            if (r < 0) {
                int e = Libc.errno();
                if (e == Libc.ENXIO) {
                    return -1;
                }
                throw failure("seek data in", path, e);
            }
            return r;
        }

        @Override
        public long nextHole(long offset) throws IOException {
            ensureOpen();
            long r = libc.lseek(fd, offset, Libc.SEEK_HOLE);
            if (r < 0) {
                int e = Libc.errno();
                if (e == Libc.ENXIO) {
                    return Math.max(offset, size());
                }
                throw failure("seek hole in", path, e);
            }
            return r;
        }

        private long size() throws IOException {
            return java.nio.file.Files.size(path);
        }

        @Override
        public boolean copySupported() {
            return true;
        }

        @Override
        public long copyTo(long offset, SparseFile target, long targetOffset, long length) throws IOException {
            ensureOpen();
            if (!(target instanceof NativeSparseFile t)) {
                return -1;
            }
            t.ensureOpen();
            if (offset < 0 || targetOffset < 0 || length < 0) {
                throw new IllegalArgumentException("copy of " + length + " bytes at " + offset + " to " + targetOffset);
            }
            if (length == 0) {
                return 0;
            }
            Pointer offsets = COPY_OFFSETS.get();
            offsets.putLong(0, offset);
            offsets.putLong(8, targetOffset);
            long n;
            do {
                n = libc.copy_file_range(fd, offsets, t.fd, offsets.slice(8), length, 0);
            } while (n < 0 && Libc.errno() == Libc.EINTR);
            if (n >= 0) {
                return n;
            }
            int e = Libc.errno();
            if (e == Libc.EXDEV || e == Libc.ENOSYS || e == Libc.EOPNOTSUPP || e == Libc.EINVAL) {
                return -1;
            }
            if (e == Libc.ENOSPC) {
                throw failure("copy into", t.path, e);
            }
            throw failure("copy from " + path + " to", t.path, e);
        }

        @Override
        public void adviseSequential() {
            if (closed.get()) {
                return;
            }
            int rc = libc.posix_fadvise(fd, 0, 0, Libc.POSIX_FADV_SEQUENTIAL);
            if (rc != 0) {
                LOG.debug("{}: posix_fadvise(SEQUENTIAL): {}", path, Libc.message(rc));
            }
        }

        @Override
        public long allocatedBytes() throws IOException {
            ensureOpen();
            Pointer stat = Memory.allocateDirect(Libc.runtime(), Libc.STAT_SIZE);
            if (libc.fstat(fd, stat) != 0) {
                throw failure("stat", path, Libc.errno());
            }
            return stat.getLong(Libc.STAT_BLOCKS_OFFSET) * 512L;
        }

        @Override
        public String fileKey() throws IOException {
            ensureOpen();
            Pointer stat = Memory.allocateDirect(Libc.runtime(), Libc.STAT_SIZE);
            if (libc.fstat(fd, stat) != 0) {
                throw failure("stat", path, Libc.errno());
            }
            // st_dev and st_ino are the first two 8-byte fields on x86_64 and aarch64 alike
            return Long.toUnsignedString(stat.getLong(0)) + ":" + Long.toUnsignedString(stat.getLong(8));
        }

        @Override
        public Path reopenPath(Path openedAs) {
            return Path.of("/proc/self/fd/" + fd);
        }

        @Override
        public boolean locksSupported() {
            return true;
        }

        @Override
        public boolean tryLock(long start, long length, LockMode mode) throws IOException {
            ensureOpen();
            short type = switch (mode) {
                case SHARED -> Libc.F_RDLCK;
                case EXCLUSIVE -> Libc.F_WRLCK;
                case NONE -> Libc.F_UNLCK;
            };
            Pointer lock = flock(type, start, length);
            int rc;
            do {
                rc = libc.fcntl(fd, Libc.F_OFD_SETLK, lock);
            } while (rc != 0 && Libc.errno() == Libc.EINTR);
            if (rc == 0) {
                return true;
            }
            int e = Libc.errno();
            if (e == Libc.EAGAIN || e == Libc.EACCES) {
                return false;
            }
            throw failure("lock bytes " + start + "+" + length + " of", path, e);
        }

        @Override
        public boolean lockedByOthers(long start, long length) throws IOException {
            ensureOpen();
            Pointer lock = flock(Libc.F_WRLCK, start, length);
            int rc;
            do {
                rc = libc.fcntl(fd, Libc.F_OFD_GETLK, lock);
            } while (rc != 0 && Libc.errno() == Libc.EINTR);
            if (rc != 0) {
                throw failure("test lock on bytes " + start + "+" + length + " of", path, Libc.errno());
            }
            return lock.getShort(0) != Libc.F_UNLCK;
        }

        private Pointer flock(short type, long start, long length) {
            Pointer p = Memory.allocateDirect(Libc.runtime(), Libc.FLOCK_SIZE, true);
            p.putShort(0, type);
            p.putShort(2, (short) 0); // SEEK_SET
            p.putLong(8, start);
            p.putLong(16, length);
            p.putInt(24, 0); // l_pid must be 0 for OFD locks
            return p;
        }

        @Override
        public void close() throws IOException {
            if (closed.compareAndSet(false, true) && libc.close(fd) != 0) {
                throw failure("close", path, Libc.errno());
            }
        }
    }
}
