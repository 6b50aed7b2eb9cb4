package corfs.image;

import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

@DisplayName("LeafImage.repair: torn slots are repaired on request, never silently")
class RepairTest {
    @TempDir
    Path dir;

    @Test
    @DisplayName("a torn header slot and a torn page slot: open refuses, repair restores the intact copies")
    void tornSlots() throws Exception {
        Path backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, 2 << 20, 11);
        byte[] expected;
        Path leaf = dir.resolve("leaf.img");
        try (LeafDisk disk = TestLeaves.createAndOpen(dir, backing, 65536, FileOps.system())) {
            disk.write(ByteBuffer.wrap(new byte[] {9, 9, 9}), 100_000);
            disk.flush();
            disk.write(ByteBuffer.wrap(new byte[] {8, 8}), 500_000);
            disk.flush(); // page 0 now has both slots written
            expected = TestLeaves.readAll(disk);
        }
        Path meta = LeafImage.metadataPathOf(leaf);
        assertTrue(LeafImages.check(leaf).isEmpty());
        try (FileChannel ch = FileChannel.open(meta, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[512]), 16);                            // tear header slot 0
            ch.write(ByteBuffer.wrap(new byte[512]), MetadataFormat.pageSlotOffset(0, 1) + 2048); // tear a page slot
        }
        assertThrows(CorruptMetadataException.class, () -> LeafImage.open(leaf, FileOps.system(), false, false));
        assertFalse(LeafImages.check(leaf).isEmpty());

        List<String> actions = LeafImage.repair(leaf);
        assertEquals(2, actions.size(), actions.toString());
        assertTrue(LeafImages.check(leaf).isEmpty(), LeafImages.check(leaf).toString());
        assertTrue(LeafImage.repair(leaf).isEmpty(), "a second repair has nothing to do");
        try (LeafDisk disk = TestLeaves.open(leaf, FileOps.system())) {
            byte[] got = TestLeaves.readAll(disk);
            // the torn slot held the newest page; the intact one is one flush older: the first write survives
            assertEquals(9, got[100_000]);
            assertEquals(expected.length, got.length);
        }
    }

    @Test
    @DisplayName("both slots damaged: repair refuses and changes nothing")
    void bothDamaged() throws Exception {
        Path backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, 1 << 20, 12);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, 65536, false);
        Path meta = LeafImage.metadataPathOf(leaf);
        try (FileChannel ch = FileChannel.open(meta, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[] {1}), 100);
            ch.write(ByteBuffer.wrap(new byte[] {1}), 4096 + 100);
        }
        byte[] before = Files.readAllBytes(meta);
        assertThrows(CorruptMetadataException.class, () -> LeafImage.repair(leaf));
        assertArrayEquals(before, Files.readAllBytes(meta));
    }
}
