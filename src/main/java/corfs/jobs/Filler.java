package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;
import corfs.vocabulary.LeafStatus;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.engine.BackingReadException;
import corfs.engine.LeafDisk;
import corfs.image.ClusterBitmap;
import corfs.image.LeafHeader;
import corfs.io.FileOps;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The background filler of one mount: a single named thread that runs the stream and commit jobs of
 * all its leaves, one step (at most 1 MiB) at a time, round robin, so no leaf starves another.
 *
 * <h2>Lifecycle</h2>
 * Explicit state in an atomic (NEW, RUNNING, HALTED); {@link #start()} refuses a second start;
 * {@link #close()} halts, wakes the thread and waits for it with a timeout, and says so if it does not
 * stop. The thread is never interrupted (NIO closes channels on interrupt); it is woken through the
 * monitor and sees the state.
 *
 * <h2>Priorities</h2>
 * The thread runs in Linux's idle I/O class, and before each step it yields (a few milliseconds at
 * most) while guest requests are in flight on that leaf: guest I/O comes first, the job still finishes.
 * The speed limit counts the bytes the job processes, as done_bytes shows them: what a user sets is
 * what the status shows. (Holes are still never read or written as data; they just count.)
 *
 * <h2>Failures</h2>
 * A step that fails ends the job in state failed (on_error=stop), waits and retries (retry), or
 * records the extent and goes on (skip). One failing job never stops the thread or other jobs;
 * anything unexpected is logged and fails only that job.
 *
 * <h2>Persistence</h2>
 * The job record is written to the leaf's header on every state change, so a job running at an
 * unmount or crash resumes at the next mount. Progress itself is the bitmaps: a stream resumes by
 * scanning for clusters that are not local, a commit for dirty ones.
 *
 * <p>Lock order: this filler's monitor, then a job's monitor; never the other way. Disk operations are
 * done with neither held.
 */
public final class Filler implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Filler.class);
    private static final int STEP_BYTES = 1 << 20;
    private static final long IDLE_WAIT_MS = 500;
    private static final long GUEST_YIELD_NANOS = 1_000_000;
    private static final int GUEST_YIELD_MAX = 5;
    private static final long COMMIT_FLUSH_BYTES = 32L << 20;
    private static final long MAX_RETRY_DELAY_MS = 5_000;
    private static final long STOP_TIMEOUT_MS = 30_000;
    private static final long STEP_WAIT_NANOS = TimeUnit.SECONDS.toNanos(10);

    private enum Lifecycle { NEW, RUNNING, HALTED }

    private final AtomicReference<Lifecycle> lifecycle = new AtomicReference<>(Lifecycle.NEW);
    private final Map<String, LeafJob> jobs = new LinkedHashMap<>();
    private final FileOps fileOps;
    private final Thread thread;
    /** Filler thread only: round-robin position and when the loop should look again. */
    private int roundRobin;
    private long nextWakeNanos;

    public Filler(List<LeafDisk> disks, FileOps fileOps, String mountName) {
        this.fileOps = fileOps;
        for (LeafDisk d : disks) {
            jobs.put(d.name(), new LeafJob(d));
        }
        this.thread = new Thread(this::run, "corfs-filler-" + mountName);
        this.thread.setDaemon(true);
    }

    public void start() {
        if (!lifecycle.compareAndSet(Lifecycle.NEW, Lifecycle.RUNNING)) {
            throw new IllegalStateException("filler already started or halted: " + lifecycle.get());
        }
        thread.start();
    }

    // ------------------------------------------------------------------ commands (any thread)

    /** Restores the job recorded in a leaf's header at mount: a running job resumes, others are shown. */
    public void restore(LeafDisk disk) throws IOException {
        LeafHeader.JobRecord rec = disk.image().header().job();
        if (rec.kind() == JobKind.NONE) {
            return;
        }
        LeafJob job = job(disk.name());
        synchronized (job) {
            job.kind = rec.kind();
            job.state = rec.state();
            job.speed = rec.speed();
            job.onError = rec.onError();
            job.error = rec.error();
            if (!rec.state().isActive()) {
                // shown as the last job's result; an active stream rescans and records them anew
                job.unreadable.addAll(corfs.image.UnreadableLedger.load(disk.image().dataPath()));
            }
            job.cursor = 0;
            resetProgress(job);
            job.throttleUntilNanos = System.nanoTime();
            if (rec.state().isActive() && disk.readOnly()) {
                job.state = JobState.PAUSED;
                LOG.info("{}: {} job was {}; mounted read-only, so it stays paused", disk.name(), rec.kind().word(),
                        rec.state().word());
                return;
            }
            if (rec.state() == JobState.RUNNING || rec.state() == JobState.PAUSED) {
                if (rec.kind() == JobKind.COMMIT) {
                    job.writer = disk.backing().openWriter();
                }
                LOG.info("{}: resuming {} job ({}) interrupted by an unmount or crash", disk.name(),
                        rec.kind().word(), rec.state().word());
            }
        }
        wake();
    }

    public void startJob(String image, JobKind kind, Long speed, OnError onError) throws IOException {
        LeafJob job = job(image);
        LeafDisk disk = job.disk;
        if (disk.readOnly()) {
            throw new CorfsException(Reason.READ_ONLY, image + " is mounted read-only: no " + kind.word() + " job");
        }
        synchronized (job) {
            if (job.state.isActive()) {
                throw new CorfsException(Reason.BUSY, image + ": a " + job.kind.word() + " job is already "
                        + job.state.word() + " (cancel it first)");
            }
            if (kind == JobKind.STREAM && disk.backing() == null) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, image + " is standalone: nothing to stream");
            }
            if (kind == JobKind.COMMIT && disk.backing() == null) {
                throw new CorfsException(Reason.READ_ONLY, image + " has no backing to commit to");
            }
            if (kind == JobKind.COMMIT) {
                job.writer = disk.backing().openWriter(); // refuses a read-only backing, changing nothing
            }
            job.kind = kind;
            job.speed = speed != null ? speed : 0;
            job.onError = onError != null ? onError : OnError.STOP;
            job.error = null;
            job.cursor = 0;
            job.unreadable.clear();
            saveUnreadable(job);
            resetProgress(job);
            job.rate.reset();
            job.retryDelayMillis = 0;
            job.throttleUntilNanos = System.nanoTime();
            job.state = JobState.RUNNING;
            persist(job);
            LOG.info("{}: {} job started (speed {}, on_error {}, {} bytes to go)", image, kind.word(),
                    job.speed == 0 ? "unlimited" : job.speed + " B/s", job.onError.word(),
                    job.totalBytes - job.doneBytes);
        }
        wake();
    }

    public void pause(String image) throws IOException {
        LeafJob job = job(image);
        synchronized (job) {
            if (job.state != JobState.RUNNING) {
                throw new CorfsException(Reason.NO_JOB, image + ": no running job to pause (state " + job.state.word() + ")");
            }
            job.state = JobState.PAUSED;
            persist(job);
            awaitStepEnd(job);
            LOG.info("{}: {} job paused", image, job.kind.word());
        }
    }

    public void resume(String image) throws IOException {
        LeafJob job = job(image);
        synchronized (job) {
            if (job.state != JobState.PAUSED && job.state != JobState.FAILED) {
                throw new CorfsException(Reason.NO_JOB, image + ": no paused or failed job to resume (state "
                        + job.state.word() + ")");
            }
            if (job.kind == JobKind.COMMIT && job.writer == null) {
                job.writer = job.disk.backing().openWriter();
            }
            job.state = JobState.RUNNING;
            job.retryDelayMillis = 0;
            job.retryNotBeforeNanos = 0;
            job.throttleUntilNanos = System.nanoTime();
            persist(job);
            LOG.info("{}: {} job resumed", image, job.kind.word());
        }
        wake();
    }

    public void cancel(String image) throws IOException {
        LeafJob job = job(image);
        synchronized (job) {
            if (!job.state.isActive() && job.state != JobState.FAILED) {
                throw new CorfsException(Reason.NO_JOB, image + ": no job to cancel (state " + job.state.word() + ")");
            }
            job.state = JobState.CANCELLED;
            persist(job);
            awaitStepEnd(job);
            LOG.info("{}: {} job cancelled", image, job.kind.word());
        }
        wake();
    }

    public void setSpeed(String image, long bytesPerSecond) throws IOException {
        LeafJob job = job(image);
        synchronized (job) {
            if (!job.state.isActive()) {
                throw new CorfsException(Reason.NO_JOB, image + ": no running or paused job to set the speed of");
            }
            job.speed = bytesPerSecond;
            job.throttleUntilNanos = System.nanoTime();
            persist(job);
        }
        wake();
    }

    /** Records an error for the status (a rejected command, say). */
    public void recordError(String image, String message) {
        LeafJob job = jobs.get(image);
        if (job != null) {
            synchronized (job) {
                job.error = message;
            }
        }
    }

    public LeafStatus status(String image) {
        LeafJob job = job(image);
        LeafDisk d = job.disk;
        synchronized (job) {
            long rate = job.state == JobState.RUNNING ? job.rate.bytesPerSecond(System.nanoTime()) : 0;
            long remaining = Math.max(0, job.totalBytes - job.doneBytes);
            long eta = job.state == JobState.RUNNING && rate > 0 ? (remaining + rate - 1) / rate
                    : job.state == JobState.COMPLETED ? 0 : -1;
            return new LeafStatus(d.name(), d.size(), d.clusterSize(), d.localBytes(), d.dirtyBytes(),
                    d.image().header().standalone(), job.kind, job.state, job.doneBytes, job.totalBytes, job.speed,
                    rate, eta, job.onError, job.error, List.copyOf(job.unreadable));
        }
    }

    private LeafJob job(String image) throws IllegalArgumentException {
        LeafJob job = jobs.get(image);
        if (job == null) {
            throw new IllegalArgumentException("no such image: " + image);
        }
        return job;
    }

    /**
     * A stream's progress is the leaf's: done = local bytes of the whole disk, so it never goes back
     * across remounts and copy-on-read by the guest counts too. A commit counts from what is dirty now.
     */
    private static void resetProgress(LeafJob job) {
        LeafDisk d = job.disk;
        if (job.kind == JobKind.COMMIT) {
            job.doneBytes = 0;
            job.totalBytes = d.dirtyBytes();
        } else {
            job.doneBytes = d.localBytes();
            job.totalBytes = d.size();
        }
    }

    private void persist(LeafJob job) throws IOException {
        if (job.disk.readOnly()) {
            return;
        }
        LeafHeader.JobRecord rec = new LeafHeader.JobRecord(job.kind, job.state, job.speed, job.onError, job.error);
        job.disk.image().updateHeader(h -> h.withJob(rec));
    }

    private synchronized void wake() {
        notifyAll();
    }

    // ------------------------------------------------------------------ the thread

    private void run() {
        if (!fileOps.setCurrentThreadIdleIoPriority()) {
            LOG.debug("filler runs at normal I/O priority (idle class not available)");
        }
        while (lifecycle.get() == Lifecycle.RUNNING) {
            long now = System.nanoTime();
            LeafJob job = nextRunnable(now);
            if (job != null) {
                try {
                    step(job);
                } catch (Throwable t) {
                    fail(job, t);
                }
                continue;
            }
            // Nothing may step now: sleep until the soonest throttle or backoff ends, or a command wakes us.
            long waitNanos = Math.min(nextWakeNanos - now, TimeUnit.MILLISECONDS.toNanos(IDLE_WAIT_MS));
            synchronized (this) {
                if (lifecycle.get() != Lifecycle.RUNNING) {
                    break;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, Math.max(waitNanos, 1));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        LOG.debug("filler thread ends");
    }

    /**
     * The next running job whose throttle and backoff allow a step now, round robin; else null, with
     * {@link #nextWakeNanos} set to when one will (or far in the future when none is running).
     */
    private LeafJob nextRunnable(long now) {
        List<LeafJob> all = new ArrayList<>(jobs.values());
        long soonest = Long.MAX_VALUE;
        for (int i = 0; i < all.size(); i++) {
            LeafJob j = all.get((roundRobin + i) % all.size());
            synchronized (j) {
                if (j.state == JobState.CANCELLED && j.writer != null) {
                    return j; // let the step close the writer
                }
                if (j.state != JobState.RUNNING) {
                    continue;
                }
                long notBefore = Math.max(j.throttleUntilNanos, j.retryNotBeforeNanos);
                if (notBefore - now <= 0) {
                    roundRobin = (roundRobin + i + 1) % all.size();
                    return j;
                }
                soonest = Math.min(soonest, notBefore);
            }
        }
        nextWakeNanos = soonest == Long.MAX_VALUE ? now + TimeUnit.MILLISECONDS.toNanos(IDLE_WAIT_MS) : soonest;
        return null;
    }

    private void step(LeafJob job) throws IOException {
        JobKind kind;
        synchronized (job) {
            if (job.state == JobState.CANCELLED) {
                closeWriter(job);
                return;
            }
            kind = job.kind;
            job.stepping = true;
        }
        try {
            yieldToGuest(job.disk);
            if (kind == JobKind.STREAM) {
                streamStep(job);
            } else if (kind == JobKind.COMMIT) {
                commitStep(job);
            }
        } finally {
            synchronized (job) {
                job.stepping = false;
                job.notifyAll();
            }
        }
    }

    /**
     * Waits (bounded) for a step in flight to end, so that once pause or cancel returns the job moves
     * nothing more. Caller holds the job's monitor; waiting releases it, so the step can finish.
     */
    private static void awaitStepEnd(LeafJob job) {
        long deadline = System.nanoTime() + STEP_WAIT_NANOS;
        while (job.stepping) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                LOG.warn("{}: the job's current step is still running after {} ms", job.disk.name(),
                        STEP_WAIT_NANOS / 1_000_000);
                return;
            }
            try {
                TimeUnit.NANOSECONDS.timedWait(job, left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private void yieldToGuest(LeafDisk disk) {
        for (int i = 0; i < GUEST_YIELD_MAX && disk.guestActive(GUEST_YIELD_NANOS); i++) {
            sleepNanos(GUEST_YIELD_NANOS);
        }
    }

    private int stepClusters(LeafJob job) {
        int clusterSize = job.disk.clusterSize();
        long bytes = STEP_BYTES;
        long speed = job.speed;
        if (speed > 0) {
            bytes = Math.min(bytes, Math.max(speed / 20, clusterSize)); // ~20 steps a second keeps the limit smooth
        }
        return (int) Math.max(1, bytes / clusterSize);
    }

    private void streamStep(LeafJob job) throws IOException {
        LeafDisk disk = job.disk;
        ClusterBitmap local = disk.image().local();
        long clusters = disk.clusters();
        long first = local.nextClear(job.cursor, clusters);
        if (first >= clusters && job.cursor > 0) {
            first = local.nextClear(0, clusters); // skipped extents (on_error=skip) are not revisited
            if (!job.unreadable.isEmpty()) {
                first = clusters;
            }
        }
        if (first >= clusters) {
            finishStream(job);
            return;
        }
        long last = Math.min(clusters - 1, first + stepClusters(job) - 1);
        long holeEnd = disk.backingHoleEnd(first);
        if (holeEnd > first) {
            // a hole of the backing becomes a hole of the leaf in one step, however long (1 GiB at most)
            last = Math.min(holeEnd - 1, first + Math.max(1, (1L << 30) / disk.clusterSize()) - 1);
        }
        long missingBytes = (last - first + 1) * (long) disk.clusterSize()
                - (local.count(first, last + 1) * (long) disk.clusterSize());
        if (last == clusters - 1 && !local.get(last)) {
            missingBytes -= clusters * disk.clusterSize() - disk.size();
        }
        try {
            disk.fill(first, last);
        } catch (BackingReadException e) {
            if (handleReadError(job, e, first, last)) {
                return;
            }
            throw e;
        }
        job.cursor = last + 1;
        progress(job, missingBytes);
    }

    private void finishStream(LeafJob job) throws IOException {
        LeafDisk disk = job.disk;
        disk.flush();
        synchronized (job) {
            if (job.state != JobState.RUNNING) {
                return;
            }
            if (job.unreadable.isEmpty()) {
                disk.image().updateHeader(h -> h.withStandalone(true));
                job.state = JobState.COMPLETED;
                job.error = null;
                LOG.info("{}: stream completed; the leaf is standalone", disk.name());
            } else {
                job.state = JobState.COMPLETED_WITH_ERRORS;
                job.error = job.unreadable.size() + " unreadable extent(s) skipped";
                LOG.warn("{}: stream completed with {} unreadable extent(s)", disk.name(), job.unreadable.size());
            }
            job.doneBytes = job.totalBytes;
            persist(job);
        }
    }

    private void commitStep(LeafJob job) throws IOException {
        LeafDisk disk = job.disk;
        ClusterBitmap dirty = disk.image().dirty();
        long clusters = disk.clusters();
        long first = dirty.nextSet(job.cursor, clusters);
        if (first >= clusters) {
            flushCommitted(job);
            if (dirty.nextSet(0, clusters) < clusters) {
                job.cursor = 0; // written again while we went: another pass
                return;
            }
            finishCommit(job);
            return;
        }
        long last = Math.min(clusters - 1, first + stepClusters(job) - 1);
        long[] copied = disk.copyDirtyToBacking(first, last, job.writer);
        long bytes = 0;
        for (long c : copied) {
            bytes += Math.min(disk.size(), (c + 1) * disk.clusterSize()) - c * disk.clusterSize();
        }
        job.uncommitted.add(copied);
        job.uncommittedBytes += bytes;
        job.cursor = last + 1;
        if (job.uncommittedBytes >= COMMIT_FLUSH_BYTES) {
            flushCommitted(job);
        }
        progress(job, bytes);
    }

    /** The backing's durability, then the dirty bits: never clear a bit for data the backing may lose. */
    private void flushCommitted(LeafJob job) throws IOException {
        if (job.uncommitted.isEmpty()) {
            return;
        }
        job.writer.flush();
        for (long[] copied : job.uncommitted) {
            job.disk.markCommitted(copied);
        }
        job.uncommitted.clear();
        job.uncommittedBytes = 0;
    }

    private void finishCommit(LeafJob job) throws IOException {
        LeafDisk disk = job.disk;
        disk.flush(); // the cleared dirty bits, durable
        synchronized (job) {
            if (job.state != JobState.RUNNING) {
                return;
            }
            var identity = disk.backing().identity();
            disk.image().updateHeader(h -> h.withBackingIdentity(identity));
            job.state = JobState.COMPLETED;
            job.error = null;
            job.doneBytes = job.totalBytes;
            closeWriter(job);
            persist(job);
            LOG.info("{}: commit completed; the backing holds every write", disk.name());
        }
    }

    /** Counts {@code processed} bytes done and throttles the job so done_bytes advances at its speed. */
    private void progress(LeafJob job, long processed) {
        long done;
        if (job.kind == JobKind.STREAM) {
            done = job.disk.localBytes();
        } else {
            done = job.doneBytes + processed;
            if (done > job.totalBytes) {
                job.totalBytes = done; // writes during a commit add work
            }
        }
        job.doneBytes = done;
        long now = System.nanoTime();
        job.rate.sample(now, done);
        long speed = job.speed;
        synchronized (job) {
            job.retryDelayMillis = 0;
            if (speed > 0 && processed > 0) {
                // A job that fell behind (yielding to the guest) may catch up by a quarter second, no more.
                long base = Math.max(job.throttleUntilNanos, now - 250_000_000L);
                job.throttleUntilNanos = base + processed * 1_000_000_000L / speed;
            }
        }
    }

    /** Returns true if the error was handled (retry later, or skipped). */
    private boolean handleReadError(LeafJob job, BackingReadException e, long first, long last) throws IOException {
        OnError policy;
        synchronized (job) {
            policy = job.onError;
        }
        switch (policy) {
            case RETRY -> {
                synchronized (job) {
                    job.retryDelayMillis = job.retryDelayMillis == 0 ? 100 : Math.min(MAX_RETRY_DELAY_MS, job.retryDelayMillis * 2);
                    job.retryNotBeforeNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(job.retryDelayMillis);
                    job.error = e.getMessage() + " (retrying in " + job.retryDelayMillis + " ms)";
                }
                LOG.warn("{}: {}; retrying in {} ms", job.disk.name(), e.getMessage(), job.retryDelayMillis);
                return true;
            }
            case SKIP -> {
                // Isolate the unreadable clusters one by one; the readable ones are filled.
                LeafDisk disk = job.disk;
                for (long c = first; c <= last; c++) {
                    try {
                        disk.fill(c, c);
                    } catch (BackingReadException single) {
                        long off = c * disk.clusterSize();
                        long len = Math.min(disk.size(), off + disk.clusterSize()) - off;
                        synchronized (job) {
                            addUnreadable(job, off, len);
                            job.error = single.getMessage();
                            saveUnreadable(job);
                        }
                    }
                }
                job.cursor = last + 1;
                long bytes = Math.min(disk.size(), (last + 1) * disk.clusterSize()) - first * disk.clusterSize();
                progress(job, bytes);
                return true;
            }
            default -> {
                return false;
            }
        }
    }

    private static void addUnreadable(LeafJob job, long off, long len) {
        if (!job.unreadable.isEmpty()) {
            long[] lastExtent = job.unreadable.get(job.unreadable.size() - 1);
            if (lastExtent[0] + lastExtent[1] == off) {
                lastExtent[1] += len;
                return;
            }
        }
        job.unreadable.add(new long[] {off, len});
    }

    private static void saveUnreadable(LeafJob job) {
        if (job.disk.readOnly()) {
            return;
        }
        try {
            corfs.image.UnreadableLedger.save(job.disk.image().dataPath(), job.unreadable);
        } catch (IOException e) {
            LOG.warn("{}: cannot record unreadable extents: {}", job.disk.name(), e.toString());
        }
    }

    private void fail(LeafJob job, Throwable t) {
        String message = t.getMessage() != null ? t.getMessage() : t.toString();
        if (!(t instanceof IOException)) {
            LOG.warn("{}: {} job failed unexpectedly", job.disk.name(), job.kind.word(), t);
        } else {
            LOG.warn("{}: {} job failed: {}", job.disk.name(), job.kind.word(), message);
        }
        synchronized (job) {
            job.state = JobState.FAILED;
            job.error = message;
            try {
                persist(job);
            } catch (IOException | RuntimeException e) {
                LOG.warn("{}: cannot record the failed job: {}", job.disk.name(), e.toString());
            }
        }
    }

    private void closeWriter(LeafJob job) {
        if (job.writer == null) {
            return;
        }
        try {
            flushCommitted(job);
        } catch (IOException e) {
            LOG.warn("{}: flushing the backing at the end of the commit failed: {}", job.disk.name(), e.toString());
        }
        try {
            job.writer.close();
        } catch (IOException e) {
            LOG.debug("close backing writer", e);
        }
        job.writer = null;
    }

    private static void sleepNanos(long nanos) {
        if (nanos <= 0) {
            return;
        }
        try {
            TimeUnit.NANOSECONDS.sleep(nanos);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Halts the thread (jobs keep their persisted state and resume at the next mount) and waits for it.
     * Idempotent.
     */
    @Override
    public void close() {
        Lifecycle was = lifecycle.getAndSet(Lifecycle.HALTED);
        if (was == Lifecycle.RUNNING) {
            wake();
            try {
                thread.join(STOP_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (thread.isAlive()) {
                LOG.warn("filler thread did not stop within {} ms", STOP_TIMEOUT_MS);
            }
        }
        for (LeafJob job : jobs.values()) {
            synchronized (job) {
                closeWriter(job);
            }
        }
    }
}
