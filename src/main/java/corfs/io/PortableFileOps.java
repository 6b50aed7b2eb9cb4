package corfs.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Pure-Java {@link FileOps}: a punched hole is written as zeros, every byte is data, and the allocated
 * size is the file size. Correct everywhere, sparse nowhere; used in tests and when libc cannot be
 * bound. Open for extension by tests that interpose on {@link #openChannel}: every write it makes,
 * punches included, goes through a channel from there.
 */
public class PortableFileOps implements FileOps {
    private static final int ZERO_CHUNK = 1 << 20;

    @Override
    public SparseFile open(Path path, boolean writable) throws IOException {
        // Through openChannel, so a subclass that interposes on channels also sees the zeros of a punch.
        FileChannel channel = writable
                ? openChannel(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                : openChannel(path, StandardOpenOption.READ);
        return new SparseFile() {
            @Override
            public void punchHole(long offset, long length) throws IOException {
                ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(ZERO_CHUNK, Math.max(length, 0)));
                long pos = offset;
                long end = offset + length;
                while (pos < end) {
                    zeros.clear().limit((int) Math.min(zeros.capacity(), end - pos));
                    while (zeros.hasRemaining()) {
                        pos += channel.write(zeros, pos);
                    }
                }
            }

            @Override
            public long nextData(long offset) throws IOException {
                return offset < channel.size() ? offset : -1;
            }

            @Override
            public long nextHole(long offset) throws IOException {
                return Math.max(offset, channel.size());
            }

            @Override
            public long allocatedBytes() throws IOException {
                return channel.size();
            }

            @Override
            public void close() throws IOException {
                channel.close();
            }
        };
    }

    @Override
    public boolean setCurrentThreadIdleIoPriority() {
        return false;
    }
}
