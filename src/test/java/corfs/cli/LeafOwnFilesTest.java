package corfs.cli;

import corfs.CorfsException;
import corfs.image.LeafImage;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("-o metrics_file and --log refuse a leaf's own files (one is replaced by a rename every 10 s, the other appended to)")
class LeafOwnFilesTest {
    @TempDir
    Path dir;

    private Path newLeaf() throws Exception {
        Path backing = dir.resolve("base.raw");
        try (var raf = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
            raf.setLength(1 << 20);
        }
        Path leaf = dir.resolve("a.raw");
        LeafImage.create(leaf, backing, 65536, false);
        return leaf;
    }

    @Test
    @DisplayName("--log: the leaf's data file, metadata and sidecars are refused and unchanged; LEAF.log is the default")
    void logRefused() throws Exception {
        Path leaf = newLeaf();
        byte[] meta = Files.readAllBytes(dir.resolve("a.raw.corfs"));
        for (String name : new String[] {"a.raw", "a.raw.corfs", "./a.raw.corfs"}) {
            Path p = Path.of(dir + "/" + name);
            Main.ExitException e = assertThrows(Main.ExitException.class, () -> MountCommand.openLog(p), name);
            assertTrue(e.getMessage().contains("refusing to write"), e.getMessage());
        }
        assertEquals(1 << 20, Files.size(leaf));
        assertTrue(java.util.Arrays.equals(meta, Files.readAllBytes(dir.resolve("a.raw.corfs"))), "metadata unchanged");
        int fd = MountCommand.openLog(dir.resolve("a.raw.log"));
        assertTrue(fd >= 0);
        corfs.os.Libc.get().close(fd);
    }

    @Test
    @DisplayName("the leaf's data file, metadata, sidecars and log are refused, by any spelling; another file is not")
    void leafFilesRefused() throws Exception {
        newLeaf();
        Files.createDirectory(dir.resolve("sub"));
        for (String name : new String[] {"a.raw", "a.raw.corfs", "a.raw.corfs-profile", "a.raw.corfs-prefetch",
                "a.raw.log", "sub/../a.raw", "./a.raw.corfs"}) {
            String value = dir + "/" + name;
            CorfsException e = assertThrows(CorfsException.class, () -> MetricsFile.check(value), name);
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains("not replaced"), e.getMessage());
        }
        assertEquals(dir.resolve("corfs.prom"), MetricsFile.check(dir + "/corfs.prom"));
        assertEquals(dir.resolve("base.raw"), MetricsFile.check(dir + "/base.raw"), "the backing is no leaf's file");
    }
}
