package corfs.backing.qcow2;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Byte arrays reused by compressed-cluster reads (the compressed input, and a whole cluster decompressed
 * on its way into the caller's buffer), so that streaming a compressed image does not allocate and zero
 * two arrays per cluster. Arrays are pooled by exact length, {@link #MAX_POOLED_BYTES} in all; an array
 * taken is owned by its taker until {@link #give} (its content is garbage: every user overwrites what it
 * reads).
 *
 * <p>Thread-safety: lock-free deques; an array is in the pool or with exactly one thread, never both.
 */
final class ScratchArrays {
    /** Most bytes kept idle, all lengths together (a few 2 MiB clusters, many 64 KiB ones). */
    static final long MAX_POOLED_BYTES = 16L << 20;

    private static final ConcurrentHashMap<Integer, ConcurrentLinkedDeque<byte[]>> POOLS = new ConcurrentHashMap<>();
    private static final AtomicLong POOLED = new AtomicLong();

    private ScratchArrays() {
    }

    /** An array of exactly {@code length} bytes, pooled or new. */
    static byte[] take(int length) {
        ConcurrentLinkedDeque<byte[]> pool = POOLS.get(length);
        byte[] b = pool == null ? null : pool.pollFirst();
        if (b == null) {
            return new byte[length];
        }
        POOLED.addAndGet(-length);
        return b;
    }

    /** Gives {@code b} back (kept if the pool has room); the caller no longer touches it. */
    static void give(byte[] b) {
        if (POOLED.addAndGet(b.length) > MAX_POOLED_BYTES) {
            POOLED.addAndGet(-b.length);
            return;
        }
        POOLS.computeIfAbsent(b.length, k -> new ConcurrentLinkedDeque<>()).offerFirst(b);
    }
}
