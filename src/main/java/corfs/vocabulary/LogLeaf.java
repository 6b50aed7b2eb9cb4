package corfs.vocabulary;

/**
 * The leaf a thread is working on, for the daemon's log lines ({@code leaf=NAME}): set where work on one
 * leaf begins, with try-with-resources, so it is cleared on every exit. slf4j's MDC would do this, but the
 * binding corfs uses (slf4j-simple) drops MDC values; this is its one-key equivalent. Allocates nothing
 * but the thread-local's entry, once per thread.
 */
public final class LogLeaf implements AutoCloseable {
    private static final ThreadLocal<String> CURRENT = new ThreadLocal<>();
    private final String previous;

    private LogLeaf(String previous) {
        this.previous = previous;
    }

    /** Tags this thread's log lines with {@code leaf} until the returned value is closed. */
    public static LogLeaf tag(String leaf) {
        LogLeaf restore = new LogLeaf(CURRENT.get());
        CURRENT.set(leaf);
        return restore;
    }

    /** The leaf this thread is working on, or null. */
    public static String current() {
        return CURRENT.get();
    }

    /** Restores the tag that was set before (none: cleared). */
    @Override
    public void close() {
        if (previous == null) {
            CURRENT.remove();
        } else {
            CURRENT.set(previous);
        }
    }
}
