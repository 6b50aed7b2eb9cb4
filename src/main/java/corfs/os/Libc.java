package corfs.os;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Platform;
import jnr.ffi.Pointer;
import jnr.ffi.annotations.SaveError;

/**
 * The few libc functions corfs calls directly, bound once through jnr-ffi.
 *
 * <p>Every binding saves errno ({@link #errno()} reads it right after a failing call on the same thread).
 * Structure layouts used here are those of Linux on x86_64 and aarch64, which agree on what is read.
 */
public final class Libc {
    /** open(2) flags. */
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0x40;
    public static final int O_APPEND = 0x400;
    public static final int O_NONBLOCK = 0x800;
    /** open(2)'s O_NOCTTY (0400 on x86_64 and aarch64): a terminal opened never becomes the controlling one. */
    public static final int O_NOCTTY = 0400;
    public static final int O_CLOEXEC = 0x80000;
    /** lseek(2) whence values for sparse files. */
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    /** fallocate(2) modes. */
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    /** fcntl(2) open file description locks, and lock types. */
    public static final int F_OFD_GETLK = 36;
    public static final int F_OFD_SETLK = 37;
    public static final short F_RDLCK = 0;
    public static final short F_WRLCK = 1;
    public static final short F_UNLCK = 2;
    /** {@code struct flock}: short l_type, short l_whence, off_t l_start @8, off_t l_len @16, pid_t l_pid @24. */
    static final int FLOCK_SIZE = 32;
    /** errno values corfs looks at. */
    public static final int EINTR = 4;
    public static final int EAGAIN = 11;
    public static final int EACCES = 13;
    public static final int ENOSPC = 28;
    public static final int ENXIO = 6;
    public static final int EOPNOTSUPP = 95;
    public static final int EXDEV = 18;
    public static final int EINVAL = 22;
    public static final int ENOSYS = 38;
    /** posix_fadvise(2) advice. */
    public static final int POSIX_FADV_SEQUENTIAL = 2;

    /** {@code struct stat}: st_blocks sits at byte 64 on both x86_64 and aarch64; 144 bytes is the larger size. */
    static final int STAT_SIZE = 256;
    static final int STAT_BLOCKS_OFFSET = 64;

    /** The raw binding. Callers go through the static helpers, which add errno handling. */
    public interface Native {
        @SaveError int open(String path, int flags, int mode);
        @SaveError int close(int fd);
        @SaveError int dup2(int oldfd, int newfd);
        @SaveError int fallocate(int fd, int mode, long offset, long length);
        @SaveError long lseek(int fd, long offset, int whence);
        @SaveError int fcntl(int fd, int cmd, Pointer arg);
        @SaveError int fstat(int fd, Pointer stat);
        @SaveError long syscall(long number, long a, long b, long c);
        int gettid();
        int getuid();
        int getgid();
        int getpid();
        String strerror(int errnum);
        @SaveError long pread(int fd, Pointer buf, long count, long offset);
        @SaveError long pwrite(int fd, Pointer buf, long count, long offset);
        /** {@code off_in}/{@code off_out} point at an off_t each; the file positions are not used. */
        @SaveError long copy_file_range(int fdIn, Pointer offIn, int fdOut, Pointer offOut, long len, int flags);
        /** Returns the error number itself (0 on success); errno is not set. */
        int posix_fadvise(int fd, long offset, long len, int advice);
    }

    private static final Native LIBC = LibraryLoader.create(Native.class).failImmediately().load("c");
    private static final jnr.ffi.Runtime RUNTIME = jnr.ffi.Runtime.getRuntime(LIBC);

    private Libc() {
    }

    /** The bound libc; loading this class fails (LinkageError/UnsatisfiedLinkError) where libc cannot be bound. */
    public static Native get() {
        return LIBC;
    }

    public static jnr.ffi.Runtime runtime() {
        return RUNTIME;
    }

    /** errno of the last failing call made by this thread through this binding. */
    public static int errno() {
        return RUNTIME.getLastError();
    }

    /** A readable message for errno {@code e} (strerror). */
    public static String message(int e) {
        String s = LIBC.strerror(e);
        return s != null ? s : "errno " + e;
    }

    /**
     * Points this process's standard output (fd 1) at {@code path}, appending, so that nothing written to
     * stdout later (by Java or native code) reaches whoever held the old one, such as a parent's pipe.
     */
    public static void redirectStdout(java.nio.file.Path path) throws java.io.IOException {
        int fd = LIBC.open(path.toString(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            throw new java.io.IOException("open " + path + ": " + message(errno()));
        }
        try {
            if (LIBC.dup2(fd, 1) < 0) {
                throw new java.io.IOException("dup2 " + path + ": " + message(errno()));
            }
        } finally {
            LIBC.close(fd);
        }
    }

    /** errno of open(O_NOFOLLOW) on a symbolic link (the same on x86_64 and aarch64). */
    public static final int ELOOP = 40;
    public static final int ENOENT = 2;
    /** st_mode's file-type bits and the regular-file type (the same everywhere). */
    public static final int S_IFMT = 0170000;
    public static final int S_IFREG = 0100000;

    /** Offset of st_mode in struct stat: x86_64 puts st_nlink (8 bytes) before it, aarch64 after it. */
    static int statModeOffset() {
        return Platform.getNativePlatform().getCPU() == Platform.CPU.AARCH64 ? 16 : 24;
    }

    /** open(2)'s O_NOFOLLOW for this CPU (x86_64 0400000, aarch64 0100000). */
    public static int oNoFollow() {
        return Platform.getNativePlatform().getCPU() == Platform.CPU.AARCH64 ? 0x8000 : 0x20000;
    }

    /** The ioprio_set system call number for this CPU, or -1 when unknown. */
    static long ioprioSetSyscall() {
        return switch (Platform.getNativePlatform().getCPU()) {
            case X86_64 -> 251;
            case AARCH64 -> 30;
            default -> -1;
        };
    }
}
