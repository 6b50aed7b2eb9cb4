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

@DisplayName("-o metrics_file refuses a leaf's own files (it is replaced by a rename every 10 s)")
class MetricsFileCheckTest {
    @TempDir
    Path dir;

    @Test
    @DisplayName("the leaf's data file, metadata, sidecars and log are refused, by any spelling; another file is not")
    void leafFilesRefused() throws Exception {
        Path backing = dir.resolve("base.raw");
        try (var raf = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
            raf.setLength(1 << 20);
        }
        Path leaf = dir.resolve("a.raw");
        LeafImage.create(leaf, backing, 65536, false);
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
