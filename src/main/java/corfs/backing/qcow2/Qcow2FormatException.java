package corfs.backing.qcow2;

import corfs.CorfsException;

/**
 * A qcow2 image (or chain) that is refused or damaged: at open, the reason it is refused; on a read, the
 * damage the read touched. Always an I/O error for the reader of the exposed file (EIO); the message
 * names the layer and the reason.
 */
public final class Qcow2FormatException extends CorfsException {
    public Qcow2FormatException(String message) {
        super(Reason.IO, message);
    }

    public Qcow2FormatException(String message, Throwable cause) {
        super(Reason.IO, message, cause);
    }
}
