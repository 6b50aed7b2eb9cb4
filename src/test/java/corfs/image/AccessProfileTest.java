package corfs.image;

import corfs.CorfsException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AccessProfileTest {
    @TempDir
    Path dir;

    private static AccessProfile sample() {
        return new AccessProfile("file:1048576:1:2", 1 << 20, 65536, List.of(
                new AccessProfile.Entry(196608, 65536, 0), new AccessProfile.Entry(0, 131072, 12),
                new AccessProfile.Entry(983040, 65536, 40)));
    }

    @Test
    void writesAndReadsBack() throws Exception {
        Path f = dir.resolve("boot.profile");
        sample().write(f);
        AccessProfile back = AccessProfile.read(f);
        assertEquals(sample(), back);
        assertEquals(262144, back.totalBytes());
        assertTrue(new String(Files.readAllBytes(f), StandardCharsets.US_ASCII).startsWith("corfs-profile 1\n"));
    }

    @Test
    void refusesDamagedFilesNamingTheLine() throws Exception {
        String head = "corfs-profile 1\nbacking_identity t\nbacking_size 1048576\ncluster_size 65536\n";
        String[] bad = {
            "", "corfs-profile 2\n", head + "0 65536\n", head + "0 65536 -1\n", head + "0 100 1\n",
            head + "1048576 65536 1\n", head + "0 131072 1\n65536 65536 2\n", head + "9999999999999999999999 1 1\n",
            "corfs-profile 1\nbacking_size 1048576\ncluster_size 65536\n", head + "0 65536 1\u00e9\n",
            head.replace("65536", "1000"), head + "983040 131072 1\n",
        };
        for (String text : bad) {
            Path f = dir.resolve("bad");
            Files.writeString(f, text, StandardCharsets.ISO_8859_1);
            CorfsException e = assertThrows(CorfsException.class, () -> AccessProfile.read(f), text);
            assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        }
    }

    @Test
    void aLastExtentMayEndAtAnUnalignedBackingSize() throws Exception {
        String text = "corfs-profile 1\n# exported\nbacking_identity t\nbacking_size 100000\ncluster_size 65536\n\n65536 34464 5\n";
        Path f = dir.resolve("p");
        Files.writeString(f, text);
        assertEquals(34464, AccessProfile.read(f).totalBytes());
    }

    @Test
    void refusesLinksAndMissingFiles() throws Exception {
        Path f = dir.resolve("real");
        sample().write(f);
        Path link = dir.resolve("link");
        Files.createSymbolicLink(link, f);
        assertEquals(CorfsException.Reason.INVALID_ARGUMENT,
                assertThrows(CorfsException.class, () -> AccessProfile.read(link)).reason());
        assertEquals(CorfsException.Reason.NOT_FOUND,
                assertThrows(CorfsException.class, () -> AccessProfile.read(dir.resolve("none"))).reason());
    }

    @Test
    void writeRefusesALinkOrAnythingButARegularFileAndWritesNothingThrough() throws Exception {
        Path victim = dir.resolve("victim");
        Files.writeString(victim, "keep");
        Path target = dir.resolve("out.profile");
        Files.createSymbolicLink(target, victim);
        CorfsException e = assertThrows(CorfsException.class, () -> sample().write(target));
        assertTrue(e.getMessage().contains("symbolic link"), e.getMessage());
        assertEquals("keep", Files.readString(victim));
        assertTrue(Files.isSymbolicLink(target));
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        assertThrows(CorfsException.class, () -> sample().write(fifo));
        assertTrue(Files.readAttributes(fifo, java.nio.file.attribute.BasicFileAttributes.class).isOther(), "the FIFO was replaced");
        assertThrows(CorfsException.class, () -> sample().write(Path.of("/dev/null")));
        assertTrue(Files.readAttributes(Path.of("/dev/null"), java.nio.file.attribute.BasicFileAttributes.class).isOther());
        Path regular = dir.resolve("old.profile");
        Files.writeString(regular, "old");
        sample().write(regular); // a regular file is replaced
        assertEquals(sample(), AccessProfile.read(regular));
    }
}
