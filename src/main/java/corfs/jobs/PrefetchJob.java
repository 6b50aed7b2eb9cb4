package corfs.jobs;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.engine.LeafDisk;
import corfs.image.AccessProfile;
import corfs.image.PrefetchRecord;
import corfs.io.FileOps;
import corfs.vocabulary.PrefetchState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The prefetch of one mounted leaf: which profile it follows, its sidecar record, and what the status
 * shows. Independent of the leaf's stream or commit job ({@link LeafJob}): pause, cancel and speed of the
 * job never touch it, nor it them; a stream running beside it skips what it fetched (the stream scans the
 * local bits), and the two never fill one cluster at once (the disk's per-cluster locks).
 *
 * <h2>Which profile</h2>
 * The sidecar {@code LEAF.corfs-prefetch} ({@link PrefetchRecord}) is the record of a pending prefetch. The
 * newest request wins: {@code mount -o prefetch=FILE} and the control command {@code prefetch [IMAGE]
 * FILE} check FILE against the leaf, replace the sidecar with it and start it (a running prefetch is
 * stopped first); {@code create --prefetch FILE} wrote the sidecar before the first mount; a mount without
 * {@code -o prefetch} resumes the sidecar's. When the prefetch completes, the fetched clusters' bits are
 * made durable and the sidecar is removed (the next mount shows {@code prefetch=none}); {@code prefetch
 * [IMAGE] cancel} stops it and removes the sidecar; unmount stops it and keeps the sidecar, so the next
 * mount resumes it (chunks already local are counted done without a read). A failed prefetch keeps its
 * sidecar (the next mount tries again).
 *
 * <h2>Refusals</h2>
 * A profile recorded over a backing of another identity, or for a disk of another size, is refused with
 * INVALID_ARGUMENT (nothing changes); a read-only mount refuses a prefetch with READ_ONLY (nothing could be
 * stored), and does not resume one. A standalone leaf has nothing to fetch: its prefetch completes at
 * once (after the same checks).
 *
 * <h2>Locks</h2>
 * {@link #commands} serialises commands (start, cancel, close) and is held across their I/O (reading the
 * profile, writing the sidecar, stopping a run). This object's monitor guards the fields only and is taken
 * inside {@link #commands}, never the other way round; a run's end ({@link #ended}, on a worker) takes only
 * the monitor, so a command stopping that run (waiting for its workers) never waits for itself.
 */
public final class PrefetchJob implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PrefetchJob.class);

    private final LeafDisk disk;
    private final Path leaf;
    private final FileOps fileOps;
    private final Object commands = new Object();

    // ---- guarded by this
    private PrefetchRun run;
    private PrefetchState state = PrefetchState.NONE;
    private long done;
    private long total;
    private String error;
    private boolean closed;

    /** What the status shows. */
    public record Snapshot(PrefetchState state, long doneBytes, long totalBytes, String error) {
    }

    public PrefetchJob(LeafDisk disk, FileOps fileOps) {
        this.disk = disk;
        this.leaf = disk.image().dataPath();
        this.fileOps = fileOps;
    }

    /**
     * Checks the profile in {@code file} against the leaf, records it as the leaf's pending prefetch and
     * starts it, stopping any running one.
     *
     * @throws CorfsException READ_ONLY on a read-only mount; NOT_FOUND or INVALID_ARGUMENT for a missing,
     *         unreadable or mismatched profile: nothing changed then
     */
    public void start(Path file) throws IOException {
        synchronized (commands) {
            refuseReadOnly();
            AccessProfile profile = AccessProfile.read(file);
            check(profile, file.toString());
            stopRun();
            PrefetchRecord.save(leaf, profile);
            launch(profile);
        }
    }

    /**
     * At mount: resumes the leaf's pending prefetch, if its sidecar records one. A sidecar that cannot be
     * read or no longer matches the leaf does not refuse the mount: it is logged and shown as failed.
     */
    public void resume() {
        synchronized (commands) {
            if (!java.nio.file.Files.exists(PrefetchRecord.pathOf(leaf), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                return;
            }
            if (disk.readOnly()) {
                LOG.info("{}: a prefetch is pending; not run on a read-only mount", disk.name());
                return;
            }
            try {
                Optional<AccessProfile> pending = PrefetchRecord.load(leaf);
                if (pending.isEmpty()) {
                    return;
                }
                check(pending.get(), PrefetchRecord.pathOf(leaf).toString());
                LOG.info("{}: resuming the pending prefetch", disk.name());
                launch(pending.get());
            } catch (IOException | RuntimeException e) {
                LOG.warn("{}: the pending prefetch cannot run: {}", disk.name(), e.getMessage());
                synchronized (this) {
                    state = PrefetchState.FAILED;
                    error = e.getMessage();
                }
            }
        }
    }

    /**
     * Stops the prefetch and removes its record.
     *
     * @throws CorfsException NO_JOB when no prefetch runs and none is pending
     */
    public void cancel() throws IOException {
        synchronized (commands) {
            PrefetchRun old;
            synchronized (this) {
                old = run;
                run = null;
            }
            boolean pending = java.nio.file.Files.exists(PrefetchRecord.pathOf(leaf),
                    java.nio.file.LinkOption.NOFOLLOW_LINKS);
            if (old == null && !pending) {
                throw new CorfsException(Reason.NO_JOB, disk.name() + ": no prefetch is running or pending");
            }
            if (old != null) {
                old.close();
            }
            PrefetchRecord.remove(leaf);
            synchronized (this) {
                if (old != null) {
                    done = old.doneBytes();
                    total = old.totalBytes();
                }
                state = PrefetchState.CANCELLED;
                error = null;
            }
            LOG.info("{}: prefetch cancelled", disk.name());
        }
    }

    /** Published state; takes only the monitor, never waits for I/O. */
    public synchronized Snapshot snapshot() {
        if (run != null) {
            return new Snapshot(PrefetchState.RUNNING, run.doneBytes(), run.totalBytes(), null);
        }
        return new Snapshot(state, done, total, error);
    }

    /** The running run, for tests. */
    synchronized PrefetchRun run() {
        return run;
    }

    /** Stops the prefetch at unmount; its sidecar stays, so the next mount resumes it. Idempotent. */
    @Override
    public void close() {
        synchronized (commands) {
            synchronized (this) {
                closed = true;
            }
            stopRun();
        }
    }

    // ------------------------------------------------------------------ inside commands

    private void refuseReadOnly() throws CorfsException {
        if (disk.readOnly()) {
            throw new CorfsException(Reason.READ_ONLY, disk.name() + ": mounted read-only, so a prefetch could"
                    + " store nothing");
        }
    }

    private void check(AccessProfile profile, String source) throws CorfsException {
        PrefetchRecord.check(profile, source, disk.name(), disk.image().header().backingIdentity(), disk.size());
    }

    private void stopRun() {
        PrefetchRun old;
        synchronized (this) {
            old = run;
            run = null;
        }
        if (old != null) {
            old.close();
        }
    }

    private void launch(AccessProfile profile) throws CorfsException {
        PrefetchRun r = new PrefetchRun(disk, profile, fileOps, this::ended, System::nanoTime);
        synchronized (this) {
            if (closed) {
                throw new CorfsException(Reason.BUSY, disk.name() + ": unmounting");
            }
            run = r;
            state = PrefetchState.RUNNING;
            error = null;
        }
        r.start();
    }

    // ------------------------------------------------------------------ a run's end (a worker)

    private void ended(PrefetchRun r, PrefetchState outcome, Throwable failure) {
        String why = failure == null ? null : failure.getMessage() == null ? failure.toString() : failure.getMessage();
        if (outcome == PrefetchState.COMPLETED) {
            try {
                disk.flush(); // the fetched clusters' bits durable before the record of the pending work goes
            } catch (IOException | RuntimeException e) {
                outcome = PrefetchState.FAILED;
                why = "flush after the prefetch: " + e.getMessage();
            }
        }
        synchronized (this) {
            if (run != r) {
                return; // stopped by a command meanwhile: that command decides the record and the state
            }
            run = null;
            state = outcome;
            done = r.doneBytes();
            total = r.totalBytes();
            error = why;
            if (outcome == PrefetchState.COMPLETED) {
                try {
                    PrefetchRecord.remove(leaf);
                } catch (IOException e) {
                    LOG.warn("{}: prefetch completed, but its record {} cannot be removed: {}", disk.name(),
                            PrefetchRecord.pathOf(leaf), e.toString());
                }
            }
        }
    }
}
