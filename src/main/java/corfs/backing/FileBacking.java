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
        FileChannel channel;
        try {
            channel = fileOps.openChannel(absolute, StandardOpenOption.READ);
        } catch (AccessDeniedException e) {
            throw new CorfsException(Reason.NOT_PERMITTED, "backing " + absolute + " is not readable", e);
        }
        try {
            FileOps.SparseFile sparse = fileOps.open(absolute, false);
            return new FileBacking(absolute, channel, sparse, channel.size(), fileOps);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    /** The identity of the file at {@code path} now. */
    public static BackingIdentity identityOf(Path path) throws IOException {
        long size = Files.size(path);
        FileTime mtime = Files.getLastModifiedTime(path);
        long mtimeNanos = TimeUnit.SECONDS.toNanos(mtime.to(TimeUnit.SECONDS))
                + mtime.toInstant().getNano();
        Object inode = Files.getAttribute(path, "unix:ino");
        return new BackingIdentity(size, mtimeNanos, ((Number) inode).longValue());
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

    @Override
    public Writer openWriter() throws IOException {
        FileChannel writer;
        try {
            writer = fileOps.openChannel(path, StandardOpenOption.WRITE);
        } catch (java.nio.file.FileSystemException e) {
            throw new CorfsException(Reason.READ_ONLY, "backing " + path + " cannot be opened for writing: "
                    + e.getMessage(), e);
        }
        return new Writer() {
            @Override
            public void writeFully(ByteBuffer src, long offset) throws IOException {
                long pos = offset;
                while (src.hasRemaining()) {
                    pos += writer.write(src, pos);
                }
            }

            @Override
            public void flush() throws IOException {
                writer.force(true);
            }

            @Override
            public void close() throws IOException {
                writer.close();
            }
        };
    }

    @Override
    public void close() throws IOException {
        try (channel; sparse) {
            // both closed, channel last
        }
    }
}
