package corfs.backing.qcow2;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The last few compressed clusters decompressed, so that reads smaller than a cluster (FUSE asks for
 * 128 KiB at a time; a compressed cloud image may have 2 MiB clusters) do not decompress the same
 * cluster again for every piece. Least recently used out, within a byte budget; at least one cluster
 * is kept.
 *
 * <p>Thread-safety: one monitor, held for a lookup or an insert only; decompression runs outside it,
 * so many clusters decompress in parallel (two threads missing the same cluster both decompress it). A
 * cached array is never written after it is put.
 */
final class DecompressedClusters {
    /** Which cluster: layer index in the chain and its L2 entry (offset and length of the data). */
    record Key(int layer, long descriptor) {
    }

    private final long budget;
    private final LinkedHashMap<Key, byte[]> map = new LinkedHashMap<>(16, 0.75f, true);
    private long used;

    DecompressedClusters(long budgetBytes) {
        this.budget = budgetBytes;
    }

    synchronized byte[] get(Key key) {
        return map.get(key);
    }

    synchronized void put(Key key, byte[] cluster) {
        byte[] old = map.put(key, cluster);
        used += cluster.length - (old == null ? 0 : old.length);
        Iterator<Map.Entry<Key, byte[]>> it = map.entrySet().iterator();
        while (used > budget && map.size() > 1) {
            Map.Entry<Key, byte[]> eldest = it.next();
            used -= eldest.getValue().length;
            it.remove();
        }
        assert used >= 0;
    }
}
