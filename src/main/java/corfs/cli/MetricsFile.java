package corfs.cli;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.control.PrometheusFormat;
import corfs.io.AtomicReplace;
import corfs.jobs.MountSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@code -o metrics_file=PATH}: the daemon rewrites PATH with the Prometheus text of its mount
 * ({@link PrometheusFormat}) at start, every {@link #INTERVAL_MS} ms and at close, for node_exporter's
 * textfile collector.
 *
 * <h2>How a file is written</h2>
 * A temporary file in PATH's directory with an unpredictable name ({@code .PATHNAME.<random>.tmp}, 96 random
 * bits), created with O_EXCL|O_NOFOLLOW, given mode 0644 whatever the umask, written, then renamed over PATH.
 * A reader (the collector) sees the old content or the new, never a part; a symbolic link planted at PATH is
 * replaced, never written through; a temporary name cannot be predicted to plant a link there either. The
 * collector only reads {@code *.prom} files, so the temporary one (a dot file ending in .tmp) is never read.
 *
 * <h2>Threads</h2>
 * One named daemon thread, {@code corfs-metrics-<mount>}, writes; {@link #close()} stops it (waking it, with
 * a bounded wait) and then writes the last content. A failed write is logged (once at warn until one
 * succeeds again) and retried at the next interval. Idempotent close; nothing removed at close: the last
 * content stays for the collector, consistent with the mount's final state.
 */
final class MetricsFile implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MetricsFile.class);
    static final long INTERVAL_MS = 10_000;
    private static final Set<PosixFilePermission> MODE_0644 = PosixFilePermissions.fromString("rw-r--r--");

    private final Path path;
    private final String mountPoint;
    private final MountSession session;
    private final Thread thread;
    private final Object wake = new Object();
    private final AtomicBoolean closed = new AtomicBoolean();
    private boolean failing;

    private MetricsFile(Path path, String mountPoint, MountSession session) {
        this.path = path;
        this.mountPoint = mountPoint;
        this.session = session;
        this.thread = new Thread(this::loop, "corfs-metrics-" + Path.of(mountPoint).getFileName());
        this.thread.setDaemon(true);
    }

    /**
     * Refuses a PATH that cannot be a metrics file: relative, its directory missing (or not a directory),
     * a directory itself, or one of a corfs leaf's own files (its data file, metadata, sidecars, log). Called by the CLI before it starts the daemon, and by the daemon.
     */
    static Path check(String value) throws CorfsException {
        if (value.isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "-o metrics_file= needs a path");
        }
        Path p = Path.of(value);
        if (!p.isAbsolute()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "-o metrics_file=" + value + ": give an absolute path");
        }
        p = p.normalize();
        Path dir = p.getParent();
        if (dir == null || p.getFileName() == null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "-o metrics_file=" + value + ": not a file path");
        }
        if (!Files.isDirectory(dir)) {
            throw new CorfsException(Reason.NOT_FOUND, "-o metrics_file=" + value + ": directory " + dir
                    + " does not exist");
        }
        if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "-o metrics_file=" + value + " is a directory");
        }
        Path owner = corfs.image.LeafImage.leafOwning(p);
        if (owner != null) { // rewritten every 10 s by a rename: over a leaf's data or metadata, the leaf is gone
            throw new CorfsException(Reason.INVALID_ARGUMENT, "-o metrics_file=" + value + (owner.equals(p)
                    ? " is the data file of a corfs leaf" : " is one of the leaf " + owner + "'s own files")
                    + ": not replaced; give another name");
        }
        try {
            corfs.io.ReplaceTarget.check(p, "-o metrics_file", true);
        } catch (IOException e) {
            throw e instanceof CorfsException c ? c : new CorfsException(Reason.IO, "-o metrics_file=" + value + ": " + e);
        }
        return p;
    }

    /** Writes the file once (a failure here is the mount's failure) and starts the rewriting thread. */
    static MetricsFile start(Path path, Path mountPoint, MountSession session) throws IOException {
        MetricsFile m = new MetricsFile(path, mountPoint.toString(), session);
        m.write();
        m.thread.start();
        return m;
    }

    private void loop() {
        while (!closed.get()) {
            synchronized (wake) {
                try {
                    wake.wait(INTERVAL_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
            if (closed.get()) {
                return;
            }
            writeLogged();
        }
    }

    private void writeLogged() {
        try {
            write();
            if (failing) {
                LOG.info("metrics file {} written again", path);
                failing = false;
            }
        } catch (IOException | RuntimeException e) {
            if (!failing) {
                LOG.warn("cannot write the metrics file {}: {}", path, e.toString());
                failing = true;
            }
        }
    }

    /** One atomic replacement of the file with the mount's Prometheus text now. */
    synchronized void write() throws IOException {
        byte[] text = PrometheusFormat.render(mountPoint, session.status()).getBytes(StandardCharsets.UTF_8);
        // a FIFO or device put there since: leave it. Rewritten every few seconds: not forced.
        new AtomicReplace("." + path.getFileName() + ".", MODE_0644, true, false, "metrics_file", true)
                .write(path, text);
    }

    /** Stops the thread and writes the last content. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        synchronized (wake) {
            wake.notifyAll();
        }
        try {
            thread.join(10_000);
            if (thread.isAlive()) {
                LOG.warn("the metrics writer {} did not stop within 10 s", thread.getName());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        writeLogged();
    }
}
