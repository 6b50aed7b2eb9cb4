package corfs.engine;

import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 7: a fully local leaf is standalone whichever path made it local; a truncated data file is noticed. */
@DisplayName("Standalone when fully local, and a truncated data file")
class LeafLifecycleTest {
    private static final int SIZE = 3 * 1024 * 1024 + 4096;
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    private Path backing;
    private Path leaf;

    private byte[] setUp() throws IOException {
        backing = dir.resolve("base.raw");
        byte[] content = TestLeaves.writeBacking(backing, SIZE, 5);
        leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, false);
        return content;
    }

    private boolean standaloneOnDisk() throws IOException {
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            return image.header().standalone();
        }
    }

    @Nested
    @DisplayName("standalone")
    class Standalone {
        @Test
        @DisplayName("reading the whole disk (copy-on-read) makes it standalone at the next flush, durably")
        void copyOnReadOfEverything() throws IOException {
            byte[] content = setUp();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
                assertFalse(disk.image().header().standalone(), "not before the bits are durable");
                disk.flush();
                assertTrue(disk.image().header().standalone());
            }
            assertTrue(standaloneOnDisk());
            assertEquals(List.of(), LeafImages.check(leaf));
            Files.delete(backing);
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk), "served without the backing");
            }
        }

        @Test
        @DisplayName("writes and zeroing that cover every cluster make it standalone too")
        void writesAndZeroing() throws IOException {
            setUp();
            byte[] expected = new byte[SIZE];
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                disk.zeroRange(0, SIZE / 2);
                byte[] data = new byte[SIZE - SIZE / 2];
                new java.util.Random(3).nextBytes(data);
                disk.write(ByteBuffer.wrap(data), SIZE / 2);
                System.arraycopy(data, 0, expected, SIZE / 2, data.length);
                disk.flush();
                assertTrue(disk.image().header().standalone());
            }
            Files.delete(backing);
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(expected, TestLeaves.readAll(disk));
            }
        }

        @Test
        @DisplayName("all local without the flag (a crash between the two): check reports it, repair and mount set it")
        void crashBeforeTheFlag() throws IOException {
            setUp();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                disk.fill(0, disk.clusters() - 1);
                disk.flush();
                disk.image().updateHeader(h -> h.withStandalone(false)); // the flag the crash did not write
            }
            assertFalse(standaloneOnDisk());
            List<String> problems = LeafImages.check(leaf);
            assertEquals(1, problems.size(), problems.toString());
            assertTrue(problems.get(0).contains("not marked standalone"), problems.toString());

            List<String> actions = LeafImage.repair(leaf);
            assertEquals(List.of("marked standalone: every cluster is local"), actions);
            assertTrue(standaloneOnDisk());
            assertEquals(List.of(), LeafImages.check(leaf));
            assertEquals(List.of(), LeafImage.repair(leaf), "nothing left to repair");

            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
                image.updateHeader(h -> h.withStandalone(false));
            }
            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
                assertTrue(image.header().standalone(), "a writable open records it");
            }
        }

        @Test
        @DisplayName("a partly local leaf stays not standalone, and repair leaves it alone")
        void partlyLocal() throws IOException {
            setUp();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                disk.fill(0, disk.clusters() - 2);
                disk.flush();
            }
            assertFalse(standaloneOnDisk());
            assertEquals(List.of(), LeafImages.check(leaf));
            assertEquals(List.of(), LeafImage.repair(leaf));
            assertFalse(standaloneOnDisk());
        }
    }

    @Nested
    @DisplayName("a data file truncated behind corfs's back")
    class Truncated {
        @Test
        @DisplayName("while open, a read of a local cluster past the new end is an error, never zeros")
        void readPastTheEndIsAnError() throws IOException {
            byte[] content = setUp();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
                try (FileChannel ch = FileChannel.open(leaf, StandardOpenOption.WRITE)) {
                    ch.truncate(SIZE / 2);
                }
                ByteBuffer b = ByteBuffer.allocate(4096);
                IOException e = assertThrows(IOException.class, () -> disk.read(b, SIZE - 8192));
                assertTrue(e.getMessage().contains("shorter"), e.getMessage());
                ByteBuffer inside = ByteBuffer.allocate(4096);
                assertEquals(4096, disk.read(inside, 4096), "clusters before the end still read");
            }
        }

        @Test
        @DisplayName("check reports the local clusters beyond the end (exit 2), and how many")
        void checkCountsLostClusters() throws IOException {
            setUp();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                disk.fill(0, 9); // clusters 0..9 local: 655,360 bytes
                disk.flush();
            }
            try (FileChannel ch = FileChannel.open(leaf, StandardOpenOption.WRITE)) {
                ch.truncate(5L * CLUSTER + 100); // cluster 5 partly, 6..9 wholly beyond the end
            }
            List<String> problems = LeafImages.check(leaf);
            assertEquals(1, problems.size(), problems.toString());
            assertTrue(problems.get(0).contains("5 local cluster(s) lie wholly or partly beyond its end"),
                    problems.toString());
        }
    }
}
