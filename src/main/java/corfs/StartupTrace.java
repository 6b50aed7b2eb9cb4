package corfs;

/**
 * Where a start spends its time (issue 11's fast start): with {@code -Dcorfs.trace.startup=true} (for
 * instance {@code CORFS_JAVA_OPTS=-Dcorfs.trace.startup=true corfs mount ...}, which the mount daemon
 * inherits) each {@link #mark} prints one line on stderr, {@code corfs-startup EPOCH_MS PID PHASE}, so that a
 * script can line up the phases of the command's JVM and the daemon's against its own clock. Off, a mark is
 * one read of a constant.
 */
public final class StartupTrace {
    private static final boolean ON = Boolean.getBoolean("corfs.trace.startup");

    private StartupTrace() {
    }

    /** Notes that {@code phase} was reached now. */
    public static void mark(String phase) {
        if (ON) {
            System.err.println("corfs-startup " + System.currentTimeMillis() + " " + ProcessHandle.current().pid()
                    + " " + phase);
            System.err.flush();
        }
    }
}
