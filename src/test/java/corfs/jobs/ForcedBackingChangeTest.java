package corfs.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.FileBacking;
import corfs.image.LeafImages;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A backing whose identity changed: refused, unless {@code --force}; a writable forced mount records it. */
@DisplayName("a changed backing accepted with --force")
class ForcedBackingChangeTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private static void refused(Path leaf) {
        CorfsException e = assertThrows(CorfsException.class,
                () -> MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0)).close());
        assertEquals(Reason.INVALID_ARGUMENT, e.reason(), e.getMessage());
    }

    @Test
    @DisplayName("a writable forced mount records the new identity; a read-only one accepts it for itself only")
    void forcedMountRecords() throws Exception {
        Path backing = dir.resolve("base.raw");
        Files.write(backing, new byte[4 * MIB]);
        Path leaf = dir.resolve("leaf.img");
        LeafImages.create(leaf, backing.toString(), "raw", Map.of(), 65536, false, null);
        Files.setLastModifiedTime(backing, FileTime.fromMillis(981_173_106_000L));
        refused(leaf);

        MountSession.open(List.of(leaf), new MountSession.Options(true, true, 0)).close();
        refused(leaf); // a read-only mount cannot record what it accepted
        assertNotEquals(FileBacking.identityOf(backing), LeafImages.info(leaf).backingIdentity());

        MountSession.open(List.of(leaf), new MountSession.Options(false, true, 0)).close();
        assertEquals(FileBacking.identityOf(backing), LeafImages.info(leaf).backingIdentity());
        MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0)).close();

        Files.setLastModifiedTime(backing, FileTime.fromMillis(1_012_709_106_000L));
        refused(leaf); // a later change nobody acknowledged is refused again
    }
}
