package corfs.engine;

import corfs.CorfsException;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Issue 7, defect 2: a backing that shrinks while open reads as EIO, never as zeros. */
@DisplayName("a backing that shrank while open")
class ShrunkBackingTest {
    private static final int SIZE = 4 << 20;
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    private static void truncate(Path file, long size) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size);
        }
    }

    @Test
    @DisplayName("cold reads and fills past its new end fail with IO and mark nothing local; before it they work")
    void shrunkIsEio() throws Exception {
        for (FileOps ops : new FileOps[] {FileOps.system(), TestLeaves.portable()}) {
            Path backing = dir.resolve("base-" + ops.getClass().getSimpleName() + ".raw");
            byte[] content = TestLeaves.writeBacking(backing, SIZE, 11);
            Path sub = java.nio.file.Files.createDirectories(dir.resolve(ops.getClass().getSimpleName()));
            try (LeafDisk disk = TestLeaves.createAndOpen(sub, backing, CLUSTER, ops)) {
                truncate(backing, 1 << 20);
                for (long at : new long[] {2L << 20, (2L << 20) + CLUSTER, SIZE - CLUSTER}) {
                    IOException e = assertThrows(IOException.class, () -> disk.read(ByteBuffer.allocate(4096), at),
                            ops + ": a read at " + at + " past the shrunk end");
                    assertEquals(CorfsException.Reason.IO, ((CorfsException) e).reason(), e.toString());
                }
                assertThrows(IOException.class, () -> disk.fill(16, SIZE / CLUSTER - 1), "a stream step");
                assertEquals(0, disk.localBytes(), ops + ": nothing past the end may become local");
                ByteBuffer b = ByteBuffer.allocate(CLUSTER);
                assertEquals(CLUSTER, disk.read(b, 0), "before the new end it still reads");
                assertArrayEquals(Arrays.copyOf(content, CLUSTER), b.array());
            }
        }
    }
}
