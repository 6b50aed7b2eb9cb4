package corfs.backing;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("naming a lock holder")
class LockHoldersTest {
    @Test
    @DisplayName("a holder's command line cannot put control characters (a fake status line) into a message")
    void noControlCharacters() throws Exception {
        Process p = new ProcessBuilder("sh", "-c", "sleep 30", "x\nimage=evil.raw state=completed").start();
        try {
            String d = LockHolders.process(p.pid());
            assertTrue(d.contains("pid " + p.pid()), d);
            assertFalse(d.chars().anyMatch(Character::isISOControl), d);
        } finally {
            p.destroy();
            p.waitFor(10, TimeUnit.SECONDS);
        }
    }
}
