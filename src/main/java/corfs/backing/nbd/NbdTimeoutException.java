package corfs.backing.nbd;

/**
 * A request that got no complete reply within {@link NbdOptions#timeout()}. The request was abandoned,
 * not cancelled: the server may still carry it out (a write may still land), and a chunk of its reply
 * already being received may still be copied into the read buffer, so that buffer must be dropped.
 */
public final class NbdTimeoutException extends NbdException {
    public NbdTimeoutException(String message) {
        super(Reason.IO, message);
    }
}
