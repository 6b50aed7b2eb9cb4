package corfs.image;

import corfs.engine.TestLeaves;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("A leaf data file replaced by another of the same name and size is recognised")
class DataIdentityTest {
    @TempDir
    Path dir;

    @Test
    @DisplayName("open refuses a replaced data file, check reports it, and only an explicit adopt accepts it")
    void replacedDataFile() throws Exception {
        Path backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, 1 << 20, 21);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, 65536, false);
        Path meta = LeafImage.metadataPathOf(leaf);
        byte[] metaBefore = Files.readAllBytes(meta);

        Path other = dir.resolve("other.img");
        Files.write(other, new byte[1 << 20]);
        Files.move(other, leaf, StandardCopyOption.REPLACE_EXISTING); // same name, same size, new inode

        CorruptMetadataException e = assertThrows(CorruptMetadataException.class,
                () -> LeafImage.open(leaf, FileOps.system(), false, false));
        assertTrue(e.getMessage().contains("replaced or copied"), e.getMessage());
        assertFalse(LeafImages.check(leaf).isEmpty());
        assertArrayEquals(metaBefore, Files.readAllBytes(meta), "a refused open changes nothing");

        try (LeafImage adopted = LeafImage.open(leaf, FileOps.system(), false, false, true)) {
            assertTrue(adopted.header().dataInode() != 0);
        }
        try (LeafImage again = LeafImage.open(leaf, FileOps.system(), false, false)) {
            assertTrue(LeafImages.check(leaf).isEmpty(), "the adopted inode is recorded");
        }
    }
}
