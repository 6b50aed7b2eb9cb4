package corfs.backing;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.io.FileOps;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.concurrent.TimeUnit;
import org.slf4j.LoggerFactory;

/**
 * A backing that is a plain file (a raw image on local disk or an NFS share), opened read-only.
 *
 * <p>Thread-safety: all I/O is positional on one {@link FileChannel}. The channel must never be used by
 * a thread that can be interrupted: NIO closes a channel when a thread blocked in it is interrupted.
 * corfs never interrupts its I/O threads; jobs are stopped through their state instead.
 */
public final class FileBacking implements Backing {
    private final Path path;
    private final FileChannel channel;
    private final FileOps.SparseFile sparse;
    private final long size;

    private final FileOps fileOps;
    /** Guards the transitions of the reader's locks (open, a writer opening and closing). */
    private final Object lockState = new Object();
    private boolean lockWarned;
    /** False once the kernel refused an in-kernel copy from this file ({@link #copyTo}). */
    private volatile boolean copyWorks = true;
    /** Reads a local file or NFS share serves well at once. */
    private static final int MAX_IN_FLIGHT = 32;

    private FileBacking(Path path, FileChannel channel, FileOps.SparseFile sparse, long size, FileOps fileOps) {
        this.fileOps = fileOps;
        this.path = path;
        this.channel = channel;
        this.sparse = sparse;
        this.size = size;
    }

    /** Opens {@code path} read-only. */
    public static FileBacking open(Path path, FileOps fileOps) throws IOException {
        Path absolute = path.toAbsolutePath().normalize();
        if (!Files.isRegularFile(absolute)) {
            throw new CorfsException(Reason.NOT_FOUND, "backing " + absolute + " is missing or not a regular file");
        }
        FileOps.SparseFile sparse;
        try {
            sparse = fileOps.open(absolute, false);
        } catch (AccessDeniedException e) {
            throw new CorfsException(Reason.NOT_PERMITTED, "backing " + absolute + " is not readable", e);
        }
        FileChannel channel = null;
        try {
            // the same inode as the descriptor that locks and answers SEEK_DATA, whatever the name says meanwhile
            channel = fileOps.openChannel(sparse.reopenPath(absolute), StandardOpenOption.READ);
            FileBacking b = new FileBacking(absolute, channel, sparse, channel.size(), fileOps);
            b.lockForReading();
            sparse.adviseSequential(); // the descriptor that streams copy from (copyTo)
            return b;
        } catch (IOException | RuntimeException e) {
            try (FileChannel c = channel; FileOps.SparseFile s = sparse) {
                throw e;
            }
        }
    }

    /** The identity of the file at {@code path} now. */
    public static BackingIdentity identityOf(Path path) throws IOException {
        long size = Files.size(path);
        FileTime mtime = Files.getLastModifiedTime(path);
        long mtimeNanos = TimeUnit.SECONDS.toNanos(mtime.to(TimeUnit.SECONDS))
                + mtime.toInstant().getNano();
        Object inode = Files.getAttribute(path, "unix:ino");
        return BackingIdentity.file(size, mtimeNanos, ((Number) inode).longValue());
    }

    @Override
    public String location() {
        return path.toString();
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public BackingIdentity identity() throws IOException {
        return identityOf(path);
    }

    @Override
    public int maxInFlight() {
        return MAX_IN_FLIGHT;
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        if (offset < 0 || offset > size || dst.remaining() > size - offset) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "read of " + dst.remaining() + " bytes at " + offset
                    + " is outside backing " + path + " (" + size + " bytes)");
        }
        long pos = offset;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                throw new CorfsException(Reason.IO, "backing " + path + " ends at " + pos + ", before its "
                        + size + " bytes (it shrank since it was opened)");
            }
            pos += n;
        }
    }

    /**
     * In the kernel, through the descriptor that answers SEEK_DATA (advised sequential at open: its
     * read-ahead serves streams, while {@link #readFully} keeps its own descriptor and read-ahead state).
     * The first refusal (the target on another filesystem) turns it off for this backing.
     */
    @Override
    public boolean canCopyTo(FileOps.SparseFile target) {
        return copyWorks && sparse.copySupported() && target.copySupported();
    }

    @Override
    public boolean copyTo(long offset, int length, FileOps.SparseFile target, long targetOffset) throws IOException {
        if (!canCopyTo(target)) {
            return false;
        }
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "copy of " + length + " bytes at " + offset
                    + " is outside backing " + path + " (" + size + " bytes)");
        }
        long done = 0;
        while (done < length) {
            long n = sparse.copyTo(offset + done, target, targetOffset + done, length - done);
            if (n < 0) {
                copyWorks = false; // the caller copies through a buffer, over whatever this wrote
                return false;
            }
            if (n == 0) {
                throw new CorfsException(Reason.IO, "backing " + path + " ends at " + (offset + done)
                        + ", before its " + size + " bytes (it shrank since it was opened)");
            }
            done += n;
        }
        return true;
    }

    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        if (offset < 0 || offset >= size || max <= 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "allocation at " + offset + " (max " + max
                    + ") is outside backing " + path + " (" + size + " bytes)");
        }
        long end = max >= size - offset ? size : offset + max;
        long data = sparse.nextData(offset);
        if (data < 0) {
            // ENXIO means "no data after offset" or "offset is past the end": only a file still as long
            // as recorded makes it a hole. A shrunk backing is an error, never zeros.
            checkNotShrunk(offset);
            return new Allocation(Allocation.Kind.HOLE, end - offset);
        }
        if (data > offset) {
            return new Allocation(Allocation.Kind.HOLE, Math.min(data, end) - offset);
        }
        long hole = sparse.nextHole(offset);
        return new Allocation(Allocation.Kind.DATA, Math.max(offset + 1, Math.min(hole, end)) - offset);
    }

    private void checkNotShrunk(long offset) throws IOException {
        long now = channel.size();
        if (now < size) {
            throw new CorfsException(Reason.IO, "backing " + path + " is " + now + " bytes, shorter than its "
                    + size + " bytes when opened (it shrank): " + (offset >= now ? "nothing at " + offset
                    : "refusing to read it as a hole"));
        }
    }

    // ------------------------------------------------------------------ image locking
    // QEMU's scheme (block/file-posix.c), so that corfs and QEMU see each other: an open file holds a
    // shared OFD lock on byte 100 + p for each permission p it uses and on byte 200 + p for each it
    // denies others; permissions: 0 consistent read, 1 write, 2 write unchanged, 3 resize.

    private static final long PERM_BASE = 100;
    private static final long DENY_BASE = 200;
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int RESIZE = 3;
    private static final int PERMS = 4;

    /**
     * As a reader that needs the content unchanged: uses consistent read, denies write and resize; refused
     * (BUSY) while someone writes or resizes it, denies consistent reads, or holds it exclusively (a commit).
     */
    private void lockForReading() throws IOException {
        synchronized (lockState) {
            if (!locksWork(sparse)) {
                return;
            }
            boolean taken = sparse.tryLock(PERM_BASE + READ, 1, FileOps.LockMode.SHARED)
                    && sparse.tryLock(DENY_BASE + WRITE, 1, FileOps.LockMode.SHARED)
                    && sparse.tryLock(DENY_BASE + RESIZE, 1, FileOps.LockMode.SHARED);
            String conflict = !taken ? "holds it exclusively (a commit into it?)"
                    : sparse.lockedByOthers(PERM_BASE + WRITE, 1) ? "has it open for writing"
                    : sparse.lockedByOthers(PERM_BASE + RESIZE, 1) ? "may resize it"
                    : sparse.lockedByOthers(DENY_BASE + READ, 1) ? "forbids others to read it"
                    : null;
            if (conflict != null) {
                unlockAll(sparse);
                throw new CorfsException(Reason.BUSY, "backing " + path + " is in use: "
                        + LockHolders.describe(path) + " " + conflict);
            }
        }
    }

    private boolean locksWork(FileOps.SparseFile file) {
        if (file.locksSupported()) {
            return true;
        }
        if (!lockWarned) {
            lockWarned = true;
            LoggerFactory.getLogger(FileBacking.class).warn("backing {}: byte-range locks unavailable here; "
                    + "other users of the backing are not detected", path);
        }
        return false;
    }

    private static void unlockAll(FileOps.SparseFile file) throws IOException {
        file.tryLock(PERM_BASE, PERMS, FileOps.LockMode.NONE);
        file.tryLock(DENY_BASE, PERMS, FileOps.LockMode.NONE);
    }

    /**
     * Opens the backing for writing, refused unless this is its only user: the writer takes an exclusive
     * lock on every permission byte, which fails while any other open file (another leaf over the same
     * backing in this or another corfs process, qemu, qemu-img) holds a lock there. This backing's own
     * reader locks are dropped for the writer's lifetime and taken again when it closes.
     */
    @Override
    public Writer openWriter() throws IOException {
        FileOps.SparseFile exclusive;
        try {
            exclusive = fileOps.open(path, true); // by name: checked below to be the file this backing reads
        } catch (java.nio.file.FileSystemException e) {
            throw new CorfsException(Reason.READ_ONLY, "backing " + path + " cannot be opened for writing: "
                    + e.getMessage(), e);
        }
        FileChannel writer = null;
        try {
            // The name may have been replaced or pointed elsewhere (a symlink planted by whoever owns the
            // directory) since the mount opened it: writing there would change another file and record its
            // identity as ours. Write only to the inode this backing reads.
            String reading = sparse.fileKey();
            String named = exclusive.fileKey();
            if (reading != null && !reading.equals(named)) {
                throw new CorfsException(Reason.BUSY, "backing " + path + " is no longer the file this mount reads"
                        + " (replaced or redirected since it was opened); commit refused: unmount, check the backing,"
                        + " mount again");
            }
            writer = fileOps.openChannel(exclusive.reopenPath(path), StandardOpenOption.WRITE);
            synchronized (lockState) {
                if (locksWork(sparse)) {
                    unlockAll(sparse);
                    boolean alone = exclusive.tryLock(PERM_BASE, PERMS, FileOps.LockMode.EXCLUSIVE)
                            && exclusive.tryLock(DENY_BASE, PERMS, FileOps.LockMode.EXCLUSIVE);
                    if (!alone) {
                        exclusive.close(); // drops what it took, so the holders found are the others
                        String holders = LockHolders.describe(path);
                        relockForReading();
                        throw new CorfsException(Reason.BUSY, "backing " + path + " is in use by " + holders
                                + "; a commit would change data under it (unmount the other leaves first)");
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            try (FileChannel w = writer; FileOps.SparseFile x = exclusive) {
                throw e;
            }
        }
        FileOps.SparseFile held = exclusive;
        FileChannel channelToWrite = writer;
        return new Writer() {
            private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

            @Override
            public void writeFully(ByteBuffer src, long offset) throws IOException {
                long pos = offset;
                while (src.hasRemaining()) {
                    pos += channelToWrite.write(src, pos);
                }
            }

            @Override
            public void flush() throws IOException {
                channelToWrite.force(true);
            }

            @Override
            public void close() throws IOException {
                if (!closed.compareAndSet(false, true)) {
                    return;
                }
                try (channelToWrite) {
                    synchronized (lockState) {
                        held.close();
                        if (locksWork(sparse)) {
                            relockForReading();
                        }
                    }
                }
            }
        };
    }

    /** Takes the reader's locks back after a writer; a failure only loses detection, so it is logged. */
    private void relockForReading() {
        try {
            if (!(sparse.tryLock(PERM_BASE + READ, 1, FileOps.LockMode.SHARED)
                    && sparse.tryLock(DENY_BASE + WRITE, 1, FileOps.LockMode.SHARED)
                    && sparse.tryLock(DENY_BASE + RESIZE, 1, FileOps.LockMode.SHARED))) {
                LoggerFactory.getLogger(FileBacking.class).warn("backing {}: cannot take its read locks again: {}",
                        path, LockHolders.describe(path));
            }
        } catch (IOException | RuntimeException e) {
            LoggerFactory.getLogger(FileBacking.class).warn("backing {}: cannot take its read locks again: {}",
                    path, e.toString());
        }
    }

    @Override
    public void close() throws IOException {
        try (channel; sparse) {
            // both closed, channel last
        }
    }
}
