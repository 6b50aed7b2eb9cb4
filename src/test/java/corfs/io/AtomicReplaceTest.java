package corfs.io;

import corfs.CorfsException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("AtomicReplace: the one way a small file is replaced whole")
class AtomicReplaceTest {
    @TempDir
    Path dir;

    private List<String> names() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    @DisplayName("replaces the content, with the mode asked, and leaves no temporary file")
    void replaces() throws IOException {
        Path t = dir.resolve("leaf.corfs-prefetch");
        Files.writeString(t, "old and longer");
        AtomicReplace.durable(".x-", "rw-------").write(t, "new".getBytes(StandardCharsets.US_ASCII));
        assertEquals("new", Files.readString(t));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(t)));
        assertEquals(List.of("leaf.corfs-prefetch"), names());
    }

    @Test
    @DisplayName("a link at the target is replaced, never written through")
    void linkReplaced() throws IOException {
        Path victim = dir.resolve("victim");
        Files.writeString(victim, "keep");
        Path t = dir.resolve("side");
        Files.createSymbolicLink(t, victim);
        AtomicReplace.durable(".x-", "rw-------").write(t, "new".getBytes(StandardCharsets.US_ASCII));
        assertEquals("keep", Files.readString(victim));
        assertTrue(Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS));
        assertEquals("new", Files.readString(t));
    }

    @Test
    @DisplayName("refusing: a directory or (unless allowed) a link is not replaced, with the caller's name in the message")
    void refuses() throws IOException {
        Path d = dir.resolve("adir");
        Files.createDirectory(d);
        CorfsException e = assertThrows(CorfsException.class, () -> AtomicReplace.durable(".x-", "rw-r--r--")
                .refusing("profile", false).write(d, new byte[1]));
        assertTrue(e.getMessage().startsWith("profile " + d), e.getMessage());
        Path link = dir.resolve("link");
        Files.createSymbolicLink(link, dir.resolve("nowhere"));
        assertThrows(CorfsException.class, () -> AtomicReplace.durable(".x-", "rw-r--r--")
                .refusing("profile", false).write(link, new byte[1]));
        AtomicReplace.durable(".x-", "rw-r--r--").refusing("metrics_file", true).write(link, new byte[1]);
        assertTrue(Files.isRegularFile(link, LinkOption.NOFOLLOW_LINKS));
        assertEquals(List.of("adir", "link"), names());
    }

    @Test
    @DisplayName("a failed rename (a directory at the target) removes the temporary file")
    void failureCleansUp() throws IOException {
        Path d = dir.resolve("adir");
        Files.createDirectory(d);
        Files.writeString(d.resolve("inside"), "x");
        assertThrows(IOException.class, () -> AtomicReplace.durable(".x-", "rw-------").write(d, new byte[3]));
        assertEquals(List.of("adir"), names());
    }

    @Test
    @DisplayName("withExactMode sets the mode whatever the umask took away")
    void exactMode() throws IOException {
        Path t = dir.resolve("metrics.prom");
        new AtomicReplace(".m.", PosixFilePermissions.fromString("rw-r--r--"), false, false, null, false)
                .withExactMode().write(t, new byte[2]);
        assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(t)));
    }
}
