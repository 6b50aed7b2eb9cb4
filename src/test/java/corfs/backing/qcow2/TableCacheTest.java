package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("metadata and decompressed-cluster caches stay within their budgets")
class TableCacheTest {

    @Test
    @DisplayName("least recently used tables go first; the budget holds; one table always stays")
    void tables() {
        TableCache c = new TableCache(3 * (8 * 512 + 16));
        for (int i = 0; i < 3; i++) {
            c.put(new TableCache.Key(0, false, i * 65536L), new long[512]);
        }
        assertNotNull(c.get(new TableCache.Key(0, false, 0))); // 0 now most recent
        c.put(new TableCache.Key(0, false, 3 * 65536L), new long[512]);
        assertNull(c.get(new TableCache.Key(0, false, 65536L)), "the least recently used went");
        assertNotNull(c.get(new TableCache.Key(0, false, 0)));
        assertTrue(c.usedBytes() <= 3 * (8 * 512 + 16));
        assertNull(c.get(new TableCache.Key(0, true, 0)), "an L1 page is not an L2 table at the same offset");

        TableCache tiny = new TableCache(0);
        tiny.put(new TableCache.Key(1, false, 0), new long[8192]);
        assertNotNull(tiny.get(new TableCache.Key(1, false, 0)), "one table stays whatever the budget");
        tiny.put(new TableCache.Key(1, false, 65536), new long[8192]);
        assertNull(tiny.get(new TableCache.Key(1, false, 0)));
        assertEquals(8 * 8192 + 16, tiny.usedBytes());
    }

    @Test
    @DisplayName("decompressed clusters: least recently used out, at least one kept")
    void clusters() {
        DecompressedClusters c = new DecompressedClusters(2 * 65536);
        c.put(new DecompressedClusters.Key(0, 1), new byte[65536]);
        c.put(new DecompressedClusters.Key(0, 2), new byte[65536]);
        c.get(new DecompressedClusters.Key(0, 1));
        c.put(new DecompressedClusters.Key(0, 3), new byte[65536]);
        assertNull(c.get(new DecompressedClusters.Key(0, 2)));
        assertNotNull(c.get(new DecompressedClusters.Key(0, 1)));
        DecompressedClusters small = new DecompressedClusters(1024);
        small.put(new DecompressedClusters.Key(1, 9), new byte[2 << 20]);
        assertNotNull(small.get(new DecompressedClusters.Key(1, 9)));
    }
}
