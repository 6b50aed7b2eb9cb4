package corfs;

/**
 * A failure that carries the reason a user should see, independent of how it is reported.
 *
 * <p>The engine, control and job packages throw this with a {@link Reason}; the FUSE adapter maps the
 * reason to an errno in one place, and the CLI prints the message. Plain {@link java.io.IOException}s
 * that escape the engine are treated as {@link Reason#IO}.
 */
public class CorfsException extends java.io.IOException {

    /** Why an operation failed; each maps to exactly one errno in the FUSE adapter. */
    public enum Reason {
        /** EINVAL: bad syntax or value. */
        INVALID_ARGUMENT,
        /** ENOENT: no such image. */
        NOT_FOUND,
        /** EBUSY: a job already runs, or the leaf is in use. */
        BUSY,
        /** EROFS: the leaf or the backing is read-only. */
        READ_ONLY,
        /** ENOSPC: the leaf's filesystem is full. */
        NO_SPACE,
        /** EIO: the backing or the leaf failed to read or write. */
        IO,
        /** EFBIG: an access past the end of the fixed-size virtual disk. */
        FILE_TOO_BIG,
        /** EPERM: an operation the exposed file never allows (truncate, chmod...). */
        NOT_PERMITTED,
        /** EOPNOTSUPP: an operation corfs does not implement (an fallocate mode, say). */
        NOT_SUPPORTED,
        /** EALREADY: the job is already in the state asked for, or there is no job to act on. */
        NO_JOB,
    }

    private final Reason reason;

    public CorfsException(Reason reason, String message) {
        super(message);
        this.reason = reason;
    }

    public CorfsException(Reason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
