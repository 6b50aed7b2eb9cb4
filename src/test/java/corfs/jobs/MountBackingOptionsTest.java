package corfs.jobs;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

/** The mount's backing_timeout reaches an NBD backing's own deadline (which covers its reconnect). */
@DisplayName("an NBD backing's deadline follows the mount's backing_timeout unless the leaf sets its own")
class MountBackingOptionsTest {
    private static final String NBD = "nbd://127.0.0.1:10809/disk";

    @Test
    @DisplayName("backing_timeout=0 (no timeout): the longest timeout, a day, instead of NBD's fixed 30 s")
    void noTimeout() {
        assertEquals(Map.of("timeout", "86400", "connections", "2"),
                MountSession.openOptions(NBD, Map.of("connections", "2"), 0));
        assertEquals(Map.of("timeout", "86400"), MountSession.openOptions("nbd+unix:///disk?socket=/s", Map.of(), 0));
    }

    @Test
    @DisplayName("backing_timeout=N: N seconds; the leaf's own timeout wins; other transports unchanged")
    void others() {
        assertEquals(Map.of("timeout", "120"), MountSession.openOptions(NBD, Map.of(), 120_000));
        Map<String, String> own = Map.of("timeout", "3");
        assertSame(own, MountSession.openOptions(NBD, own, 0));
        Map<String, String> http = Map.of();
        assertSame(http, MountSession.openOptions("http://127.0.0.1/disk.raw", http, 0));
        assertSame(http, MountSession.openOptions("/var/lib/base.raw", http, 0));
    }
}
