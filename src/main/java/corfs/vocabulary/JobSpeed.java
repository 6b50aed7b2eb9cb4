package corfs.vocabulary;

/**
 * How fast a job may go: a fixed limit in bytes per second (0: unlimited), or {@code auto}: a stream
 * that adapts its fills in flight and its rate so that the queueing delay it adds to the backing's
 * latency stays under a target (see {@code corfs.jobs.LatencyController}).
 *
 * <h2>In the job record</h2>
 * The header keeps one signed 64-bit speed field that corfs before speed=auto wrote as the limit in
 * bytes/s and refuses when negative. {@link #encode} keeps it that way: a fixed limit is written as it
 * is (a limit at or above {@link #FIXED_MAX}, 4 EiB/s, is written as 0: both mean unlimited), and auto
 * is written as {@link #AUTO_TAG} (the ASCII bytes {@code "AUTO"} in the high 32 bits; positive) plus
 * the target in microseconds in the low 32 bits. So every leaf written before reads as the same fixed
 * limit (a value with those high bits and a target within bounds, a limit of about 4.7e18 B/s, was unlimited
 * and now reads as auto: the stream still finishes), and an older corfs reads an auto job as a limit of
 * about 4.7e18 B/s, that is unlimited, instead of refusing the leaf. The metadata version does not change.
 *
 * @param bytesPerSecond   the fixed limit, 0 for unlimited (0 when auto)
 * @param autoTargetMicros the queueing-delay target of auto in microseconds, 0 when fixed
 */
public record JobSpeed(long bytesPerSecond, long autoTargetMicros) {
    /** No limit. */
    public static final JobSpeed UNLIMITED = new JobSpeed(0, 0);
    public static final long DEFAULT_TARGET_MICROS = 20_000;
    public static final long MIN_TARGET_MICROS = 1_000;
    public static final long MAX_TARGET_MICROS = 10_000_000;
    /** Auto with the default target. */
    public static final JobSpeed AUTO = new JobSpeed(0, DEFAULT_TARGET_MICROS);
    /** Fixed limits from here on are unlimited in the record (they are anyway). */
    public static final long FIXED_MAX = 1L << 62;
    /** The high 32 bits of an encoded auto speed: "AUTO" in ASCII. */
    public static final long AUTO_TAG = 0x4155_544FL << 32;

    public JobSpeed {
        if (bytesPerSecond < 0) {
            throw new IllegalArgumentException("negative speed " + bytesPerSecond);
        }
        if (autoTargetMicros != 0 && (bytesPerSecond != 0 || autoTargetMicros < MIN_TARGET_MICROS
                || autoTargetMicros > MAX_TARGET_MICROS)) {
            throw new IllegalArgumentException("auto target " + autoTargetMicros + " us out of bounds");
        }
    }

    public static JobSpeed fixed(long bytesPerSecond) {
        return bytesPerSecond == 0 ? UNLIMITED : new JobSpeed(bytesPerSecond, 0);
    }

    public static JobSpeed auto(long targetMicros) {
        return new JobSpeed(0, targetMicros);
    }

    public boolean isAuto() {
        return autoTargetMicros != 0;
    }

    /** The value of the job record's speed field (see the class comment). */
    public long encode() {
        if (isAuto()) {
            return AUTO_TAG | autoTargetMicros;
        }
        return bytesPerSecond >= FIXED_MAX ? 0 : bytesPerSecond;
    }

    /** The speed a job record's field holds; any non-negative value decodes (negative: IllegalArgumentException). */
    public static JobSpeed decode(long field) {
        if (field < 0) {
            throw new IllegalArgumentException("negative speed " + field);
        }
        long low = field & 0xFFFF_FFFFL;
        if ((field & ~0xFFFF_FFFFL) == AUTO_TAG && low >= MIN_TARGET_MICROS && low <= MAX_TARGET_MICROS) {
            return auto(low);
        }
        return fixed(field);
    }

    /**
     * As the control file and the status write it: the limit in bytes/s ({@code 0}: unlimited), or
     * {@code auto} (default target), or {@code auto:} and the target in the largest of s, ms, us that
     * divides it ({@code auto:5ms}).
     */
    public String word() {
        if (!isAuto()) {
            return Long.toString(bytesPerSecond);
        }
        if (autoTargetMicros == DEFAULT_TARGET_MICROS) {
            return "auto";
        }
        if (autoTargetMicros % 1_000_000 == 0) {
            return "auto:" + autoTargetMicros / 1_000_000 + "s";
        }
        if (autoTargetMicros % 1_000 == 0) {
            return "auto:" + autoTargetMicros / 1_000 + "ms";
        }
        return "auto:" + autoTargetMicros + "us";
    }

    @Override
    public String toString() {
        return word();
    }
}
