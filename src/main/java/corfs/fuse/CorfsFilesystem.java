package corfs.fuse;

import com.kenai.jffi.MemoryIO;
import corfs.control.ControlFile;
import corfs.engine.LeafDisk;
import corfs.os.Libc;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import jnr.ffi.Pointer;
import jnr.ffi.types.mode_t;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import ru.serce.jnrfuse.ErrorCodes;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.Statvfs;
import ru.serce.jnrfuse.struct.Timespec;

/**
 * The FUSE adapter: a flat root directory holding one raw file per leaf and the {@code control} file.
 *
 * <p>Every callback is thin: resolve the path, delegate to {@link LeafDisk} or the {@link ControlFile},
 * map a failure to an errno in {@link Errno}. Nothing is thrown into native code: each callback catches
 * {@link Throwable}. Callbacks arrive on the {@link FuseLoop} workers, several at once; the only state held
 * here is the immutable leaf table; per-open control state lives in {@link ControlFile}, keyed by the open's fh.
 *
 * <p>Data moves without a Java heap copy: the FUSE buffer is wrapped in a direct {@link ByteBuffer} over
 * the same memory, valid only during the callback.
 *
 * <p>Deliberately not implemented: {@code lock}/{@code flock} (the kernel then handles POSIX and OFD locks
 * itself, which QEMU's image locking needs), {@code read_buf}/{@code write_buf}.
 */
public final class CorfsFilesystem extends FuseStubFS {
    private static final Logger LOG = LoggerFactory.getLogger(CorfsFilesystem.class);
    /** The control file's name; no leaf may be named so. */
    public static final String CONTROL = "control";
    private static final String CONTROL_PATH = "/" + CONTROL;
    private static final int FALLOC_FL_KEEP_SIZE = 0x01;
    private static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    private static final int FALLOC_FL_ZERO_RANGE = 0x10;
    private static final int BLOCK = 4096;

    private final Map<String, LeafDisk> leaves;
    private final List<LeafDisk> ordered;
    private final ControlFile control;
    private final boolean readOnly;
    private final long uid;
    private final long gid;
    private final long mountedAtSeconds = System.currentTimeMillis() / 1000;
    /** Counted down by libfuse's {@code init}: the kernel and the loop have shaken hands. */
    private final java.util.concurrent.CountDownLatch initialized = new java.util.concurrent.CountDownLatch(1);

    CorfsFilesystem(List<LeafDisk> disks, ControlFile control, boolean readOnly) {
        Map<String, LeafDisk> byPath = new java.util.LinkedHashMap<>();
        for (LeafDisk d : disks) {
            if (d.name().equals(CONTROL) || d.name().contains("/")) {
                throw new IllegalArgumentException("a leaf cannot be exposed as '" + d.name() + "'");
            }
            if (byPath.putIfAbsent("/" + d.name(), d) != null) {
                throw new IllegalArgumentException("two leaves have the same file name " + d.name());
            }
        }
        this.leaves = Map.copyOf(byPath);
        this.ordered = List.copyOf(disks);
        this.control = control;
        this.readOnly = readOnly;
        this.uid = Libc.get().getuid();
        this.gid = Libc.get().getgid();
    }

    /**
     * A native copy of libfuse's {@code struct fuse_operations}, which jnr-fuse filled with this filesystem's
     * callbacks when it was constructed (in Java heap memory, copied for the call by its own {@code mount()}):
     * what {@code fuse_setup} takes (libfuse copies it again). The function pointers in it stay valid as long
     * as this object is reachable.
     */
    Pointer operations() {
        Pointer heap = jnr.ffi.Struct.getMemory(fuseOperations);
        int size = jnr.ffi.Struct.size(fuseOperations);
        byte[] bytes = new byte[size];
        heap.get(0, bytes, 0, size);
        Pointer ops = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), size, true);
        ops.put(0, bytes, 0, size);
        return ops;
    }

    /** {@code sizeof(struct fuse_operations)} as jnr-fuse declares it. */
    long operationsSize() {
        return jnr.ffi.Struct.size(fuseOperations);
    }

    /** True once libfuse has called {@code init}, i.e. the filesystem is really being served. */
    boolean initialized() {
        return initialized.getCount() == 0;
    }

    @Override
    public Pointer init(Pointer conn) {
        initialized.countDown();
        LOG.debug("FUSE init");
        return null;
    }

    /**
     * True if every cluster of {@code [offset, offset + length)} (within the disk) is local, so serving it
     * never waits on the backing (a bitmap bit per cluster: volatile reads only). Tells the FUSE pool which
     * requests may hang on a backing with no timeout ({@link FuseLoop#waitsOnBacking}).
     */
    private static boolean allLocal(LeafDisk d, long offset, long length) {
        long end = Math.min(d.size(), offset + Math.max(0, length));
        if (d.backing() == null || offset >= end || offset < 0) {
            return true;
        }
        int cs = d.clusterSize();
        return d.image().local().allSet(offset / cs, (end - 1) / cs + 1);
    }

    private static ByteBuffer view(Pointer buf, long size) {
        return MemoryIO.getInstance().newDirectByteBuffer(buf.address(), (int) size);
    }

    @Override
    public int getattr(String path, FileStat stat) {
        try {
            if (path.equals("/")) {
                stat.st_mode.set(FileStat.S_IFDIR | 0755);
                stat.st_nlink.set(2);
                fillOwner(stat, mountedAtSeconds * 1000);
                return 0;
            }
            if (path.equals(CONTROL_PATH)) {
                stat.st_mode.set(FileStat.S_IFREG | 0600);
                stat.st_nlink.set(1);
                stat.st_size.set(0);
                fillOwner(stat, System.currentTimeMillis());
                return 0;
            }
            LeafDisk d = leaves.get(path);
            if (d == null) {
                return -ErrorCodes.ENOENT();
            }
            stat.st_mode.set(FileStat.S_IFREG | (readOnly || d.readOnly() ? 0400 : 0600));
            stat.st_nlink.set(1);
            stat.st_size.set(d.size());
            stat.st_blksize.set(BLOCK);
            stat.st_blocks.set((d.allocatedBytes() + 511) / 512);
            fillOwner(stat, d.modifiedMillis());
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "getattr", path);
        }
    }

    private void fillOwner(FileStat stat, long millis) {
        stat.st_uid.set(uid);
        stat.st_gid.set(gid);
        for (Timespec ts : new Timespec[] {stat.st_mtim, stat.st_ctim, stat.st_atim}) {
            ts.tv_sec.set(millis / 1000);
            ts.tv_nsec.set((millis % 1000) * 1_000_000L);
        }
    }

    @Override
    public int readdir(String path, Pointer buf, FuseFillDir filter, @off_t long offset, FuseFileInfo fi) {
        try {
            if (!path.equals("/")) {
                return -ErrorCodes.ENOTDIR();
            }
            filter.apply(buf, ".", null, 0);
            filter.apply(buf, "..", null, 0);
            for (LeafDisk d : ordered) {
                filter.apply(buf, d.name(), null, 0);
            }
            filter.apply(buf, CONTROL, null, 0);
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "readdir", path);
        }
    }

    @Override
    public int open(String path, FuseFileInfo fi) {
        try {
            boolean write = FileInfoAccess.wantsWrite(fi);
            if (path.equals(CONTROL_PATH)) {
                long handle = control.openHandle().id();
                FileInfoAccess.setFh(fi, handle);
                FileInfoAccess.setDirectIoNonSeekable(fi);
                return 0;
            }
            LeafDisk d = leaves.get(path);
            if (d == null) {
                return -ErrorCodes.ENOENT();
            }
            if (write && (readOnly || d.readOnly())) {
                return -ErrorCodes.EROFS();
            }
            FileInfoAccess.setFh(fi, 0);
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "open", path);
        }
    }

    @Override
    public int read(String path, Pointer buf, @size_t long size, @off_t long offset, FuseFileInfo fi) {
        try {
            LeafDisk d = leaves.get(path);
            if (d != null) {
                ByteBuffer dst = view(buf, size);
                FuseLoop.waitsOnBacking(!allLocal(d, offset, size));
                int total = 0;
                while (dst.hasRemaining()) {
                    int n = d.read(dst, offset + total);
                    if (n <= 0) {
                        break;
                    }
                    total += n;
                }
                return total;
            }
            if (path.equals(CONTROL_PATH)) {
                return control.read(FileInfoAccess.fh(fi), view(buf, size), offset);
            }
            return -ErrorCodes.ENOENT();
        } catch (Throwable t) {
            return Errno.toErrno(t, "read", path);
        }
    }

    @Override
    public int write(String path, Pointer buf, @size_t long size, @off_t long offset, FuseFileInfo fi) {
        try {
            LeafDisk d = leaves.get(path);
            if (d != null) {
                if (readOnly || d.readOnly()) {
                    return -ErrorCodes.EROFS();
                }
                long room = d.size() - offset;
                if (room <= 0 && size > 0) {
                    return -ErrorCodes.EFBIG();
                }
                // A write across the end is short, like on any file that cannot grow; the next one gets EFBIG.
                ByteBuffer src = view(buf, Math.min(size, Math.max(room, 0)));
                FuseLoop.waitsOnBacking(!allLocal(d, offset, src.remaining()));
                int total = 0;
                while (src.hasRemaining()) {
                    int n = d.write(src, offset + total);
                    if (n <= 0) {
                        break;
                    }
                    total += n;
                }
                return total > 0 || size == 0 ? total : -ErrorCodes.EIO();
            }
            if (path.equals(CONTROL_PATH)) {
                return control.write(FileInfoAccess.fh(fi), view(buf, size));
            }
            return -ErrorCodes.ENOENT();
        } catch (Throwable t) {
            return Errno.toErrno(t, "write", path);
        }
    }

    @Override
    public int flush(String path, FuseFileInfo fi) {
        try {
            if (path.equals(CONTROL_PATH)) {
                control.flush(FileInfoAccess.fh(fi));
            }
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "flush", path);
        }
    }

    @Override
    public int release(String path, FuseFileInfo fi) {
        try {
            if (path.equals(CONTROL_PATH)) {
                control.release(FileInfoAccess.fh(fi));
            }
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "release", path);
        }
    }

    @Override
    public int fsync(String path, int isdatasync, FuseFileInfo fi) {
        try {
            LeafDisk d = leaves.get(path);
            if (d != null) {
                d.flush();
            }
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "fsync", path);
        }
    }

    @Override
    public int truncate(String path, @off_t long size) {
        return resize(path, size, "truncate");
    }

    @Override
    public int ftruncate(String path, @off_t long size, FuseFileInfo fi) {
        return resize(path, size, "ftruncate");
    }

    /** The control file accepts O_TRUNC (as from {@code echo x > control}); a leaf keeps its size. */
    private int resize(String path, long size, String op) {
        try {
            if (path.equals(CONTROL_PATH)) {
                return 0;
            }
            LeafDisk d = leaves.get(path);
            if (d == null) {
                return -ErrorCodes.ENOENT();
            }
            if (readOnly || d.readOnly()) {
                return -ErrorCodes.EROFS();
            }
            if (size != d.size()) {
                LOG.debug("{} {} to {} refused: the virtual disk has a fixed size {}", op, path, size, d.size());
                return -ErrorCodes.EPERM();
            }
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, op, path);
        }
    }

    @Override
    public int fallocate(String path, int mode, @off_t long off, @off_t long length, FuseFileInfo fi) {
        try {
            LeafDisk d = leaves.get(path);
            if (d == null) {
                return path.equals(CONTROL_PATH) ? -ErrorCodes.EOPNOTSUPP() : -ErrorCodes.ENOENT();
            }
            if (readOnly || d.readOnly()) {
                return -ErrorCodes.EROFS();
            }
            if (off < 0 || length <= 0) {
                return -ErrorCodes.EINVAL();
            }
            long end = off + length;
            boolean keepSize = (mode & FALLOC_FL_KEEP_SIZE) != 0;
            boolean zeroes = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
                    || mode == FALLOC_FL_ZERO_RANGE || mode == (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
            if (zeroes) {
                if (end > d.size() && !keepSize) {
                    return -ErrorCodes.EFBIG();
                }
                long clipped = Math.min(end, d.size());
                if (clipped > off) {
                    d.zeroRange(off, clipped - off);
                }
                return 0;
            }
            if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE) {
                // Preallocation: the disk is already its full size; growing it is not allowed.
                return end <= d.size() || keepSize ? 0 : -ErrorCodes.EFBIG();
            }
            return -ErrorCodes.EOPNOTSUPP();
        } catch (Throwable t) {
            return Errno.toErrno(t, "fallocate", path);
        }
    }

    @Override
    public int statfs(String path, Statvfs stbuf) {
        try {
            long total = 0;
            long used = 0;
            for (LeafDisk d : ordered) {
                total += d.size();
                used += Math.min(d.size(), d.allocatedBytes());
            }
            long blocks = (total + BLOCK - 1) / BLOCK;
            long free = Math.max(0, blocks - (used + BLOCK - 1) / BLOCK);
            stbuf.f_bsize.set(BLOCK);
            stbuf.f_frsize.set(BLOCK);
            stbuf.f_blocks.set(blocks);
            stbuf.f_bfree.set(free);
            stbuf.f_bavail.set(free);
            stbuf.f_files.set(ordered.size() + 2);
            stbuf.f_ffree.set(0);
            stbuf.f_favail.set(0);
            stbuf.f_namemax.set(255);
            return 0;
        } catch (Throwable t) {
            return Errno.toErrno(t, "statfs", path);
        }
    }

    @Override
    public int utimens(String path, Timespec[] timespec) {
        return exists(path) ? 0 : -ErrorCodes.ENOENT();
    }

    @Override
    public int chmod(String path, @mode_t long mode) {
        return exists(path) ? -ErrorCodes.EPERM() : -ErrorCodes.ENOENT();
    }

    @Override
    public int chown(String path, long uid, long gid) {
        return exists(path) ? -ErrorCodes.EPERM() : -ErrorCodes.ENOENT();
    }

    @Override
    public int create(String path, @mode_t long mode, FuseFileInfo fi) {
        return -ErrorCodes.EPERM();
    }

    @Override
    public int mknod(String path, @mode_t long mode, long rdev) {
        return -ErrorCodes.EPERM();
    }

    @Override
    public int mkdir(String path, @mode_t long mode) {
        return -ErrorCodes.EPERM();
    }

    @Override
    public int unlink(String path) {
        return exists(path) ? -ErrorCodes.EPERM() : -ErrorCodes.ENOENT();
    }

    @Override
    public int rename(String oldpath, String newpath) {
        return -ErrorCodes.EPERM();
    }

    private boolean exists(String path) {
        return path.equals("/") || path.equals(CONTROL_PATH) || leaves.containsKey(path);
    }
}
