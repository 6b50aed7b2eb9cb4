package corfs.jobs;

import corfs.engine.LeafDisk;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** API SKELETON (being implemented): everything one mount serves: its leaves, the filler, commands. */
public final class MountSession implements AutoCloseable {
    /** Options from the mount command line. */
    public record Options(boolean readOnly, boolean force, long backingTimeoutMillis) { }

    /** Opens and checks every leaf (refusing with a CorfsException whose message says why), resumes jobs. */
    public static MountSession open(List<Path> leaves, Options options) throws IOException { throw new UnsupportedOperationException(); }
    /** The leaves in command-line order. */
    public List<LeafDisk> leaves() { throw new UnsupportedOperationException(); }
    /** The leaf exposed under this name, or null. */
    public LeafDisk find(String name) { throw new UnsupportedOperationException(); }
    /** Carries out one parsed control command; CorfsException with the reason on failure (recorded for status). */
    public void execute(corfs.control.ControlCommand command) throws IOException { throw new UnsupportedOperationException(); }
    /** Records an error (a rejected command line) so the status shows it. image may be null (all leaves). */
    public void recordError(String image, String message) { throw new UnsupportedOperationException(); }
    /** The status of every leaf, fresh. */
    public List<LeafStatus> status() { throw new UnsupportedOperationException(); }
    /** Stops jobs (their state stays resumable), flushes, closes. Idempotent. */
    @Override public void close() throws IOException { }
}
