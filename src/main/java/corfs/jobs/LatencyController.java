package corfs.jobs;

/**
 * The pacing of a {@code speed=auto} stream: LEDBAT (RFC 6817) adapted from packets to fills. It sets two
 * things: the <b>fill size</b> (the bytes of one fill, a power-of-two fraction of the largest step, at
 * least the smallest fill: {@link #MIN_AUTO_FILL} or one cluster, see below) and the <b>window</b> (fills
 * in flight, and their rate). Each completed data fill of a fill size ({@link #sample}) gives one latency sample: the time its backing read took.
 * <ul>
 *   <li><b>base</b>: the minimum latency over a sliding window of {@value #BASE_BUCKETS} buckets of
 *       {@value #BASE_BUCKET_SECONDS} s each (RFC 6817's base history): what a fill costs with no queue
 *       at the server. A bucket with no sample is empty, so after a path change (a slower link, a moved
 *       server) the old minimum expires within the window and the new one becomes the base. Samples
 *       compare only with fills of the same size or larger: a base is kept per fill size, and the base of
 *       a size is the minimum over that size and every larger one (a larger fill with no queue is an upper
 *       bound of a smaller one's cost; a smaller fill is never the base of a larger one, which would read
 *       its extra transfer as queue).</li>
 *   <li><b>current</b>: the minimum of the last {@value #CURRENT_SAMPLES} samples of the current fill
 *       size (a low-pass that drops one-off spikes; it starts afresh when the size changes, so a smaller
 *       fill is not read as less queue).</li>
 *   <li><b>queueing delay</b> = current - base: what the queue in front of the server adds, our fills'
 *       and everyone else's. A base measured while the server had no queue at all (a rate limiter's
 *       burst) counts a fill's own transfer as queue too: rightly, a guest read waits behind it. For a
 *       fill under {@link #REFERENCE_FILL} the delay is scaled up by {@code REFERENCE_FILL / fill}: a
 *       server that shares its bandwidth per request (nbdkit's rate filter, fair queueing) shows a small
 *       request only its share of the queue, so a smaller fill would read as less queue.</li>
 * </ul>
 * The <b>window</b> {@code w} is in fills, {@link #MIN_WINDOW} to {@link #MAX_WINDOW}: the stream keeps
 * {@code ceil(w)} fills in flight (1 to 8) and at most {@code w} fills per current latency
 * ({@link #rateLimit}, as LEDBAT sends a window per round trip; never below {@link #MIN_RATE};
 * unlimited at the maximum window). So below one fill in flight the stream still goes on, a fill in
 * flight a fraction {@code w} of the time: it always finishes.
 * <ul>
 *   <li>While the queueing delay is under the target: additive increase, {@code GAIN * off_target / w}
 *       per sample (so {@code GAIN * off_target} fills per round trip), with {@code off_target =
 *       (target - delay) / target}; at most doubling per sample (a window far below 1 sees one sample in
 *       many base round trips).</li>
 *   <li>Above it: multiplicative decrease by {@code target / delay}, at most halving, at most once per
 *       round trip (the samples of fills issued before the decrease do not count again).</li>
 * </ul>
 * The <b>fill size</b> is the window's gear: the bytes in flight ({@code w * fill}, LEDBAT's window in
 * bytes) are held as a count of one to eight fills where the sizes allow. When the window falls below
 * {@value #SHRINK_BELOW}, one fill in flight adds more queue than the target, so the fill halves (down
 * to the smallest fill); when eight fills in flight stay under the target, it doubles (up to the largest
 * step);
 * the window scales the other way, so the bytes in flight do not jump. A fill is what a guest read
 * queues behind: at 25 MB/s a 1 MiB fill alone is 40 ms, twice the default target, however small the
 * window, and three streams at the floor would still each hold one in the server's queue. So the fills
 * settle where one of them takes about the target at the rate it is served: {@code rate * target}, the
 * rate being the stream's share of the link. Not the stream's own measured throughput: on a long path
 * with no queue (200 ms, eight fills in flight) that is far below the link, and sizing from it would
 * shrink the fills for nobody's sake.
 *
 * <h2>Quiet windows: a base that other streams' queue does not inflate</h2>
 * A stream that starts while others already keep the server busy never sees it without a queue: its
 * minimum is the others' queue plus its own transfer, so it reads their queue as its base and adds its own
 * on top (LEDBAT's latecomer problem). On a server that shares its bandwidth per request it is worse: a
 * simulated 25 MB/s server with three streams started 2 s apart held latecomers' bases at 4-6x the true
 * one, and a guest's 64-256 KiB reads waited 118 ms at the 99th percentile (16 ms with no stream; 55 ms with
 * the quiet windows below; LatencyControllerTest.quietWindowsDeflateLatecomersBases). So every stream pauses in a quiet window
 * at the same moments on every host, {@value #QUIET_PERIOD_MS} ms apart on the wall clock (hosts
 * keep their clocks within milliseconds with NTP; that is all the coordination there is, as in LEDBAT++'s
 * periodic slowdowns, which need none): for the first half of the window it issues nothing, so the server's
 * queue of streams drains; in the second half it keeps one fill in flight, a probe whose latency is then a
 * base without anyone's stream queue. The window is four of the current latencies long (the time the fills in
 * flight need to drain, twice, and two probes), {@value #QUIET_MIN_MS} to {@value #QUIET_MAX_MS} ms: at most
 * a fifth of the time (a twenty-fifth at the minimum), in which guests' reads have the server to themselves. A
 * short period matters more than a long window: a latecomer's base is wrong until its first quiet window, and
 * the simulation's p99 was 55 ms with 2.5 s, 66 ms with 3 s and 75 ms with 5 s.
 *
 * <h2>No fill smaller than a guest's read</h2>
 * A stream's fills are at least {@link #MIN_AUTO_FILL} (256 KiB), not one cluster. nbdkit's rate filter
 * (a token bucket a request drains and then sleeps for what it still lacks) serves small requests first:
 * three streams with 64 KiB fills measured 0.3-1 ms of queue over a 5.5 ms base and took 86% of a 25 MB/s
 * link while a guest's 256 KiB reads waited three times as long as alone; scaling the small fills' delay up
 * (above) cannot show a queue they do not wait in. With 256 KiB fills they wait where the guest's reads do,
 * and back off: in the benchmark's contention row a boot replay's p99 beside three auto streams went from
 * 3.1x to 1.3x of its p99 alone (docs/BENCHMARKS.md), one stream alone still as fast as an unlimited one.
 * A fill of 256 KiB is 10 ms of that link, half the default target.
 *
 * <p>Pure logic: time comes in as arguments (nanoseconds of any monotonic clock), so a test drives it
 * with a simulated server. Thread-safe: every method holds this object's monitor, the innermost lock
 * (it calls nothing outside), for a few arithmetic operations: the filler thread samples and reads, a
 * status or command thread reads.
 */
final class LatencyController {
    static final double MAX_WINDOW = StreamStep.MAX_IN_FLIGHT;
    static final double MIN_WINDOW = 1.0 / 1024;
    static final double INITIAL_WINDOW = 2;
    static final double GAIN = 1;
    /** The floor of the rate: a stream at the floor still fetches 128 KiB a second (a 1 MiB fill every 8 s). */
    static final long MIN_RATE = 128 << 10;
    static final int BASE_BUCKETS = 5;
    static final long BASE_BUCKET_SECONDS = 60;
    static final int CURRENT_SAMPLES = 4;
    /** Below this window (in fills) even one fill in flight is more queue than the target: fills halve. */
    static final double SHRINK_BELOW = 1;
    /** Delays of smaller fills are scaled up to this size (see the class comment). */
    static final long REFERENCE_FILL = 256 << 10;
    /**
     * The smallest fill a stream uses ({@code LeafJob} passes it as the minimum; see the class comment): fills
     * smaller than a guest's reads do not see the queue those reads wait in on a server that favours small
     * requests.
     */
    static final long MIN_AUTO_FILL = REFERENCE_FILL;
    private static final long BASE_BUCKET_NANOS = BASE_BUCKET_SECONDS * 1_000_000_000L;
    /** Quiet windows begin where the wall clock is a multiple of this (see the class comment). */
    static final long QUIET_PERIOD_MS = 2_500;
    static final long QUIET_MIN_MS = 200;
    static final long QUIET_MAX_MS = 1_000;

    private final long targetNanos;
    private final long maxFillBytes;
    /** Draws this stream's probe moments (see {@link #probeStart}); random, so hosts differ; tests set one. */
    private long probeSalt = java.util.concurrent.ThreadLocalRandom.current().nextLong();
    /** Fill sizes: maxFillBytes &gt;&gt; k for k = 0 .. sizes - 1, the last at least the minimum. */
    private final int sizes;

    // ---- guarded by this monitor
    private double window = INITIAL_WINDOW;
    /** The current fill size: maxFillBytes &gt;&gt; fillShift. */
    private int fillShift;
    /** Per fill size (index k), the minimum latency of each base bucket, oldest first; MAX_VALUE: none. */
    private final long[][] baseMin;
    /** Start of the newest base bucket; valid once {@link #samples} &gt; 0. */
    private long bucketStart;
    /** The last samples of the current fill size, {@link #recentCount} of them (at most CURRENT_SAMPLES). */
    private final long[] recent = new long[CURRENT_SAMPLES];
    private int recentCount;
    private long samples;
    private long lastDecrease;
    private boolean decreased;
    private long queueingDelay;
    private long current;

    /**
     * @param targetNanos  the queueing delay to stay under, &gt; 0
     * @param minFillBytes the smallest fill (a cluster), &gt; 0
     * @param maxFillBytes the largest fill (the largest step), &gt;= minFillBytes: the first fills' size
     */
    LatencyController(long targetNanos, long minFillBytes, long maxFillBytes) {
        if (targetNanos <= 0 || minFillBytes <= 0 || maxFillBytes < minFillBytes) {
            throw new IllegalArgumentException("target " + targetNanos + " ns, fills " + minFillBytes + " to "
                    + maxFillBytes + " bytes");
        }
        this.targetNanos = targetNanos;
        this.maxFillBytes = maxFillBytes;
        int n = 1;
        while (n < 63 && (maxFillBytes >> n) >= minFillBytes) {
            n++;
        }
        this.sizes = n;
        this.baseMin = new long[n][BASE_BUCKETS];
        for (long[] b : baseMin) {
            java.util.Arrays.fill(b, Long.MAX_VALUE);
        }
    }

    /** A controller whose fills have one size only. */
    LatencyController(long targetNanos, long fillBytes) {
        this(targetNanos, fillBytes, fillBytes);
    }

    long targetNanos() {
        return targetNanos;
    }

    /** The size of the fills to issue now, bytes: the largest step at first, then sized from the rate. */
    synchronized long fillBytes() {
        return maxFillBytes >> fillShift;
    }

    /**
     * A fill failed or timed out at {@code now}: no latency to measure, and the likeliest cause is a queue
     * past any target (a slow or stalled server), so the window halves, as TCP and LEDBAT do on a loss,
     * at most once per base round trip (a burst of failures of one window halves it once), never below
     * {@link #MIN_WINDOW}.
     */
    synchronized void lost(long now) {
        long rtt = samples == 0 ? targetNanos : base(fillShift);
        if (rtt == Long.MAX_VALUE) {
            rtt = targetNanos;
        }
        if (decreased && now - lastDecrease < rtt) {
            return;
        }
        window = Math.max(MIN_WINDOW, window / 2);
        lastDecrease = now;
        decreased = true;
    }

    /**
     * One data fill of {@code bytes}, every one of them missing, completed at {@code now} after
     * {@code latencyNanos} of backing read. A size that is not one of the fill sizes (a fill cut short by
     * a hole or the end of the disk) is no sample: returns false and changes nothing.
     */
    synchronized boolean sample(long now, long latencyNanos, long bytes) {
        int k = shiftOf(bytes);
        if (k < 0) {
            return false;
        }
        long latency = Math.max(1, latencyNanos);
        updateBase(now, latency, k);
        samples++;
        if (k != fillShift) {
            return true; // issued at an earlier size: it counts for the base, not for the window
        }
        recent[recentCount % CURRENT_SAMPLES] = latency;
        recentCount++;
        current = Long.MAX_VALUE;
        for (int i = 0; i < Math.min(recentCount, CURRENT_SAMPLES); i++) {
            current = Math.min(current, recent[i]);
        }
        long fill = maxFillBytes >> k;
        queueingDelay = Math.max(0, current - base(k)) * Math.max(1, Math.min(REFERENCE_FILL, maxFillBytes) / fill);
        if (queueingDelay <= targetNanos) {
            double offTarget = (double) (targetNanos - queueingDelay) / targetNanos;
            double increase = Math.min(GAIN * offTarget / window, window);
            window = Math.min(MAX_WINDOW, window + increase);
        } else if (!decreased || now - lastDecrease >= latency) {
            double factor = Math.max(0.5, (double) targetNanos / queueingDelay);
            window = Math.max(MIN_WINDOW, window * factor);
            lastDecrease = now;
            decreased = true;
        }
        resize();
        assert window >= MIN_WINDOW && window <= MAX_WINDOW : window;
        return true;
    }

    /** The index of a fill size, or -1. */
    private int shiftOf(long bytes) {
        for (int k = 0; k < sizes; k++) {
            if (maxFillBytes >> k == bytes) {
                return k;
            }
        }
        return -1;
    }

    /**
     * Changes gear (see the class comment): below {@link #SHRINK_BELOW} fills the fill halves, at the
     * maximum window it doubles, within one cluster to the largest step; the window scales the other way,
     * so the bytes in flight stay the same. Only on a sample of the current size, so at most once per round
     * trip: the fills in flight are of the old size, and their samples do not move the window.
     */
    private void resize() {
        int k = fillShift;
        if (window < SHRINK_BELOW && k < sizes - 1) {
            k++;
        } else if (window >= MAX_WINDOW && queueingDelay <= targetNanos && k > 0) {
            k--;
        }
        if (k != fillShift) {
            window = Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, window * Math.pow(2, k - fillShift)));
            fillShift = k;
            recentCount = 0; // samples of another size do not compare
        }
    }

    private void updateBase(long now, long latency, int k) {
        if (samples == 0) {
            bucketStart = now;
        } else if (now - bucketStart >= BASE_BUCKET_NANOS) {
            long elapsed = Math.min(BASE_BUCKETS, (now - bucketStart) / BASE_BUCKET_NANOS);
            for (long[] b : baseMin) {
                System.arraycopy(b, (int) elapsed, b, 0, BASE_BUCKETS - (int) elapsed);
                java.util.Arrays.fill(b, BASE_BUCKETS - (int) elapsed, BASE_BUCKETS, Long.MAX_VALUE);
            }
            bucketStart += elapsed * BASE_BUCKET_NANOS;
            if (now - bucketStart >= BASE_BUCKET_NANOS) { // a gap longer than the whole history
                bucketStart = now;
            }
        }
        baseMin[k][BASE_BUCKETS - 1] = Math.min(baseMin[k][BASE_BUCKETS - 1], latency);
    }

    /**
     * The base of fill size k: the minimum over its buckets and those of every larger size; when none of
     * them has a sample (the size grew to one not sampled in the history), the minimum over the smaller
     * sizes, a lower bound that reads the larger fill's extra transfer as queue until it has a base of
     * its own. MAX_VALUE before any sample.
     */
    private long base(int k) {
        long b = Long.MAX_VALUE;
        for (int j = 0; j < sizes; j++) {
            if (j == k + 1 && b != Long.MAX_VALUE) {
                break;
            }
            for (long m : baseMin[j]) {
                b = Math.min(b, m);
            }
        }
        return b;
    }

    /** The window in fills of the current size, {@link #MIN_WINDOW} to {@link #MAX_WINDOW}. */
    synchronized double window() {
        return window;
    }

    /** Fills to keep in flight: ceil(window), 1 to {@link StreamStep#MAX_IN_FLIGHT}. */
    synchronized int inFlight() {
        return (int) Math.max(1, Math.min(StreamStep.MAX_IN_FLIGHT, Math.ceil(window - 1e-9)));
    }

    /**
     * Fills to keep in flight at wall-clock time {@code wallMillis} (ms since the epoch): {@link #inFlight()},
     * except in a quiet window (see the class comment): none in its first half, one (the probe) in its second.
     */
    synchronized int inFlightAt(long wallMillis) {
        long phase = Math.floorMod(wallMillis, QUIET_PERIOD_MS);
        long quiet = quietMillis();
        if (phase < probeStart(wallMillis, quiet)) {
            return 0;
        }
        return phase < quiet ? 1 : inFlight();
    }

    /** Milliseconds from {@code wallMillis} to this stream's probe in a quiet window (0 outside one). */
    synchronized long pauseLeftMillis(long wallMillis) {
        long phase = Math.floorMod(wallMillis, QUIET_PERIOD_MS);
        long start = probeStart(wallMillis, quietMillis());
        return phase < start ? start - phase : 0;
    }

    /** For tests: the salt of the probe moments, so a simulation runs the same every time. */
    synchronized LatencyController probeSalt(long salt) {
        probeSalt = salt;
        return this;
    }

    /** When this stream's probe begins in the quiet window at {@code wallMillis}, ms after the window's start. */
    synchronized long probeStartMillis(long wallMillis) {
        return probeStart(wallMillis, quietMillis());
    }

    /**
     * When the probe begins in a quiet window {@code quiet} ms long: in its second half, at a point drawn
     * afresh for every window from this stream's salt, within the first three quarters of that half (the
     * probe's fill must have time to finish inside the window).
     */
    private long probeStart(long wallMillis, long quiet) {
        long half = quiet / 2;
        long window = Math.floorDiv(wallMillis, QUIET_PERIOD_MS);
        return half + Math.floorMod(mix(probeSalt + window), half * 3 / 4 + 1);
    }

    /** SplitMix64's finalizer: consecutive windows give unrelated draws. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** The quiet window's length: four current latencies, {@link #QUIET_MIN_MS} to {@link #QUIET_MAX_MS}. */
    private long quietMillis() {
        long b = base(fillShift);
        long latency = b == Long.MAX_VALUE ? targetNanos : recentCount > 0 ? Math.max(b, current) : b;
        return Math.max(QUIET_MIN_MS, Math.min(QUIET_MAX_MS, 4 * latency / 1_000_000));
    }

    /**
     * The rate to keep to, bytes/s: window fills per current latency (the latency the fills see now, the
     * base when none of the current size was sampled yet), at least {@link #MIN_RATE}; 0 (unlimited) at
     * the maximum window or before the first sample.
     */
    synchronized long rateLimit() {
        long base = base(fillShift);
        if (samples == 0 || window >= MAX_WINDOW || base == Long.MAX_VALUE) {
            return 0;
        }
        long latency = recentCount > 0 ? Math.max(base, current) : base;
        double perSecond = window * fillBytes() * 1e9 / latency;
        return Math.max(MIN_RATE, (long) Math.min(perSecond, (double) Long.MAX_VALUE / 2));
    }

    /** The last queueing delay estimated, ns (0 before the first sample). */
    synchronized long queueingDelayNanos() {
        return queueingDelay;
    }

    /** The base latency of the current fill size, ns, or -1 before a sample of it or a larger size. */
    synchronized long baseNanos() {
        long b = base(fillShift);
        return samples == 0 || b == Long.MAX_VALUE ? -1 : b;
    }

    @Override
    public synchronized String toString() {
        return String.format(java.util.Locale.ROOT,
                "window %.3f, fill %d KiB, base %d us, current %d us, delay %d us, target %d us",
                window, fillBytes() >> 10, baseNanos() / 1000, recentCount == 0 ? -1 : current / 1000,
                queueingDelay / 1000, targetNanos / 1000);
    }
}
