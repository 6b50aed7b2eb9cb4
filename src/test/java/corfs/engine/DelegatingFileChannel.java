package corfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;

/**
 * A FileChannel over another one, for tests that interpose on {@link corfs.io.FileOps#openChannel}:
 * positional reads and writes, size, force and locks are delegated through hooks a subclass overrides
 * (record, fail, block). corfs uses positional I/O only, so the position-based methods throw.
 */
public class DelegatingFileChannel extends FileChannel {
    protected final Path path;
    protected final FileChannel inner;

    public DelegatingFileChannel(Path path, FileChannel inner) {
        this.path = path;
        this.inner = inner;
    }

    public Path path() {
        return path;
    }

    /** Called before a positional read of {@code length} bytes at {@code position}. */
    protected void beforeRead(long position, int length) throws IOException {
    }

    /** Called before a positional write of {@code length} bytes at {@code position}. */
    protected void beforeWrite(long position, int length) throws IOException {
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        beforeRead(position, dst.remaining());
        return inner.read(dst, position);
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        beforeWrite(position, src.remaining());
        return inner.write(src, position);
    }

    @Override
    public long size() throws IOException {
        return inner.size();
    }

    @Override
    public void force(boolean metaData) throws IOException {
        inner.force(metaData);
    }

    @Override
    public FileLock lock(long position, long size, boolean shared) throws IOException {
        return inner.lock(position, size, shared);
    }

    @Override
    public FileLock tryLock(long position, long size, boolean shared) throws IOException {
        return inner.tryLock(position, size, shared);
    }

    @Override
    protected void implCloseChannel() throws IOException {
        inner.close();
    }

    // ---- corfs never uses the shared file position: refuse, so a test notices if that changes

    @Override
    public int read(ByteBuffer dst) {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public int write(ByteBuffer src) {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public long position() {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public FileChannel position(long newPosition) {
        throw new UnsupportedOperationException("positional I/O only");
    }

    @Override
    public FileChannel truncate(long size) {
        throw new UnsupportedOperationException("corfs never truncates");
    }

    @Override
    public long transferTo(long position, long count, WritableByteChannel target) {
        throw new UnsupportedOperationException();
    }

    @Override
    public long transferFrom(ReadableByteChannel src, long position, long count) {
        throw new UnsupportedOperationException();
    }

    @Override
    public MappedByteBuffer map(MapMode mode, long position, long size) {
        throw new UnsupportedOperationException();
    }
}
