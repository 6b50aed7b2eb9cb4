package corfs.jobs;

import corfs.engine.BackingReadException;
import corfs.vocabulary.OnError;

/**
 * What a job does when a step fails, in one place. A backing read error with on_error=retry backs off
 * (100 ms doubling to {@value #MAX_RETRY_DELAY_MS} ms) and tries again; everything else fails the job
 * (on_error=skip is handled inside the stream step, which never throws a read error then). A step's
 * failure never stops the filler thread or another leaf's job.
 */
final class ErrorPolicy {
    static final long MAX_RETRY_DELAY_MS = 5_000;
    private static final long FIRST_RETRY_DELAY_MS = 100;

    private ErrorPolicy() {
    }

    /** The decision for one failure: retry after {@code delayMillis}, or fail (delay -1). */
    record Decision(long delayMillis, String message) {
        boolean retry() {
            return delayMillis >= 0;
        }
    }

    static Decision decide(OnError onError, Throwable failure, long previousDelayMillis) {
        String message = failure.getMessage() != null ? failure.getMessage() : failure.toString();
        if (failure instanceof BackingReadException && onError == OnError.RETRY) {
            long delay = previousDelayMillis == 0 ? FIRST_RETRY_DELAY_MS
                    : Math.min(MAX_RETRY_DELAY_MS, previousDelayMillis * 2);
            return new Decision(delay, message + " (retrying in " + delay + " ms)");
        }
        return new Decision(-1, message);
    }
}
