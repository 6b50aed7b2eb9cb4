package corfs.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import corfs.backing.Backing;
import corfs.io.FileOps;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A commit sends a dirty run that reads as zeros as {@link Backing.Writer#writeZeroes} (NBD
 * WRITE_ZEROES: no data on the wire), and everything else as data; the backing ends up equal either way.
 */
@DisplayName("commit of zero clusters")
class CommitZeroesTest {
    private static final int CLUSTER = 64 * 1024;
    private static final int SIZE = 16 * CLUSTER;

    @TempDir
    Path dir;

    /** The real writer, recording which call carried each range. */
    private static final class Recording implements Backing.Writer {
        final Backing.Writer inner;
        final List<String> calls = new ArrayList<>();

        Recording(Backing.Writer inner) {
            this.inner = inner;
        }

        @Override
        public void writeFully(ByteBuffer src, long offset) throws IOException {
            calls.add("data " + offset + "+" + src.remaining());
            inner.writeFully(src, offset);
        }

        @Override
        public void writeZeroes(long offset, long length) throws IOException {
            calls.add("zeroes " + offset + "+" + length);
            inner.writeZeroes(offset, length);
        }

        @Override
        public void flush() throws IOException {
            inner.flush();
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }

    @Test
    @DisplayName("a dirty run of zeros goes as writeZeroes, a run with data as writeFully; the backing equals the disk")
    void zeroRunsAsWriteZeroes() throws IOException {
        Path backing = dir.resolve("base.raw");
        byte[] model = TestLeaves.writeBacking(backing, SIZE, 3);
        try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, CLUSTER, FileOps.system())) {
            byte[] zeros = new byte[2 * CLUSTER];
            assertEquals(zeros.length, disk.write(ByteBuffer.wrap(zeros), 2L * CLUSTER));
            Arrays.fill(model, 2 * CLUSTER, 4 * CLUSTER, (byte) 0);
            byte[] data = new byte[CLUSTER];
            Arrays.fill(data, (byte) 7);
            assertEquals(CLUSTER, disk.write(ByteBuffer.wrap(data), 8L * CLUSTER));
            System.arraycopy(data, 0, model, 8 * CLUSTER, CLUSTER);
            List<String> calls;
            try (Recording w = new Recording(disk.backing().openWriter())) {
                long[] copied = disk.copyDirtyToBacking(0, disk.clusters() - 1, w);
                w.flush();
                disk.markCommitted(copied);
                calls = w.calls;
            }
            assertEquals(List.of("zeroes " + 2 * CLUSTER + "+" + 2 * CLUSTER, "data " + 8 * CLUSTER + "+" + CLUSTER), calls);
            assertEquals(0, disk.dirtyBytes());
            assertArrayEquals(model, Files.readAllBytes(backing));
        }
    }
}
