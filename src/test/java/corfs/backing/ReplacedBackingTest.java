package corfs.backing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.io.FileOps;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A commit writes only into the inode the backing reads: a name replaced by another file or by a symlink
 * (whoever owns the backing's directory can do either) is refused, and the file it now names is untouched.
 */
@DisplayName("a backing whose name changed under it")
class ReplacedBackingTest {
    private static final int SIZE = 1 << 20;

    @TempDir
    Path dir;

    private Path file(String name, int fill) throws Exception {
        byte[] b = new byte[SIZE];
        Arrays.fill(b, (byte) fill);
        return Files.write(dir.resolve(name), b);
    }

    @Test
    @DisplayName("a symlink planted at the backing's name: the commit is refused and the victim untouched")
    void symlinkPlanted() throws Exception {
        Path base = file("base.raw", 1);
        Path victim = file("victim", 2);
        byte[] before = Files.readAllBytes(victim);
        try (FileBacking b = FileBacking.open(base, FileOps.system())) {
            Files.move(base, dir.resolve("old.raw"));
            Files.createSymbolicLink(base, victim);
            CorfsException e = assertThrows(CorfsException.class, b::openWriter);
            assertTrue(e.getMessage().contains("no longer the file this mount reads"), e.getMessage());
        }
        assertArrayEquals(before, Files.readAllBytes(victim));
    }

    @Test
    @DisplayName("a file renamed over the backing's name: the commit is refused")
    void replacedByRename() throws Exception {
        Path base = file("base.raw", 1);
        Path other = file("new.raw", 3);
        try (FileBacking b = FileBacking.open(base, FileOps.system())) {
            Files.move(other, base, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            assertThrows(CorfsException.class, b::openWriter);
            ByteBuffer got = ByteBuffer.allocate(16);
            b.readFully(got, 0);
            assertArrayEquals(new byte[16], zeroed(got.array(), 1), "reads still come from the opened file");
        }
        byte[] now = Files.readAllBytes(base);
        assertTrue(now[0] == 3 && now[SIZE - 1] == 3, "the replacement was written to");
    }

    @Test
    @DisplayName("the unchanged backing: the writer writes into the file the backing reads")
    void unchanged() throws Exception {
        Path base = file("base.raw", 1);
        try (FileBacking b = FileBacking.open(base, FileOps.system())) {
            try (Backing.Writer w = b.openWriter()) {
                w.writeFully(ByteBuffer.wrap(new byte[] {9, 9}), 100);
                w.flush();
            }
            ByteBuffer got = ByteBuffer.allocate(2);
            b.readFully(got, 100);
            assertArrayEquals(new byte[] {9, 9}, got.array());
        }
    }

    /** The bytes with every {@code value} turned to 0, so "all were value" reads as all zeros. */
    private static byte[] zeroed(byte[] b, int value) {
        byte[] out = b.clone();
        for (int i = 0; i < out.length; i++) {
            if (out[i] == value) {
                out[i] = 0;
            }
        }
        return out;
    }
}
