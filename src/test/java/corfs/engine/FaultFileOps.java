package corfs.engine;

import corfs.io.FileOps;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@link FileOps} that injects faults into the channels opened through it, switchable at runtime:
 * reads of one file failing with EIO in a byte range, reads of one file blocking on a latch (a backing
 * that hangs), writes to one file failing with ENOSPC. Files are matched by file name. Sparse
 * operations and priorities are the system's.
 */
public final class FaultFileOps implements FileOps {
    private final FileOps base = FileOps.system();
    private volatile String failReadsOf;
    private volatile long failFrom;
    private volatile long failTo;
    private volatile String hangReadsOf;
    private volatile CountDownLatch hang;
    private volatile String noSpaceOn;
    private volatile String tornWriteOf;
    private volatile int tornBytes;

    /** Reads of {@code fileName} that overlap [from, to) fail with "Input/output error". */
    public void failReads(String fileName, long from, long to) {
        failFrom = from;
        failTo = to;
        failReadsOf = fileName;
    }

    /** Reads of {@code fileName} block until the returned latch is opened (30 s at most). */
    public CountDownLatch hangReads(String fileName) {
        CountDownLatch latch = new CountDownLatch(1);
        hang = latch;
        hangReadsOf = fileName;
        return latch;
    }

    /** Writes to {@code fileName} fail with "No space left on device". */
    public void noSpace(String fileName) {
        noSpaceOn = fileName;
    }

    /**
     * The next write to {@code fileName} lands only its first {@code bytes} bytes (a short write, as the
     * kernel answers on a filesystem that is filling up); every later one fails with "No space left on
     * device", until {@link #clear}.
     */
    public void tornWrite(String fileName, int bytes) {
        tornBytes = bytes;
        tornWriteOf = fileName;
    }

    /** Clears every fault; a blocked read stays blocked until its latch opens. */
    public void clear() {
        failReadsOf = null;
        hangReadsOf = null;
        noSpaceOn = null;
        tornWriteOf = null;
    }

    @Override
    public FileChannel openChannel(Path path, OpenOption... options) throws IOException {
        String name = path.getFileName().toString();
        return new DelegatingFileChannel(path, FileChannel.open(path, options)) {
            @Override
            protected void beforeRead(long position, int length) throws IOException {
                if (name.equals(failReadsOf) && position < failTo && position + length > failFrom) {
                    throw new IOException("Input/output error");
                }
                CountDownLatch latch = hang;
                if (name.equals(hangReadsOf) && latch != null) {
                    try {
                        if (!latch.await(30, TimeUnit.SECONDS)) {
                            throw new IOException("test latch never opened");
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new IOException("interrupted while hanging", e);
                    }
                }
            }

            @Override
            protected void beforeWrite(long position, int length) throws IOException {
                if (name.equals(noSpaceOn)) {
                    throw new IOException("No space left on device");
                }
            }

            @Override
            public int write(ByteBuffer src, long position) throws IOException {
                if (name.equals(tornWriteOf)) {
                    synchronized (FaultFileOps.this) {
                        if (tornBytes > 0) {
                            ByteBuffer part = src.duplicate();
                            part.limit(part.position() + Math.min(tornBytes, part.remaining()));
                            tornBytes = 0;
                            int n = inner.write(part, position);
                            src.position(src.position() + n);
                            return n;
                        }
                    }
                    throw new IOException("No space left on device");
                }
                return super.write(src, position);
            }
        };
    }

    /**
     * The base's open file, but {@link SparseFile#reopenPath} gives the name it was opened by: faults are
     * chosen by file name, and {@code /proc/self/fd/N} would hide it (the inode checks still use the real
     * descriptor's {@link SparseFile#fileKey}).
     */
    @Override
    public SparseFile open(Path path, boolean writable) throws IOException {
        SparseFile f = base.open(path, writable);
        return new SparseFile() {
            @Override public void punchHole(long offset, long length) throws IOException { f.punchHole(offset, length); }
            @Override public long nextData(long offset) throws IOException { return f.nextData(offset); }
            @Override public long nextHole(long offset) throws IOException { return f.nextHole(offset); }
            @Override public long allocatedBytes() throws IOException { return f.allocatedBytes(); }
            @Override public boolean tryLock(long start, long length, LockMode mode) throws IOException {
                return f.tryLock(start, length, mode);
            }
            @Override public boolean lockedByOthers(long start, long length) throws IOException {
                return f.lockedByOthers(start, length);
            }
            @Override public boolean locksSupported() { return f.locksSupported(); }
            @Override public String fileKey() throws IOException { return f.fileKey(); }
            @Override public Path reopenPath(Path openedAs) { return openedAs; }
            @Override public void close() throws IOException { f.close(); }
        };
    }

    @Override
    public boolean setCurrentThreadIdleIoPriority() {
        return base.setCurrentThreadIdleIoPriority();
    }
}
