package corfs.io;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 7: ENOSPC is recognised in one place, at the I/O edge, and everyone else asks it. */
@DisplayName("I/O failures classified once")
class IoFailuresTest {

    @Test
    @DisplayName("ENOSPC becomes NO_SPACE, in a cause chain too; other failures stay as they are")
    void classifies() {
        IOException raw = new IOException("No space left on device");
        CorfsException c = (CorfsException) IoFailures.classify(raw, "the leaf's filesystem is full");
        assertEquals(Reason.NO_SPACE, c.reason());
        assertSame(raw, c.getCause());
        assertTrue(IoFailures.isNoSpace(new IOException("wrapped", raw)));
        assertTrue(IoFailures.isNoSpace(new CorfsException(Reason.NO_SPACE, "full")));
        IOException other = new IOException("Input/output error");
        assertSame(other, IoFailures.classify(other, "x"));
        assertFalse(IoFailures.isNoSpace(other));
    }

    @Test
    @DisplayName("no other main source matches the ENOSPC message text")
    void onePlace() throws IOException {
        Path main = Path.of("src/main/java/corfs");
        try (Stream<Path> files = Files.walk(main)) {
            List<Path> matching = files.filter(p -> p.toString().endsWith(".java"))
                    .filter(p -> !p.endsWith("io/IoFailures.java"))
                    .filter(p -> {
                        try {
                            return Files.readString(p).contains("\"No space left on device\"");
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }).toList();
            assertEquals(List.of(), matching, "ENOSPC recognised by message text outside corfs.io.IoFailures");
        }
    }
}
