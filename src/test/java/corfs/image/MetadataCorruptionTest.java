package corfs.image;

import corfs.CorfsException;
import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.io.FileOps;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hostile metadata (issue 3, "Hostile and bad input"; issue 2, mount refuses): every damaged leaf is
 * refused by {@link LeafImage#open} with a clear message, reported by {@link LeafImages#check}, and
 * nothing on disk is changed by either (nothing is repaired silently).
 */
@DisplayName("Metadata corruption: refused with a clear message, reported by check, nothing changed")
class MetadataCorruptionTest {
    private static final int SIZE = 2 * 1024 * 1024 + 4321;

    @TempDir
    Path dir;
    Path backing;
    Path leaf;
    Path meta;

    /** A leaf with both slots of bitmap page 0 written (two flushes with changes) and both header slots. */
    @BeforeEach
    void makeLeaf() throws IOException {
        backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, SIZE, 42);
        try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 65536, FileOps.system())) {
            disk.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 70_000);
            disk.flush();
            disk.read(ByteBuffer.allocate(100_000), 1_000_000);
            disk.flush();
        }
        leaf = dir.resolve("leaf.img");
        meta = LeafImage.metadataPathOf(leaf);
        assertEquals(List.of(), LeafImages.check(leaf), "the fresh leaf is clean");
    }

    /**
     * Opens the leaf as a mount does and as check does; both must refuse, the message must contain
     * {@code expected}, and neither may change a byte of the leaf, its metadata or the backing.
     */
    private String assertRefused(String expected, String what) throws IOException {
        return assertRefused(expected, what, true);
    }

    /** With {@code deep} false the data file and backing are compared by size and mtime only (for loops). */
    private String assertRefused(String expected, String what, boolean deep) throws IOException {
        byte[] metaBefore = Files.exists(meta) ? Files.readAllBytes(meta) : null;
        byte[] dataBefore = deep ? Files.readAllBytes(leaf) : null;
        byte[] backingBefore = deep ? Files.readAllBytes(backing) : null;
        String stampsBefore = stamps();
        CorfsException e = assertThrows(CorfsException.class, () -> {
            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
                image.header();
            }
        }, what + ": open must refuse");
        assertTrue(e.getMessage() != null && e.getMessage().contains(expected),
                what + ": message should say '" + expected + "', was: " + e.getMessage());
        List<String> problems = LeafImages.check(leaf);
        assertFalse(problems.isEmpty(), what + ": check must report a problem");
        assertTrue(String.join("\n", problems).contains(expected), what + ": check reported " + problems);
        if (metaBefore != null) {
            assertArrayEquals(metaBefore, Files.readAllBytes(meta), what + ": metadata changed");
        }
        assertEquals(stampsBefore, stamps(), what + ": data file or backing touched");
        if (deep) {
            assertArrayEquals(dataBefore, Files.readAllBytes(leaf), what + ": data file changed");
            assertArrayEquals(backingBefore, Files.readAllBytes(backing), what + ": backing changed");
        }
        return e.getMessage();
    }

    private String stamps() throws IOException {
        return Files.size(leaf) + "/" + Files.getLastModifiedTime(leaf) + " " + Files.size(backing) + "/"
                + Files.getLastModifiedTime(backing);
    }

    private static void flip(Path file, long offset) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.seek(offset);
            int b = raf.read();
            raf.seek(offset);
            raf.write(b ^ 0xFF);
        }
    }

    @Nested
    @DisplayName("byte flips")
    class Flips {
        @Test
        @DisplayName("each byte of both header slots, one at a time: the damaged slot is named and open refuses")
        void headerFlips() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                byte[] clean = Files.readAllBytes(meta);
                byte[] data = Files.readAllBytes(leaf);
                for (int slot = 0; slot < 2; slot++) {
                    for (int i = 0; i < MetadataFormat.SLOT_SIZE; i++) {
                        long at = (long) slot * MetadataFormat.SLOT_SIZE + i;
                        flip(meta, at);
                        assertRefused("header slot " + slot + " is damaged", "flip of header byte " + at, false);
                        flip(meta, at);
                    }
                }
                assertArrayEquals(clean, Files.readAllBytes(meta));
                assertArrayEquals(data, Files.readAllBytes(leaf));
                assertEquals(List.of(), LeafImages.check(leaf), "restored leaf is clean again");
            });
        }

        @Test
        @DisplayName("each byte of both slots of a written bitmap page: open refuses and names the page")
        void bitmapFlips() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                byte[] clean = Files.readAllBytes(meta);
                byte[] data = Files.readAllBytes(leaf);
                for (int slot = 0; slot < 2; slot++) {
                    long base = MetadataFormat.pageSlotOffset(0, slot);
                    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(meta), (int) base, MetadataFormat.SLOT_SIZE);
                    assertTrue(b.getInt() != 0, "page 0 slot " + slot + " was written by the setup");
                    for (int i = 0; i < MetadataFormat.SLOT_SIZE; i++) {
                        flip(meta, base + i);
                        assertRefused("bitmap page 0 slot " + slot, "flip of bitmap byte " + (base + i), false);
                        flip(meta, base + i);
                    }
                }
                assertArrayEquals(clean, Files.readAllBytes(meta));
                assertArrayEquals(data, Files.readAllBytes(leaf));
                assertEquals(List.of(), LeafImages.check(leaf));
            });
        }
    }

    @Nested
    @DisplayName("wrong sizes and wrong files")
    class Sizes {
        @ParameterizedTest(name = "metadata cut to {0} bytes")
        @ValueSource(longs = {0, 100, 4096, 8191, 8192, 12288})
        @DisplayName("a truncated metadata file is refused")
        void truncatedMetadata(long length) throws IOException {
            assertTrue(length < Files.size(meta));
            try (RandomAccessFile raf = new RandomAccessFile(meta.toFile(), "rw")) {
                raf.setLength(length);
            }
            assertRefused("truncated", "metadata truncated to " + length);
        }

        @ParameterizedTest(name = "metadata grown by {0} bytes")
        @ValueSource(longs = {1, 4096, 8192})
        @DisplayName("an extended metadata file (a bitmap of the wrong size) is refused")
        void extendedMetadata(long extra) throws IOException {
            long length = Files.size(meta);
            try (RandomAccessFile raf = new RandomAccessFile(meta.toFile(), "rw")) {
                raf.setLength(length + extra);
            }
            assertRefused("wrong size", "metadata extended by " + extra);
        }

        @Test
        @DisplayName("another leaf's metadata renamed into place is recognised")
        void swappedMetadata() throws IOException {
            Path other = dir.resolve("other.img");
            LeafImage.create(other, backing, 65536, false);
            Files.copy(LeafImage.metadataPathOf(other), meta, StandardCopyOption.REPLACE_EXISTING);
            assertRefused("belongs to leaf 'other.img'", "swapped metadata");
        }

        @ParameterizedTest(name = "data file cut by {0} bytes")
        @ValueSource(longs = {1, 65536, SIZE})
        @DisplayName("a truncated data file is refused")
        void truncatedData(long cut) throws IOException {
            try (RandomAccessFile raf = new RandomAccessFile(leaf.toFile(), "rw")) {
                raf.setLength(SIZE - cut);
            }
            assertRefused("truncated or replaced", "data file truncated by " + cut);
        }
    }

    @Nested
    @DisplayName("versions")
    class Versions {
        /** Re-encodes a header slot with another version number and a valid checksum. */
        private void setVersion(int slot, int version) throws IOException {
            byte[] all = Files.readAllBytes(meta);
            ByteBuffer b = ByteBuffer.wrap(all, slot * MetadataFormat.SLOT_SIZE, MetadataFormat.SLOT_SIZE)
                    .slice().order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(8, version);
            CRC32C crc = new CRC32C();
            crc.update(all, slot * MetadataFormat.SLOT_SIZE, MetadataFormat.SLOT_SIZE - 4);
            b.putInt(MetadataFormat.SLOT_SIZE - 4, (int) crc.getValue());
            Files.write(meta, all);
        }

        @ParameterizedTest(name = "version {0}")
        @ValueSource(ints = {0, 4, 99, -1})
        @DisplayName("an unknown version in both slots is refused as unsupported, not as damage")
        void unknownVersion(int version) throws IOException {
            setVersion(0, version);
            setVersion(1, version);
            assertRefused("metadata version " + version + " is not supported", "version " + version);
        }

        @Test
        @DisplayName("an unknown version in one slot is refused too")
        void unknownVersionOneSlot() throws IOException {
            setVersion(1, 4);
            assertRefused("metadata version 4 is not supported", "version 4 in slot 1");
        }
    }

    @Nested
    @DisplayName("version 1 leaves (made by corfs before version 2)")
    class Version1Leaves {
        private byte[] v1Meta;
        private byte[] content;

        /** The setup's leaf, its header slots rewritten as the last release wrote them. */
        @BeforeEach
        void downgrade() throws IOException {
            // read-only: a read that filled every cluster would make the leaf standalone (no backing checks)
            try (LeafDisk disk = TestLeaves.openReadOnly(leaf, FileOps.system())) {
                content = TestLeaves.readAll(disk);
            }
            V1Headers.downgrade(leaf);
            v1Meta = Files.readAllBytes(meta);
            assertEquals(1, V1Headers.versionOf(leaf, 0));
            assertEquals(1, V1Headers.versionOf(leaf, 1));
        }

        @Test
        @DisplayName("info, map, check and a read-only open read it and never write it")
        void readWithoutWriting() throws IOException {
            LeafInfo info = LeafImages.info(leaf);
            assertEquals(1, info.version());
            assertEquals(backing.toAbsolutePath().normalize().toString(), info.backingSpec());
            assertEquals("raw", info.backingFormat());
            assertEquals(corfs.backing.FileBacking.identityOf(backing), info.backingIdentity());
            assertTrue(LeafImages.map(leaf).stream().anyMatch(Extent::dirty), "map shows the written cluster");
            assertEquals(List.of(), LeafImages.check(leaf));
            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, false)) {
                assertEquals(1, image.metadataVersion());
                assertTrue(image.local().count() > 0 && image.dirty().count() == 1, image.toString());
            }
            assertArrayEquals(v1Meta, Files.readAllBytes(meta), "a read of a version 1 leaf wrote it");
        }

        @Test
        @DisplayName("a writable open reads it as is; its first metadata write upgrades both slots; bits and data stay")
        void firstWriteUpgrades() throws IOException {
            long local;
            long dirty;
            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
                local = image.local().count();
                dirty = image.dirty().count();
            }
            LeafHeader before = headerOf();
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertEquals(1, disk.image().metadataVersion());
                assertEquals(before, disk.image().header());
                assertEquals(local, disk.image().local().count());
                assertEquals(dirty, disk.image().dirty().count());
                disk.flush();
                assertArrayEquals(v1Meta, Files.readAllBytes(meta), "nothing to write, yet the metadata changed");
                disk.write(ByteBuffer.wrap(new byte[] {9}), 5);
                content[5] = 9;
                disk.flush();
                assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 0));
                assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 1));
                assertEquals(MetadataFormat.VERSION, disk.image().metadataVersion());
                assertEquals(before, disk.image().header());
            }
            assertEquals(MetadataFormat.VERSION, LeafImages.info(leaf).version());
            assertEquals(List.of(), LeafImages.check(leaf));
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
            }
            assertEquals(v1Meta.length, Files.size(meta));
        }

        @Test
        @DisplayName("a crash between the two slots of the upgrade leaves one slot of each version: it opens")
        void tornUpgrade() throws IOException {
            LeafHeader h = headerOf();
            byte[] all = Files.readAllBytes(meta);
            MetadataFormat.encodeHeader(h, 2).get(all, 0, MetadataFormat.SLOT_SIZE); // slot 0 written, slot 1 not
            Files.write(meta, all);
            assertEquals(List.of(), LeafImages.check(leaf));
            assertEquals(MetadataFormat.VERSION, LeafImages.info(leaf).version(), "the newer slot wins");
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
                disk.write(ByteBuffer.wrap(new byte[] {7}), 9);
                content[9] = 7;
            }
            assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 1), "the next metadata write finished the upgrade");
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertArrayEquals(content, TestLeaves.readAll(disk));
            }
        }

        @Test
        @DisplayName("a version 1 slot with one byte flipped is refused and named, like a version 2 slot")
        void flipsRefused() throws IOException {
            for (int at : new int[] {8, 40, 56, 104, 110, 4091, 4095}) {
                flip(meta, at);
                assertRefused("header slot 0 is damaged", "flip of v1 header byte " + at, false);
                flip(meta, at);
            }
            assertArrayEquals(v1Meta, Files.readAllBytes(meta));
        }

        @Test
        @DisplayName("a mount refused after the open (the backing changed) leaves the version 1 leaf unchanged")
        void refusedMountChangesNothing() throws IOException {
            Files.setLastModifiedTime(backing, java.nio.file.attribute.FileTime.fromMillis(1_000_000));
            CorfsException e = assertThrows(CorfsException.class, () -> corfs.jobs.MountSession.open(List.of(leaf),
                    new corfs.jobs.MountSession.Options(false, false, 0)).close());
            assertTrue(e.getMessage().contains("changed since the leaf recorded it"), e.getMessage());
            assertArrayEquals(v1Meta, Files.readAllBytes(meta), "a refused mount wrote the version 1 metadata");
        }

        @Test
        @DisplayName("an older version 1 leaf without the data file's inode: one open records it and upgrades")
        void withoutInode() throws IOException {
            LeafHeader h = headerOf().withDataInode(0);
            byte[] all = Files.readAllBytes(meta);
            for (int s = 0; s < 2; s++) {
                V1Headers.encode(h, 1).get(all, s * MetadataFormat.SLOT_SIZE, MetadataFormat.SLOT_SIZE);
            }
            Files.write(meta, all);
            try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
                assertTrue(disk.image().header().dataInode() != 0);
                assertArrayEquals(content, TestLeaves.readAll(disk));
            }
            assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 0));
            assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 1));
            assertEquals(List.of(), LeafImages.check(leaf));
        }

        private LeafHeader headerOf() throws IOException {
            try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
                return image.header();
            }
        }
    }
}
