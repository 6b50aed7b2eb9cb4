package corfs.io;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.io.IOException;

/**
 * The one place where a plain I/O failure is recognised for what it is. Java's NIO reports ENOSPC as an
 * {@link IOException} whose message is the C library's text; this class is the only code that looks at
 * that text. Native code ({@code corfs.os}) classifies by errno and throws a {@link CorfsException}
 * directly. The engine ({@code LeafDisk}) and the errno mapping ({@code corfs.fuse.Errno}) both ask here.
 */
public final class IoFailures {
    /** strerror(ENOSPC) as Java's NIO reports it. */
    private static final String NO_SPACE_TEXT = "No space left on device";

    private IoFailures() {
    }

    /**
     * {@code e} as a {@link CorfsException} with reason NO_SPACE and the message {@code context} when it
     * is an ENOSPC; otherwise {@code e} itself.
     */
    public static IOException classify(IOException e, String context) {
        if (e instanceof CorfsException) {
            return e;
        }
        if (isNoSpace(e)) {
            return new CorfsException(Reason.NO_SPACE, context, e);
        }
        return e;
    }

    /** True when {@code t} or a cause of it is an ENOSPC (classified or not). */
    public static boolean isNoSpace(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof CorfsException ce && ce.reason() == Reason.NO_SPACE) {
                return true;
            }
            String m = c.getMessage();
            if (!(c instanceof CorfsException) && m != null && m.contains(NO_SPACE_TEXT)) {
                return true;
            }
        }
        return false;
    }
}
