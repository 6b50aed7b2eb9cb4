package corfs.fuse;

import corfs.CorfsException;
import corfs.io.IoFailures;
import java.io.IOException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import ru.serce.jnrfuse.ErrorCodes;

/**
 * The one place where a failure becomes an errno for the kernel.
 *
 * <p>{@link CorfsException}s carry their reason; a plain {@link IOException} that
 * {@link IoFailures#isNoSpace} recognises (the one place that classifies I/O failures) is ENOSPC;
 * anything else (another IOException, a RuntimeException, an Error) is EIO. Expected
 * failures log at debug; unexpected ones at warn, once per distinct message, so a failing backing cannot
 * flood the log.
 */
final class Errno {
    private static final Logger LOG = LoggerFactory.getLogger(Errno.class);
    private static final int MAX_REMEMBERED = 1024;
    private static final Set<String> WARNED = ConcurrentHashMap.newKeySet();

    private Errno() {
    }

    /** The positive errno for a reason. */
    static int of(CorfsException.Reason reason) {
        return switch (reason) {
            case INVALID_ARGUMENT -> ErrorCodes.EINVAL();
            case NOT_FOUND -> ErrorCodes.ENOENT();
            case BUSY -> ErrorCodes.EBUSY();
            case READ_ONLY -> ErrorCodes.EROFS();
            case NO_SPACE -> ErrorCodes.ENOSPC();
            case IO -> ErrorCodes.EIO();
            case FILE_TOO_BIG -> ErrorCodes.EFBIG();
            case NOT_PERMITTED -> ErrorCodes.EPERM();
            case NOT_SUPPORTED -> ErrorCodes.EOPNOTSUPP();
            case NO_JOB -> ErrorCodes.EALREADY();
        };
    }

    /** The negative errno to answer a callback that failed with {@code t}, logging as described above. */
    static int toErrno(Throwable t, String op, String path) {
        if (t instanceof CorfsException ce) {
            int e = of(ce.reason());
            if (ce.reason() == CorfsException.Reason.IO || ce.reason() == CorfsException.Reason.NO_SPACE) {
                warnOnce(op, path, t);
            } else {
                LOG.debug("{} {}: {}", op, path, ce.getMessage());
            }
            return -e;
        }
        if (t instanceof IOException && IoFailures.isNoSpace(t)) {
            warnOnce(op, path, t);
            return -ErrorCodes.ENOSPC();
        }
        warnOnce(op, path, t);
        return -ErrorCodes.EIO();
    }

    private static void warnOnce(String op, String path, Throwable t) {
        String key = op + ' ' + path + ' ' + t;
        if (WARNED.size() < MAX_REMEMBERED && WARNED.add(key)) {
            LOG.warn("{} {} failed: {}", op, path, t.toString(), t);
        } else {
            LOG.debug("{} {} failed: {}", op, path, t.toString());
        }
    }
}
