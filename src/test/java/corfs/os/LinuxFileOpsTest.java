package corfs.os;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.io.FileOps;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@DisplayName("LinuxFileOps on real files")
class LinuxFileOpsTest {
    private static final int MIB = 1 << 20;
    private static LinuxFileOps ops;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        assumeTrue(System.getProperty("os.name").toLowerCase().contains("linux"), "Linux only");
        ops = LinuxFileOps.load();
    }

    private Path writeFile(String name, long size, long... dataMiB) throws IOException {
        Path p = dir.resolve(name);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            byte[] data = new byte[MIB];
            Arrays.fill(data, (byte) 0x5a);
            for (long m : dataMiB) {
                ch.write(ByteBuffer.wrap(data), m * MIB);
            }
            ch.truncate(size);
            ch.force(true);
        }
        if (Files.size(p) < size) {
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap(new byte[1]), size - 1);
            }
        }
        return p;
    }

    @Test
    @DisplayName("punchHole makes zeros and lowers allocatedBytes, size unchanged")
    void punchHole() throws IOException {
        Path p = writeFile("dense", 4L * MIB, 0, 1, 2, 3);
        try (FileOps.SparseFile f = ops.open(p, true)) {
            long before = f.allocatedBytes();
            assertTrue(before >= 4L * MIB, "allocated " + before);
            f.punchHole(MIB, 2L * MIB);
            long after = f.allocatedBytes();
            assertTrue(after <= before - 2L * MIB, "allocated " + before + " -> " + after);
        }
        assertEquals(4L * MIB, Files.size(p));
        byte[] all = Files.readAllBytes(p);
        for (int i = MIB; i < 3 * MIB; i++) {
            assertEquals(0, all[i], "byte " + i);
        }
        assertEquals(0x5a, all[0]);
        assertEquals(0x5a, all[3 * MIB]);
    }

    @Test
    @DisplayName("nextData/nextHole walk a sparse file")
    void seekDataHole() throws IOException {
        Path p = writeFile("sparse", 8L * MIB, 2, 5);
        try (FileOps.SparseFile f = ops.open(p, false)) {
            assertEquals(2L * MIB, f.nextData(0));
            assertEquals(3L * MIB, f.nextHole(2L * MIB));
            assertEquals(5L * MIB, f.nextData(3L * MIB));
            assertEquals(6L * MIB, f.nextHole(5L * MIB));
            // The last byte was written to set the size: data near the end, then the file size.
            long tail = f.nextData(6L * MIB);
            assertTrue(tail >= 6L * MIB && tail < 8L * MIB, "tail data at " + tail);
            assertEquals(8L * MIB, f.nextHole(tail));
            assertEquals(-1, f.nextData(8L * MIB));
            assertEquals(8L * MIB, f.nextHole(8L * MIB));
        }
    }

    @Test
    @DisplayName("copyTo copies a range in the kernel at both offsets, moves no position, and stops at the end")
    void copyTo() throws IOException {
        Path src = dir.resolve("src");
        byte[] content = new byte[3 * MIB + 777];
        new java.util.Random(7).nextBytes(content);
        Files.write(src, content);
        Path dst = writeFile("dst", 4L * MIB);
        try (FileOps.SparseFile from = ops.open(src, false); FileOps.SparseFile to = ops.open(dst, true);
             FileChannel fromChannel = FileChannel.open(src)) {
            assertTrue(from.copySupported());
            from.adviseSequential();
            long done = 0;
            long want = 2L * MIB + 5;
            while (done < want) {
                long n = from.copyTo(MIB - 3 + done, to, 12345 + done, want - done);
                assertTrue(n > 0, "copied " + n);
                done += n;
            }
            assertEquals(777 + 3, from.copyTo(3L * MIB - 3, to, 0, MIB), "short at the source's end");
            assertEquals(0, from.copyTo(content.length, to, 0, MIB), "nothing past the end");
            assertEquals(0, fromChannel.position());
        }
        byte[] out = Files.readAllBytes(dst);
        assertEquals(4L * MIB, out.length);
        assertArrayEquals(Arrays.copyOfRange(content, MIB - 3, 3 * MIB + 2), Arrays.copyOfRange(out, 12345, 12345 + 2 * MIB + 5));
        assertArrayEquals(Arrays.copyOfRange(content, 3 * MIB - 3, content.length), Arrays.copyOfRange(out, 0, 780));
    }

    @Test
    @DisplayName("copyTo into a file of another filesystem is refused with -1 (the caller copies through a buffer)")
    void copyAcrossFilesystems() throws IOException {
        Path shm = Path.of("/dev/shm");
        assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm), "no /dev/shm");
        assumeTrue(!Files.getFileStore(shm).equals(Files.getFileStore(dir)), "/dev/shm on the same filesystem");
        Path src = writeFile("src", 2L * MIB, 0, 1);
        Path other = Files.createTempFile(shm, "corfs-copy", ".raw");
        try (FileOps.SparseFile from = ops.open(src, false); FileOps.SparseFile to = ops.open(other, true)) {
            long n = from.copyTo(0, to, 0, MIB);
            // Linux 5.3 to 5.18 copied across filesystems; later kernels answer EXDEV
            assertTrue(n == -1 || n == MIB, "copied " + n);
        } finally {
            Files.deleteIfExists(other);
        }
    }

    @Test
    @DisplayName("a missing file fails with the path and the reason")
    void missing() {
        IOException e = org.junit.jupiter.api.Assertions.assertThrows(IOException.class,
                () -> ops.open(dir.resolve("nope"), false));
        assertTrue(e.getMessage().contains("No such file"), e.getMessage());
    }

    @Test
    @DisplayName("idle I/O priority can be set on the calling thread")
    void idlePriority() throws Exception {
        boolean[] ok = new boolean[1];
        Thread t = new Thread(() -> ok[0] = ops.setCurrentThreadIdleIoPriority(), "ioprio-test");
        t.start();
        t.join(10_000);
        assertTrue(ok[0]);
        assertArrayEquals(new boolean[] {true}, ok);
    }

    @Test
    @DisplayName("readRegularFile: a regular file's first bytes; a FIFO refused without waiting for a writer; a link,"
            + " a directory and a device refused; a missing file NoSuchFile")
    void readRegularFile() throws Exception {
        Path file = dir.resolve("profile");
        Files.write(file, "0123456789".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        assertArrayEquals("0123".getBytes(java.nio.charset.StandardCharsets.US_ASCII), ops.readRegularFile(file, 4));
        assertEquals(10, ops.readRegularFile(file, 1 << 20).length);
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        // The open itself must not block: a FIFO put in place after a check would hang the caller for good.
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(20), () ->
                org.junit.jupiter.api.Assertions.assertThrows(FileOps.NotRegularFileException.class,
                        () -> ops.readRegularFile(fifo, 100)));
        Path link = dir.resolve("link");
        Files.createSymbolicLink(link, file);
        org.junit.jupiter.api.Assertions.assertThrows(FileOps.NotRegularFileException.class, () -> ops.readRegularFile(link, 100));
        org.junit.jupiter.api.Assertions.assertThrows(FileOps.NotRegularFileException.class, () -> ops.readRegularFile(dir, 100));
        org.junit.jupiter.api.Assertions.assertThrows(FileOps.NotRegularFileException.class,
                () -> ops.readRegularFile(Path.of("/dev/zero"), 100));
        org.junit.jupiter.api.Assertions.assertThrows(java.nio.file.NoSuchFileException.class,
                () -> ops.readRegularFile(dir.resolve("missing"), 100));
    }

    @Test
    @DisplayName("readRegularFile never opens what is not a regular file when it sees that first: a writer waiting on"
            + " a FIFO stays waiting (opening a device has effects of its own: a tty, a watchdog, a tape)")
    void readRegularFileOpensNoFifo() throws Exception {
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        java.util.concurrent.atomic.AtomicBoolean opened = new java.util.concurrent.atomic.AtomicBoolean();
        Thread writer = new Thread(() -> {
            try (var out = new java.io.FileOutputStream(fifo.toFile())) { // blocks until a reader opens it
                opened.set(true);
                out.write(1);
            } catch (IOException e) {
                // the reader went away (EPIPE): it opened the FIFO all the same
            }
            opened.set(true);
        }, "test-fifo-writer");
        writer.start();
        try {
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (java.util.Arrays.stream(writer.getStackTrace()).noneMatch(f -> f.getMethodName().equals("open0"))) {
                assertTrue(System.nanoTime() < deadline, "the writer reaches its open");
                Thread.sleep(5);
            }
            Thread.sleep(100); // into the kernel's wait for a reader (a read opened earlier would go unseen)
            org.junit.jupiter.api.Assertions.assertThrows(FileOps.NotRegularFileException.class,
                    () -> ops.readRegularFile(fifo, 100));
            writer.join(2_000); // on a FIFO opened by the read, the writer is released at once; else it stays
            assertTrue(!opened.get() && writer.isAlive(), "readRegularFile opened the FIFO");
        } finally {
            try (var rw = new java.io.RandomAccessFile(fifo.toFile(), "rw")) { // O_RDWR: releases the writer, never waits
                writer.join(10_000);
            }
            writer.join(10_000);
        }
    }
}
