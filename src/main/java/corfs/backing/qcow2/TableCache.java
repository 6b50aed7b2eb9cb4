package corfs.backing.qcow2;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The metadata cache of a chain: L2 tables and L1 pages, least recently used evicted first, within a
 * byte budget (QEMU's l2-cache-size plays the same role).
 *
 * <p>Thread-safety: one monitor guards the map, held only for a lookup or an insert, never for I/O. A
 * cached array is never written after it is put, so readers use it without the lock. Two threads that
 * miss the same table both load it; the later put wins (same bytes).
 *
 * <p>Invariant: {@code used} is the sum of the cached arrays' sizes; after a put it is within the
 * budget, or the cache holds the one table just put.
 */
final class TableCache {
    /** Which table: layer index in the chain, L1 page or L2 table, host offset. */
    record Key(int layer, boolean l1, long offset) {
    }

    private final long budget;
    private final LinkedHashMap<Key, long[]> map = new LinkedHashMap<>(64, 0.75f, true);
    private long used;
    private long loads;

    TableCache(long budgetBytes) {
        this.budget = budgetBytes;
    }

    synchronized long[] get(Key key) {
        return map.get(key);
    }

    synchronized void put(Key key, long[] table) {
        loads++;
        long[] old = map.put(key, table);
        if (old != null) {
            used -= bytes(old);
        }
        used += bytes(table);
        Iterator<Map.Entry<Key, long[]>> it = map.entrySet().iterator();
        while (used > budget && map.size() > 1) {
            Map.Entry<Key, long[]> eldest = it.next();
            if (eldest.getKey().equals(key)) {
                continue;
            }
            used -= bytes(eldest.getValue());
            it.remove();
        }
        assert used >= 0;
    }

    /** Bytes held now. */
    synchronized long usedBytes() {
        return used;
    }

    /** Tables loaded so far (misses). */
    synchronized long loads() {
        return loads;
    }

    private static long bytes(long[] t) {
        return 8L * t.length + 16;
    }
}
