package corfs.control;

import corfs.vocabulary.OnError;

/**
 * One command written to the control file, parsed. {@code image} is null when the line left it out
 * (allowed when exactly one leaf is mounted). Rates are bytes per second, 0 meaning unlimited; a null
 * {@code speed}/{@code onError} on a start command means "the default".
 */
public sealed interface ControlCommand {
    /** The image the command names, or null. */
    String image();

    /** {@code stream [IMAGE] [speed=RATE] [on_error=stop|retry|skip]}. */
    record Stream(String image, Long speed, OnError onError) implements ControlCommand { }

    /** {@code commit [IMAGE] [speed=RATE] [on_error=stop|retry|skip]}. */
    record Commit(String image, Long speed, OnError onError) implements ControlCommand { }

    /** {@code pause [IMAGE]}. */
    record Pause(String image) implements ControlCommand { }

    /** {@code resume [IMAGE]}. */
    record Resume(String image) implements ControlCommand { }

    /** {@code cancel [IMAGE]}. */
    record Cancel(String image) implements ControlCommand { }

    /** {@code speed [IMAGE] RATE}. */
    record Speed(String image, long bytesPerSecond) implements ControlCommand { }

    /** {@code prefetch [IMAGE] FILE}: prefetch the access profile in {@code file}, an absolute path. */
    record Prefetch(String image, String file) implements ControlCommand { }

    /** {@code prefetch [IMAGE] cancel}: stop the leaf's prefetch and forget it. */
    record PrefetchCancel(String image) implements ControlCommand { }
}
