package corfs.backing.qcow2;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link Qcow2Source} over a local file, opened read-only; its {@link #resolver()} opens backing
 * files by path, a relative name next to the image that names it (what QEMU does for a file: the name
 * is resolved against the directory of the image, not the current directory).
 *
 * <p>Thread-safety: positional reads on one {@link FileChannel}; no thread that reads may be
 * interrupted (NIO closes the channel). The size is taken once at open: a file that shrinks later
 * gives {@link EOFException} on the read that misses, never zeros.
 */
public final class FileQcow2Source implements Qcow2Source {
    private final Path path;
    private final FileChannel channel;
    private final long size;
    private final AtomicBoolean closed = new AtomicBoolean();

    private FileQcow2Source(Path path, FileChannel channel, long size) {
        this.path = path;
        this.channel = channel;
        this.size = size;
    }

    /** Opens {@code path} read-only; the location is its real path (symbolic links resolved). */
    public static FileQcow2Source open(Path path) throws IOException {
        Path real;
        try {
            real = path.toRealPath();
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(path.toString(), null, "no such file");
        }
        if (!Files.isRegularFile(real)) {
            throw new IOException(path + " is not a regular file");
        }
        FileChannel channel = FileChannel.open(real, StandardOpenOption.READ);
        try {
            return new FileQcow2Source(real, channel, channel.size());
        } catch (RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    /** Opens backing names as files: absolute as they are, relative against the naming image's folder. */
    public static Qcow2Source.Resolver resolver() {
        return (from, name) -> {
            Path p = Path.of(name);
            if (!p.isAbsolute()) {
                Path dir = Path.of(from.location()).getParent();
                p = dir == null ? p : dir.resolve(p);
            }
            return open(p);
        };
    }

    public Path path() {
        return path;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        if (offset < 0 || offset > size - dst.remaining()) {
            throw new EOFException(path + ": read of " + dst.remaining() + " bytes at " + offset
                    + " is outside the file (" + size + " bytes)");
        }
        long pos = offset;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, pos);
            if (n < 0) {
                throw new EOFException(path + ": file ended at " + pos + " (it was " + size + " bytes at open)");
            }
            pos += n;
        }
    }

    @Override
    public String location() {
        return path.toString();
    }

    @Override
    public String identity() throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        return "file:" + path + " key=" + a.fileKey() + " size=" + a.size() + " mtime=" + a.lastModifiedTime().toInstant();
    }

    /** Idempotent. */
    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            channel.close();
        }
    }

    @Override
    public String toString() {
        return "FileQcow2Source[" + path + "]";
    }
}
