package corfs.jobs;

/**
 * A moving rate over the last few seconds of (time, done) samples. Guarded by its job's monitor; the
 * value is published in the job's {@link JobSnapshot}, so status readers never touch it.
 */
final class RateMeter {
    private static final int SAMPLES = 16;
    private static final long MIN_SAMPLE_GAP_NANOS = 250_000_000L;
    /** A rate older than this is unknown (0): the job is stuck or throttled to nothing. */
    static final long STALE_NANOS = 3_000_000_000L;
    private final long[] times = new long[SAMPLES];
    private final long[] values = new long[SAMPLES];
    private int next;
    private int count;

    void sample(long nowNanos, long value) {
        if (count > 0 && nowNanos - times[(next - 1 + SAMPLES) % SAMPLES] < MIN_SAMPLE_GAP_NANOS) {
            return; // one sample every quarter second is enough
        }
        times[next] = nowNanos;
        values[next] = value;
        next = (next + 1) % SAMPLES;
        count = Math.min(SAMPLES, count + 1);
    }

    void reset() {
        count = 0;
        next = 0;
    }

    /** Bytes per second between the oldest and newest sample, 0 if unknown or stale. */
    long bytesPerSecond(long nowNanos) {
        if (count < 2) {
            return 0;
        }
        int newest = (next - 1 + SAMPLES) % SAMPLES;
        int oldest = (next - count + SAMPLES) % SAMPLES;
        if (nowNanos - times[newest] > STALE_NANOS) {
            return 0;
        }
        long dt = times[newest] - times[oldest];
        return dt <= 0 ? 0 : (values[newest] - values[oldest]) * 1_000_000_000L / dt;
    }
}
