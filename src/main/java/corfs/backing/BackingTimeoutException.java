package corfs.backing;

import corfs.CorfsException;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * The backing did not answer in time and the read was abandoned, not stopped: the buffer it was
 * reading into may still be written to later. Whoever gets this must drop that buffer, never reuse it.
 */
public final class BackingTimeoutException extends CorfsException {
    private static final CompletionStage<Void> UNKNOWN = new CompletableFuture<Void>().minimalCompletionStage();
    private final transient CompletionStage<Void> settled;

    public BackingTimeoutException(String message, Throwable cause) {
        this(message, cause, null);
    }

    /**
     * @param settled completes once the abandoned call has really returned (it writes nothing after that);
     *        null when that is not tracked
     */
    public BackingTimeoutException(String message, Throwable cause, CompletionStage<Void> settled) {
        super(Reason.IO, message, cause);
        this.settled = settled;
    }

    /**
     * Completes once the abandoned call has returned and can write nothing more; one that never completes
     * when that is not tracked (a call refused or given up before it started completes at once).
     */
    public CompletionStage<Void> settled() {
        return settled != null ? settled : UNKNOWN;
    }
}
