package corfs.control;

import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.OnError;
import java.util.List;

/**
 * One command written to the control file, parsed. {@code image} is null when the line left it out
 * (allowed when exactly one leaf is mounted). Rates are bytes per second, 0 meaning unlimited; a null
 * {@code speed}/{@code onError} on a start command means "the default".
 */
public sealed interface ControlCommand {
    /** The image the command names, or null. */
    String image();

    /** {@code stream [IMAGE] [speed=RATE|auto[:TARGET]] [on_error=stop|retry|skip]}; a null speed is the default. */
    record Stream(String image, JobSpeed speed, OnError onError) implements ControlCommand {
        /** A fixed limit, bytes per second (0: unlimited). */
        public Stream(String image, long bytesPerSecond, OnError onError) {
            this(image, JobSpeed.fixed(bytesPerSecond), onError);
        }
    }

    /** {@code commit [IMAGE] [speed=RATE] [on_error=stop|retry|skip]}. */
    record Commit(String image, Long speed, OnError onError) implements ControlCommand { }

    /** {@code pause [IMAGE]}. */
    record Pause(String image) implements ControlCommand { }

    /** {@code resume [IMAGE]}. */
    record Resume(String image) implements ControlCommand { }

    /** {@code cancel [IMAGE]}. */
    record Cancel(String image) implements ControlCommand { }

    /** {@code speed [IMAGE] RATE|auto[:TARGET]}. */
    record Speed(String image, JobSpeed speed) implements ControlCommand {
        /** A fixed limit, bytes per second (0: unlimited). */
        public Speed(String image, long bytesPerSecond) {
            this(image, JobSpeed.fixed(bytesPerSecond));
        }

        /** The fixed limit in bytes per second (0 when unlimited or auto). */
        public long bytesPerSecond() {
            return speed.bytesPerSecond();
        }
    }

    /**
     * {@code prioritize [IMAGE] RANGE...}: the running stream fetches these ranges next, in this order.
     *
     * @param ranges at least one, at most {@link ControlParser#MAX_PRIORITY_RANGES}
     */
    record Prioritize(String image, List<Range> ranges) implements ControlCommand {
        public Prioritize {
            ranges = List.copyOf(ranges);
        }
    }

    /**
     * A byte range of the disk: {@code length} null means one cluster (the disk's, not known here). The
     * parser guarantees offset &ge; 0, length &gt; 0 and offset + length without overflow; the end of
     * the disk is checked by the job.
     */
    record Range(long offset, Long length) {
    }

    /** {@code prefetch [IMAGE] FILE}: prefetch the access profile in {@code file}, an absolute path. */
    record Prefetch(String image, String file) implements ControlCommand { }

    /** {@code prefetch [IMAGE] cancel}: stop the leaf's prefetch and forget it. */
    record PrefetchCancel(String image) implements ControlCommand { }
}
