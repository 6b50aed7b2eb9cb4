package corfs.backing.nbd;

import corfs.CorfsException;

/**
 * A failed NBD request or connection. The message names the server and says what happened; the
 * reason is {@link Reason#IO} except where the caller asked for something the export does not offer
 * ({@link Reason#READ_ONLY}, {@link Reason#NOT_SUPPORTED}) or gave a bad argument
 * ({@link Reason#INVALID_ARGUMENT}).
 */
public class NbdException extends CorfsException {
    private final int nbdError;

    public NbdException(Reason reason, String message) {
        this(reason, message, 0, null);
    }

    public NbdException(Reason reason, String message, Throwable cause) {
        this(reason, message, 0, cause);
    }

    NbdException(Reason reason, String message, int nbdError, Throwable cause) {
        super(reason, message, cause);
        this.nbdError = nbdError;
    }

    /** The error value the server replied with ({@code NBD_EIO} is 5...), or 0 if the server sent none. */
    public int nbdError() {
        return nbdError;
    }
}
