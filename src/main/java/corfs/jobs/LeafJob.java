package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import corfs.backing.Backing;
import corfs.engine.LeafDisk;

import java.util.ArrayList;
import java.util.List;

/**
 * The job of one leaf: its kind, state and progress. State changes come from control commands (any
 * thread) and from the filler thread; every field is guarded by this object's monitor, except the
 * progress counters, which only the filler writes and everyone may read.
 */
final class LeafJob {
    final LeafDisk disk;
    JobKind kind = JobKind.NONE;
    JobState state = JobState.IDLE;
    long speed;
    OnError onError = OnError.STOP;
    String error;
    /** Next cluster the filler looks at. Filler thread only. */
    long cursor;
    /** Commit: the writer, open while the commit runs. Filler thread only (closed under the monitor). */
    Backing.Writer writer;
    /** Commit: copied clusters waiting for a backing flush before their dirty bits clear. Filler only. */
    final List<long[]> uncommitted = new ArrayList<>();
    long uncommittedBytes;
    /** Unreadable extents recorded with on_error=skip, as [offset, length]. */
    final List<long[]> unreadable = new ArrayList<>();
    /** Retry backoff (on_error=retry): not before this nanoTime. */
    long retryNotBeforeNanos;
    long retryDelayMillis;
    /** Throttle: the filler may not transfer again before this nanoTime. */
    long throttleUntilNanos;
    /** True while the filler runs a step of this job; guarded by this monitor, which is notified when it ends. */
    boolean stepping;
    volatile long doneBytes;
    volatile long totalBytes;
    final RateMeter rate = new RateMeter();

    LeafJob(LeafDisk disk) {
        this.disk = disk;
    }

    /** A moving rate over the last few seconds of (time, done) samples. */
    static final class RateMeter {
        private static final int SAMPLES = 16;
        private final long[] times = new long[SAMPLES];
        private final long[] values = new long[SAMPLES];
        private int next;
        private int count;

        synchronized void sample(long nowNanos, long value) {
            if (count > 0 && nowNanos - times[(next - 1 + SAMPLES) % SAMPLES] < 250_000_000L) {
                return; // one sample every quarter second is enough
            }
            times[next] = nowNanos;
            values[next] = value;
            next = (next + 1) % SAMPLES;
            count = Math.min(SAMPLES, count + 1);
        }

        synchronized void reset() {
            count = 0;
            next = 0;
        }

        /** Bytes per second between the oldest and newest sample, 0 if unknown or stale. */
        synchronized long bytesPerSecond(long nowNanos) {
            if (count < 2) {
                return 0;
            }
            int newest = (next - 1 + SAMPLES) % SAMPLES;
            int oldest = (next - count + SAMPLES) % SAMPLES;
            if (nowNanos - times[newest] > 3_000_000_000L) {
                return 0;
            }
            long dt = times[newest] - times[oldest];
            return dt <= 0 ? 0 : (values[newest] - values[oldest]) * 1_000_000_000L / dt;
        }
    }
}
