package corfs.backing;

import corfs.vocabulary.LeafCounters;
import java.util.concurrent.atomic.LongAdder;

/**
 * The latency histogram and error counts of one leaf's backing, fed by {@link MeteredBacking}: fixed
 * buckets ({@link LeafCounters#LATENCY_BOUNDS_SECONDS}), one {@link LongAdder} per bucket, so recording a
 * call takes no lock and allocates nothing. Read by {@link #snapshotInto} at status time: the counters are
 * read one after another, so a snapshot taken while calls complete may count a call in its bucket and not
 * yet in the sum (never the other way round across snapshots: every counter only grows).
 *
 * <p>Thread-safe.
 */
public final class BackingMeter {
    private final LongAdder[] buckets = new LongAdder[LeafCounters.LATENCY_BOUNDS_SECONDS.length + 1];
    private final LongAdder sumNanos = new LongAdder();
    private final LongAdder timeouts = new LongAdder();
    private final LongAdder ioErrors = new LongAdder();

    public BackingMeter() {
        for (int i = 0; i < buckets.length; i++) {
            buckets[i] = new LongAdder();
        }
    }

    /** One backing call that took {@code nanos}, whatever its outcome. */
    void record(long nanos) {
        long n = Math.max(0, nanos);
        buckets[LeafCounters.bucketOf(n)].increment();
        sumNanos.add(n);
    }

    /** One backing call abandoned at its deadline. */
    void timedOut() {
        timeouts.increment();
    }

    /** One backing call that failed otherwise. */
    void failed() {
        ioErrors.increment();
    }

    /** The counters with this meter's latency and errors and the given fetched bytes. */
    public LeafCounters snapshotInto(long copyOnRead, long readAhead, long stream, long prefetch) {
        long[] b = new long[buckets.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = buckets[i].sum();
        }
        return new LeafCounters(copyOnRead, readAhead, stream, prefetch, b, sumNanos.sum(), timeouts.sum(),
                ioErrors.sum());
    }
}
