package corfs.backing;

import corfs.CorfsException;

import java.util.Optional;
import java.util.concurrent.CompletionStage;

/**
 * The backing did not answer in time and the read was abandoned, not stopped: the buffer it was
 * reading into may still be written to later. Whoever gets this must drop that buffer, never reuse it.
 */
public final class BackingTimeoutException extends CorfsException {
    private final transient CompletionStage<Void> stillWriting;

    public BackingTimeoutException(String message, Throwable cause) {
        this(message, cause, null);
    }

    /**
     * @param stillWriting for an abandoned call that writes into a target the caller passed (an in-kernel
     *        copy into a file): completes once that call has really returned and can write nothing more;
     *        null for any other call
     */
    public BackingTimeoutException(String message, Throwable cause, CompletionStage<Void> stillWriting) {
        super(Reason.IO, message, cause);
        this.stillWriting = stillWriting;
    }

    /**
     * For an abandoned copy ({@link Backing#copyTo}): completes once it returned, after which it writes
     * nothing more into its target. Empty for reads (the caller drops the buffer instead).
     */
    public Optional<CompletionStage<Void>> stillWriting() {
        return Optional.ofNullable(stillWriting);
    }
}
