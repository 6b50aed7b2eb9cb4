package corfs.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.engine.TestLeaves;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Issue 7, defects 11 and 12: create's argument checks (same file by inode, derived names), and no debris. */
@DisplayName("LeafImage.create argument checks")
class CreateChecksTest {
    private static final int SIZE = 1 << 20;

    @TempDir
    Path dir;

    private Path real;
    private Path backing;
    private byte[] backingBytes;

    @BeforeEach
    void setUp() throws IOException {
        real = Files.createDirectory(dir.resolve("real"));
        backing = real.resolve("base.raw");
        TestLeaves.writeBacking(backing, SIZE, 11);
        backingBytes = Files.readAllBytes(backing);
    }

    private List<String> names(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private void assertBackingIntact() throws IOException {
        assertArrayEquals(backingBytes, Files.readAllBytes(backing), "the backing was changed");
    }

    @Test
    @DisplayName("a leaf that is not standalone is refused as a backing; a standalone one is a raw image and fine")
    void incompleteLeafAsBacking() throws IOException {
        Path a = dir.resolve("a.raw");
        LeafImage.create(a, backing, 65536, false);
        CorfsException e = assertThrows(CorfsException.class,
                () -> LeafImage.create(dir.resolve("c.raw"), a, 65536, false));
        assertTrue(e.getMessage().contains("not standalone"), e.getMessage());
        assertEquals(List.of("a.raw", "a.raw.corfs", "real"), names(dir), "create left something behind");
        try (var disk = TestLeaves.open(a, corfs.io.FileOps.system())) {
            assertArrayEquals(backingBytes, TestLeaves.readAll(disk)); // every cluster local: standalone
        }
        LeafImage.create(dir.resolve("c.raw"), a, 65536, false);
        assertTrue(Files.exists(dir.resolve("c.raw.corfs")));
    }

    @Nested
    @DisplayName("defect 11: a leaf that is the backing is refused, compared by device and inode")
    class SameFile {
        @Test
        @DisplayName("through a symlinked directory: create --force --backing real/base.raw alias/base.raw")
        void symlinkedDirectory() throws IOException {
            Path alias = Files.createSymbolicLink(dir.resolve("alias"), real);
            CorfsException e = assertThrows(CorfsException.class,
                    () -> LeafImage.create(alias.resolve("base.raw"), backing, 65536, true));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains("is the backing"), e.getMessage());
            assertBackingIntact();
            assertEquals(List.of("base.raw"), names(real));
        }

        @Test
        @DisplayName("through a hard link and a symlink to the backing")
        void links() throws IOException {
            Path hard = Files.createLink(dir.resolve("hard.raw"), backing);
            Path soft = Files.createSymbolicLink(dir.resolve("soft.raw"), backing);
            for (Path leaf : List.of(hard, soft)) {
                assertThrows(CorfsException.class, () -> LeafImage.create(leaf, backing, 65536, true), leaf.toString());
            }
            assertBackingIntact();
        }

        @Test
        @DisplayName("when a name made beside the leaf (LEAF.corfs) is the backing")
        void derivedNameIsBacking() throws IOException {
            Path metaNamed = Files.createLink(dir.resolve("d.raw.corfs"), backing);
            CorfsException e = assertThrows(CorfsException.class,
                    () -> LeafImage.create(dir.resolve("d.raw"), metaNamed, 65536, true));
            assertTrue(e.getMessage().contains("is the backing"), e.getMessage());
            assertBackingIntact();
        }
    }

    @Nested
    @DisplayName("defect 12: every derived name is checked up front; a failed create leaves nothing")
    class DerivedNames {
        @Test
        @DisplayName("names of 239 to 255 bytes are refused before anything is made; 238 bytes work")
        void longNames() throws IOException {
            for (int len : new int[] {239, 246, 250, 255}) {
                Path leaf = dir.resolve("x".repeat(len));
                CorfsException e = assertThrows(CorfsException.class, () -> LeafImage.create(leaf, backing, 65536,
                        false), "length " + len);
                assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
                assertTrue(e.getMessage().contains("too long"), e.getMessage());
                assertEquals(List.of("real"), names(dir), "debris after a refused create of length " + len);
            }
            Path ok = dir.resolve("y".repeat(238));
            LeafImage.create(ok, backing, 65536, false);
            UnreadableLedger.save(ok, List.of(new long[] {0, 65536}));
            assertEquals(1, UnreadableLedger.load(ok).size());
        }

        @Test
        @DisplayName("a failure half-way removes the data file, so a retry does not say 'already exists'")
        void failureLeavesNothing() throws IOException {
            Path leaf = dir.resolve("disk.raw");
            Path blocker = Files.createDirectory(dir.resolve("disk.raw.corfs.tmp"));
            Files.writeString(blocker.resolve("f"), "x"); // a non-empty directory cannot be replaced
            assertThrows(IOException.class, () -> LeafImage.create(leaf, backing, 65536, false));
            assertEquals(List.of("disk.raw.corfs.tmp", "real"), names(dir), "debris after a failed create");
            Files.delete(blocker.resolve("f"));
            Files.delete(blocker);
            LeafImage.create(leaf, backing, 65536, false);
            assertTrue(Files.exists(LeafImage.metadataPathOf(leaf)));
        }
    }
}
