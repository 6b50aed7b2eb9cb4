package corfs.jobs;

/**
 * The pacing of a {@code speed=auto} stream: LEDBAT (RFC 6817) adapted from packets to fills. Each fill
 * of the standard size (a full step of data, so that samples compare) gives one latency sample: the time
 * its backing read took. From them:
 * <ul>
 *   <li><b>base</b>: the minimum latency over a sliding window of {@value #BASE_BUCKETS} buckets of
 *       {@value #BASE_BUCKET_SECONDS} s each (RFC 6817's base history): what a fill costs with no queue
 *       at the server. A bucket with no sample is empty, so after a path change (a slower link, a moved
 *       server) the old minimum expires within the window and the new one becomes the base.</li>
 *   <li><b>current</b>: the minimum of the last {@value #CURRENT_SAMPLES} samples (a low-pass that drops
 *       one-off spikes).</li>
 *   <li><b>queueing delay</b> = current - base: what the queue in front of the server adds, our fills'
 *       and everyone else's.</li>
 * </ul>
 * The output is a <b>window</b> {@code w} in fills, {@link #MIN_WINDOW} to {@link #MAX_WINDOW}: the
 * stream keeps {@code ceil(w)} fills in flight (1 to 8) and at most {@code w} fills per base latency
 * ({@link #rateLimit}, never below {@link #MIN_RATE}; unlimited at the maximum window). So below one fill in
 * flight the stream still goes on, spaced out: it always finishes.
 * <ul>
 *   <li>While the queueing delay is under the target: additive increase, {@code GAIN * off_target / w}
 *       per sample (so {@code GAIN * off_target} fills per round trip), with {@code off_target =
 *       (target - delay) / target}; at most doubling per sample (a window far below 1 sees one sample in
 *       many base round trips).</li>
 *   <li>Above it: multiplicative decrease by {@code target / delay}, at most halving, at most once per
 *       round trip (the samples of fills issued before the decrease do not count again).</li>
 * </ul>
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
    /** The floor of the rate: a stream at the floor still fetches a 1 MiB fill every 8 s. */
    static final long MIN_RATE = 128 << 10;
    static final int BASE_BUCKETS = 5;
    static final long BASE_BUCKET_SECONDS = 60;
    static final int CURRENT_SAMPLES = 4;
    private static final long BASE_BUCKET_NANOS = BASE_BUCKET_SECONDS * 1_000_000_000L;

    private final long targetNanos;
    private final long fillBytes;

    // ---- guarded by this monitor
    private double window = INITIAL_WINDOW;
    /** Minimum latency of each base bucket, oldest first; Long.MAX_VALUE: no sample in it. */
    private final long[] baseMin = new long[BASE_BUCKETS];
    /** Start of the newest base bucket; valid once {@link #samples} &gt; 0. */
    private long bucketStart;
    private final long[] recent = new long[CURRENT_SAMPLES];
    private long samples;
    private long lastDecrease;
    private boolean decreased;
    private long queueingDelay;

    /**
     * @param targetNanos the queueing delay to stay under, &gt; 0
     * @param fillBytes   the size of a sampled fill, &gt; 0: what one unit of window is
     */
    LatencyController(long targetNanos, long fillBytes) {
        if (targetNanos <= 0 || fillBytes <= 0) {
            throw new IllegalArgumentException("target " + targetNanos + " ns, fill " + fillBytes + " bytes");
        }
        this.targetNanos = targetNanos;
        this.fillBytes = fillBytes;
        java.util.Arrays.fill(baseMin, Long.MAX_VALUE);
    }

    long targetNanos() {
        return targetNanos;
    }

    long fillBytes() {
        return fillBytes;
    }

    /**
     * A fill failed or timed out at {@code now}: no latency to measure, and the likeliest cause is a queue
     * past any target (a slow or stalled server), so the window halves, as TCP and LEDBAT do on a loss,
     * at most once per base round trip (a burst of failures of one window halves it once), never below
     * {@link #MIN_WINDOW}.
     */
    synchronized void lost(long now) {
        long rtt = samples == 0 ? targetNanos : base();
        if (decreased && now - lastDecrease < rtt) {
            return;
        }
        window = Math.max(MIN_WINDOW, window / 2);
        lastDecrease = now;
        decreased = true;
    }

    /** One fill of {@link #fillBytes} completed at {@code now} after {@code latencyNanos} of backing read. */
    synchronized void sample(long now, long latencyNanos) {
        long latency = Math.max(1, latencyNanos);
        updateBase(now, latency);
        recent[(int) (samples % CURRENT_SAMPLES)] = latency;
        samples++;
        long current = Long.MAX_VALUE;
        for (int i = 0; i < Math.min(samples, CURRENT_SAMPLES); i++) {
            current = Math.min(current, recent[i]);
        }
        queueingDelay = Math.max(0, current - base());
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
        assert window >= MIN_WINDOW && window <= MAX_WINDOW : window;
    }

    private void updateBase(long now, long latency) {
        if (samples == 0) {
            bucketStart = now;
        } else if (now - bucketStart >= BASE_BUCKET_NANOS) {
            long elapsed = Math.min(BASE_BUCKETS, (now - bucketStart) / BASE_BUCKET_NANOS);
            System.arraycopy(baseMin, (int) elapsed, baseMin, 0, BASE_BUCKETS - (int) elapsed);
            java.util.Arrays.fill(baseMin, BASE_BUCKETS - (int) elapsed, BASE_BUCKETS, Long.MAX_VALUE);
            bucketStart += elapsed * BASE_BUCKET_NANOS;
            if (now - bucketStart >= BASE_BUCKET_NANOS) { // a gap longer than the whole history
                bucketStart = now;
            }
        }
        baseMin[BASE_BUCKETS - 1] = Math.min(baseMin[BASE_BUCKETS - 1], latency);
    }

    private long base() {
        long b = Long.MAX_VALUE;
        for (long m : baseMin) {
            b = Math.min(b, m);
        }
        return b;
    }

    /** The window in fills, {@link #MIN_WINDOW} to {@link #MAX_WINDOW}. */
    synchronized double window() {
        return window;
    }

    /** Fills to keep in flight: ceil(window), 1 to {@link StreamStep#MAX_IN_FLIGHT}. */
    synchronized int inFlight() {
        return (int) Math.max(1, Math.min(StreamStep.MAX_IN_FLIGHT, Math.ceil(window - 1e-9)));
    }

    /**
     * The rate to keep to, bytes/s: window fills per base latency, at least {@link #MIN_RATE}; 0
     * (unlimited) at the maximum window or before the first sample.
     */
    synchronized long rateLimit() {
        if (samples == 0 || window >= MAX_WINDOW) {
            return 0;
        }
        double perSecond = window * fillBytes * 1e9 / base();
        return Math.max(MIN_RATE, (long) Math.min(perSecond, (double) Long.MAX_VALUE / 2));
    }

    /** The last queueing delay estimated, ns (0 before the first sample). */
    synchronized long queueingDelayNanos() {
        return queueingDelay;
    }

    /** The base latency, ns, or -1 before the first sample. */
    synchronized long baseNanos() {
        return samples == 0 ? -1 : base();
    }

    @Override
    public synchronized String toString() {
        return String.format(java.util.Locale.ROOT, "window %.3f, base %d us, delay %d us, target %d us",
                window, samples == 0 ? -1 : base() / 1000, queueingDelay / 1000, targetNanos / 1000);
    }
}
