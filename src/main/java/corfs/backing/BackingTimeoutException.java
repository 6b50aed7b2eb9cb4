package corfs.backing;

import corfs.CorfsException;

/**
 * The backing did not answer in time and the read was abandoned, not stopped: the buffer it was
 * reading into may still be written to later. Whoever gets this must drop that buffer, never reuse it.
 */
public final class BackingTimeoutException extends CorfsException {
    public BackingTimeoutException(String message, Throwable cause) {
        super(Reason.IO, message, cause);
    }
}
