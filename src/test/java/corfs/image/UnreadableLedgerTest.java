package corfs.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Issue 7, defect 4: the ledger beside the leaf is never written through a planted symlink. */
@DisplayName("UnreadableLedger and planted symlinks")
class UnreadableLedgerTest {
    @TempDir
    Path dir;

    @Test
    @DisplayName("symlinks at the ledger's name and its old temporary name are replaced, their targets untouched")
    void plantedSymlinks() throws Exception {
        Path leaf = dir.resolve("disk.raw");
        Path victim = Files.writeString(dir.resolve("victim"), "precious\n");
        Path victim2 = Files.writeString(dir.resolve("victim2"), "precious too\n");
        Path ledger = UnreadableLedger.pathOf(leaf);
        Files.createSymbolicLink(ledger.resolveSibling(ledger.getFileName() + ".tmp"), victim);
        Files.createSymbolicLink(ledger, victim2);

        assertTrue(UnreadableLedger.load(leaf).isEmpty(), "a symlinked ledger is read through");
        UnreadableLedger.save(leaf, List.of(new long[] {65536, 4096}));

        assertEquals("precious\n", Files.readString(victim));
        assertEquals("precious too\n", Files.readString(victim2));
        assertFalse(Files.isSymbolicLink(ledger));
        assertEquals(0600, (Integer) Files.getAttribute(ledger, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0777);
        List<long[]> back = UnreadableLedger.load(leaf);
        assertEquals(1, back.size());
        assertEquals(65536, back.get(0)[0]);
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(0, s.filter(p -> p.getFileName().toString().startsWith(".")).count(), "temporary left");
        }
    }
}
