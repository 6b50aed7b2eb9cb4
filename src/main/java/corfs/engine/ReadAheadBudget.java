package corfs.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Arrays;
import java.util.function.LongSupplier;

/**
 * How far a sequential cold reader may be fetched ahead, sized from the link rather than fixed: the bytes
 * the link carries in a target time ({@link #MIN_TARGET_NANOS}, or two base round trips when that is
 * longer). The model is BBR's (a link is a bottleneck rate and a base round trip; what is in flight beyond
 * their product only queues): a guest miss that arrives while the read-ahead is in flight queues behind at
 * most about one round trip of it, while a fast link (a local file, NBD on a LAN) keeps the largest shape,
 * {@code maxChunks} chunks of {@code maxChunkClusters}.
 *
 * <h2>Measurements</h2>
 * Every backing read of the disk (copy-on-read, read-ahead, stream, prefetch: they share the link) is
 * bracketed by {@link #begin} and {@link #end}. The <b>rate</b> is the bytes delivered per second of
 * <em>busy</em> time (time with at least one read in flight, so that a reader's pauses do not count as a
 * slow link), one sample per {@link #SAMPLE_NANOS} of busy time, and the estimate is the largest of the
 * last {@link #RATE_SAMPLES} samples (a max filter: fewer bytes in flight than the link carries shows a
 * lower rate, never a higher one). The <b>base round trip</b> is the smallest latency over the last
 * {@link #RTT_SAMPLES} reads of at most {@link #SMALL_READ} bytes that began while no other read of the
 * disk was in flight (a guest's copy-on-read miss, typically). Only those: a read queued behind our own
 * read-ahead, or one as large as a chunk, would measure what the budget itself makes, and a target of
 * twice that would feed on itself. Until one is seen the target is {@link #MIN_TARGET_NANOS}.
 *
 * <h2>Why it converges</h2>
 * With B bytes in flight below the link's capacity, each read takes about its round trip L and the rate
 * measured is B / L: the next budget is B x target / L, larger while L is under the target, so it grows
 * geometrically until the link is full; then the rate measured is the link's and the budget settles at
 * rate x target. A link that slows (another client) shows a lower rate once the old samples leave the
 * filter, and the budget shrinks with it.
 *
 * <h2>Shape</h2>
 * The budget is cut into chunks of half of it (whole clusters, at least one, at most
 * {@code maxChunkClusters}) and as many chunks as fit, 1 to {@code maxChunks}; at least
 * {@link #MIN_BUDGET} bytes. A link fast enough to carry the largest shape in {@link #FAST_TARGET_NANOS}
 * keeps the largest shape. Before the first sample the shape is the largest (nothing is known yet, and a
 * fast link must not start slow); on a slow link the first copy-on-read miss gives the first sample.
 *
 * <p>Thread-safe: {@link #begin}/{@link #end} take this object's monitor for a few arithmetic steps (they
 * bracket a backing read, never a local one); {@link #shape} is one volatile read of an immutable record.
 */
final class ReadAheadBudget {
    private static final Logger LOG = LoggerFactory.getLogger(ReadAheadBudget.class);
    /** The least time of link a read-ahead may hold: 10 ms (a local disk's or a LAN's budget is capped). */
    static final long MIN_TARGET_NANOS = 10_000_000L;
    /**
     * A link that carries the largest shape within this time keeps it: a local disk or a LAN gains from the
     * deep queue (a disk read at 600 MB/s measures about 10 ms with 8 x 1 MiB in flight, and sizing it down
     * to the 10 ms target cost a cold sequential read a third of its throughput), and a miss behind it
     * waits at most this long.
     */
    static final long FAST_TARGET_NANOS = 25_000_000L;
    /** Busy time per rate sample. */
    static final long SAMPLE_NANOS = 5_000_000L;
    static final int RATE_SAMPLES = 8;
    static final int RTT_SAMPLES = 32;
    /** Reads up to this size that begin alone measure the base round trip. */
    static final long SMALL_READ = 64 << 10;
    /** The least budget: one FUSE request (128 KiB). */
    static final long MIN_BUDGET = 128 << 10;

    /** Chunks of {@code chunkClusters} clusters, {@code chunks} of them at most ahead of the reader. */
    record Shape(long chunkClusters, int chunks) {
        long windowClusters() {
            return chunkClusters * chunks;
        }
    }

    private final LongSupplier nanoClock;
    private final int clusterShift;
    private final long maxChunkClusters;
    private final int maxChunks;
    /** False: {@link #begin}/{@link #end} measure nothing and the shape stays the largest. */
    private final boolean adaptive;
    private volatile Shape shape;

    // ---- guarded by this
    private int active;
    private long lastEventNanos;
    private long sampleBusyNanos;
    private long sampleBytes;
    private final long[] rates = new long[RATE_SAMPLES];
    private int rateNext;
    private final long[] rtts = new long[RTT_SAMPLES];
    private int rttNext;

    /**
     * @param clusterSize      the disk's cluster size (a power of two)
     * @param maxChunkClusters clusters of the largest chunk (one fill buffer)
     * @param maxChunks        the most chunks ahead of a reader
     */
    ReadAheadBudget(LongSupplier nanoClock, int clusterSize, long maxChunkClusters, int maxChunks) {
        this(nanoClock, clusterSize, maxChunkClusters, maxChunks, true);
    }

    private ReadAheadBudget(LongSupplier nanoClock, int clusterSize, long maxChunkClusters, int maxChunks,
                            boolean adaptive) {
        if (Integer.bitCount(clusterSize) != 1 || maxChunkClusters < 1 || maxChunks < 1) {
            throw new IllegalArgumentException("cluster " + clusterSize + ", chunk " + maxChunkClusters + ", chunks "
                    + maxChunks);
        }
        this.nanoClock = nanoClock;
        this.clusterShift = Integer.numberOfTrailingZeros(clusterSize);
        this.maxChunkClusters = maxChunkClusters;
        this.maxChunks = maxChunks;
        this.adaptive = adaptive;
        this.shape = new Shape(maxChunkClusters, maxChunks);
        Arrays.fill(rtts, Long.MAX_VALUE);
    }

    /** A budget that never changes: {@code chunks} chunks of {@code chunkClusters} (tests, a fixed policy). */
    static ReadAheadBudget fixed(int clusterSize, long chunkClusters, int chunks) {
        return new ReadAheadBudget(() -> 0L, clusterSize, chunkClusters, chunks, false);
    }

    /** The current shape; immutable. */
    Shape shape() {
        return shape;
    }

    /**
     * A backing read starts; returns an opaque token for {@link #end} (its start time, whose lowest bit says
     * whether no other read of this disk was in flight).
     */
    long begin() {
        if (!adaptive) {
            return 0;
        }
        synchronized (this) {
            return begin(nanoClock.getAsLong());
        }
    }

    private long begin(long now) {
        assert Thread.holdsLock(this);
        advance(now);
        return (now & ~1L) | (active++ == 0 ? 1 : 0);
    }

    /**
     * The backing read of {@code token} ({@link #begin}) ended, having delivered {@code bytes} (0 when it failed:
     * the time still counts, so a failing or stalling link shows a low rate).
     */
    void end(long token, long bytes) {
        if (!adaptive) {
            return;
        }
        synchronized (this) {
            ended(token, bytes, nanoClock.getAsLong());
        }
    }

    private void ended(long token, long bytes, long now) {
        assert Thread.holdsLock(this);
        advance(now);
        active = Math.max(0, active - 1);
        sampleBytes += Math.max(0, bytes);
        if (bytes > 0 && bytes <= SMALL_READ && (token & 1) != 0) {
            // small and alone: it queued behind none of ours and carried little, so its latency is the round trip
            rtts[rttNext] = Math.max(0, now - (token & ~1L));
            rttNext = (rttNext + 1) % RTT_SAMPLES;
        }
        if (sampleBusyNanos >= SAMPLE_NANOS) {
            rates[rateNext] = (long) (sampleBytes * 1e9 / sampleBusyNanos);
            rateNext = (rateNext + 1) % RATE_SAMPLES;
            sampleBytes = 0;
            sampleBusyNanos = 0;
            Shape next = shapeFor(maxRate(), baseRtt());
            if (!next.equals(shape) && LOG.isDebugEnabled()) {
                LOG.debug("read-ahead {} x {} clusters (rate {} B/s, base round trip {} us)", next.chunks(),
                        next.chunkClusters(), maxRate(), baseRtt() == Long.MAX_VALUE ? -1 : baseRtt() / 1000);
            }
            shape = next;
        }
    }

    private void advance(long now) {
        if (active > 0) {
            sampleBusyNanos += Math.max(0, now - lastEventNanos);
        }
        lastEventNanos = now;
    }

    private long maxRate() {
        long m = 0;
        for (long r : rates) {
            m = Math.max(m, r);
        }
        return m;
    }

    private long baseRtt() {
        long m = Long.MAX_VALUE;
        for (long r : rtts) {
            m = Math.min(m, r);
        }
        return m;
    }

    /** The bytes the read-ahead may have in flight now (the shape's window). */
    long budgetBytes() {
        return shape.windowClusters() << clusterShift;
    }

    /** The shape for a link of {@code bytesPerSecond} and base round trip {@code rttNanos} (MAX: unknown). */
    Shape shapeFor(long bytesPerSecond, long rttNanos) {
        long target = rttNanos == Long.MAX_VALUE ? MIN_TARGET_NANOS : Math.max(MIN_TARGET_NANOS, 2 * rttNanos);
        long maxBytes = (maxChunkClusters * maxChunks) << clusterShift;
        if ((double) bytesPerSecond * FAST_TARGET_NANOS / 1e9 >= maxBytes) {
            return new Shape(maxChunkClusters, maxChunks); // a fast link: the largest shape queues little
        }
        long budget = (long) Math.min((double) maxBytes, (double) bytesPerSecond * target / 1e9);
        budget = Math.max(budget, Math.min(maxBytes, Math.max(MIN_BUDGET, 1L << clusterShift)));
        long chunk = Math.max(1, Math.min(maxChunkClusters, (budget / 2) >>> clusterShift));
        int chunks = (int) Math.max(1, Math.min(maxChunks, budget / (chunk << clusterShift)));
        return new Shape(chunk, chunks);
    }

    @Override
    public String toString() {
        Shape s = shape;
        return "ReadAheadBudget[" + s.chunks() + " x " + (s.chunkClusters() << clusterShift) + " bytes]";
    }
}
