package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** How {@code --wait} knows the job its own command started, from job_id before and after the write. */
@DisplayName("--wait: which job is ours")
class WaitFollowTest {
    private static Map<String, String> after(String job, long id) {
        return Map.of("image", "leaf.raw", "job", job, "job_id", Long.toString(id), "state", "running");
    }

    @Test
    @DisplayName("one more than before, of our kind: ours")
    void ours() {
        assertEquals(5, JobCommands.ownJob(4, after("stream", 5), "stream"));
        assertEquals(1, JobCommands.ownJob(0, after("commit", 1), "commit"));
    }

    @Test
    @DisplayName("more than one more: another writer started a job meanwhile; refuse to guess")
    void raced() {
        Main.ExitException e = assertThrows(Main.ExitException.class,
                () -> JobCommands.ownJob(4, after("commit", 6), "stream"));
        assertTrue(e.getMessage().contains("another writer"), e.getMessage());
    }

    @Test
    @DisplayName("a daemon without job ids: follow the leaf's job (-1)")
    void unnumbered() {
        assertEquals(-1, JobCommands.ownJob(-1, Map.of("image", "leaf.raw", "job", "stream"), "stream"));
    }
}
