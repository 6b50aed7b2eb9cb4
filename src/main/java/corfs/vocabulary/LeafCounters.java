package corfs.vocabulary;

import java.util.Arrays;

/**
 * The daemon's counters of one leaf since it was mounted, as the status shows them: bytes fetched from the
 * backing by purpose, the backing's call latency as a histogram, and backing errors by kind. Counters only
 * grow while the mount lasts and start at zero at the next mount.
 *
 * @param fetchedCopyOnRead bytes read from the backing to serve guest reads and the partly written edge
 *                          clusters of guest writes
 * @param fetchedReadAhead  bytes read from the backing ahead of a sequential cold reader
 * @param fetchedStream     bytes read from the backing by the stream job
 * @param fetchedPrefetch   bytes read from the backing by the prefetch job
 * @param latencyBuckets    backing calls (reads and allocation questions) per latency bucket, not cumulative:
 *                          entry i counts calls that took at most {@link #LATENCY_BOUNDS_SECONDS}[i] and more
 *                          than the bound before it; the last entry counts the slower ones (+Inf). Length
 *                          {@code LATENCY_BOUNDS_SECONDS.length + 1}.
 * @param latencySumNanos   the total time of those calls, in nanoseconds
 * @param timeouts          backing calls abandoned at the mount's backing_timeout
 * @param ioErrors          backing calls that failed otherwise (I/O errors, refused ranges, lost servers)
 */
public record LeafCounters(
        long fetchedCopyOnRead,
        long fetchedReadAhead,
        long fetchedStream,
        long fetchedPrefetch,
        long[] latencyBuckets,
        long latencySumNanos,
        long timeouts,
        long ioErrors) {

    /**
     * Upper bounds of the latency buckets, in seconds (Prometheus's {@code le}): from a page-cache hit of a
     * local file (tens of microseconds) to a network backing at its timeout.
     */
    private static final double[] BOUNDS = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

    /** A copy of the buckets' upper bounds, in seconds, ascending. */
    public static final double[] LATENCY_BOUNDS_SECONDS = BOUNDS.clone();

    /** All zero: a leaf without backing, or a status from a daemon that did not report counters. */
    public static final LeafCounters NONE = new LeafCounters(0, 0, 0, 0, new long[BOUNDS.length + 1], 0, 0, 0);

    public LeafCounters {
        if (latencyBuckets == null || latencyBuckets.length != BOUNDS.length + 1) {
            throw new IllegalArgumentException("latency buckets: " + Arrays.toString(latencyBuckets));
        }
        latencyBuckets = latencyBuckets.clone();
    }

    /** The bucket of a call that took {@code nanos}: the first whose bound it does not exceed. */
    public static int bucketOf(long nanos) {
        for (int i = 0; i < BOUNDS.length; i++) {
            if (nanos <= (long) (BOUNDS[i] * 1e9)) {
                return i;
            }
        }
        return BOUNDS.length;
    }

    /** Per-bucket counts (a copy). */
    @Override
    public long[] latencyBuckets() {
        return latencyBuckets.clone();
    }

    /** Backing calls counted in all. */
    public long backingCalls() {
        long n = 0;
        for (long c : latencyBuckets) {
            n += c;
        }
        return n;
    }

    /** Bytes fetched from the backing for any purpose. */
    public long fetchedTotal() {
        return fetchedCopyOnRead + fetchedReadAhead + fetchedStream + fetchedPrefetch;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LeafCounters c && fetchedCopyOnRead == c.fetchedCopyOnRead
                && fetchedReadAhead == c.fetchedReadAhead && fetchedStream == c.fetchedStream
                && fetchedPrefetch == c.fetchedPrefetch && Arrays.equals(latencyBuckets, c.latencyBuckets)
                && latencySumNanos == c.latencySumNanos && timeouts == c.timeouts && ioErrors == c.ioErrors;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(latencyBuckets) * 31 + Long.hashCode(fetchedTotal() + latencySumNanos + timeouts + ioErrors);
    }

    @Override
    public String toString() {
        return "LeafCounters[fetched " + fetchedCopyOnRead + "/" + fetchedReadAhead + "/" + fetchedStream + "/"
                + fetchedPrefetch + ", latency " + Arrays.toString(latencyBuckets) + " sum " + latencySumNanos
                + " ns, timeouts " + timeouts + ", io " + ioErrors + "]";
    }
}
