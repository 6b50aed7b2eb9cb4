package corfs.engine;

import corfs.CorfsException;

/** The backing failed to read [offset, offset+length): the reader gets EIO, a job records the offset. */
public final class BackingReadException extends CorfsException {
    private final long offset;
    private final long length;

    public BackingReadException(long offset, long length, Throwable cause) {
        super(Reason.IO, "backing read failed at offset " + offset + " (+" + length + "): "
                + (cause.getMessage() != null ? cause.getMessage() : cause.toString()), cause);
        this.offset = offset;
        this.length = length;
    }

    public long offset() {
        return offset;
    }

    public long length() {
        return length;
    }
}
