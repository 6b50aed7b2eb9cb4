package corfs.jobs;

import corfs.engine.LeafDisk;
import corfs.io.FileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import corfs.vocabulary.LogLeaf;
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
 * The scheduler of one mount's jobs: a single named thread that steps the running jobs of all its
 * leaves ({@link LeafJob}), one step (at most 1 MiB) at a time, round robin, so no leaf starves another.
 * What a job is (its commands, runs, record and status) is {@link LeafJob}'s; what a step does is
 * {@link StreamStep}'s or {@link CommitStep}'s; what a failure does is {@link ErrorPolicy}'s. Here: when.
 *
 * <h2>Lifecycle</h2>
 * Explicit state in an atomic (NEW, RUNNING, HALTED); {@link #start()} refuses a second start;
 * {@link #close()} halts, wakes the thread and waits for it with a timeout, and says so if it does not
 * stop. The thread is never interrupted (NIO closes channels on interrupt); it is woken through this
 * object's monitor and sees the state.
 *
 * <h2>Priorities</h2>
 * The thread runs in Linux's idle I/O class, and before each step it yields (a few milliseconds at
 * most) while guest requests are in flight on that leaf: guest I/O comes first, the job still finishes.
 * A job's speed limit and retry backoff tell the scheduler when it may step next; it sleeps until the
 * soonest, or until a command wakes it.
 *
 * <p>Locks: this object's monitor only guards the wait; it is never held while a job's monitor is
 * taken or while a step runs.
 */
public final class Filler implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Filler.class);
    private static final long IDLE_WAIT_MS = 500;
    private static final long GUEST_YIELD_NANOS = 1_000_000;
    private static final int GUEST_YIELD_MAX = 5;
    private static final long STOP_TIMEOUT_MS = 30_000;

    private enum Lifecycle { NEW, RUNNING, HALTED }

    private final AtomicReference<Lifecycle> lifecycle = new AtomicReference<>(Lifecycle.NEW);
    private final Map<String, LeafJob> jobs = new LinkedHashMap<>();
    private final FileOps fileOps;
    private final Thread thread;
    /** Filler thread only: round-robin position. */
    private int roundRobin;

    public Filler(List<LeafDisk> disks, FileOps fileOps, String mountName) {
        this.fileOps = fileOps;
        for (LeafDisk d : disks) {
            jobs.put(d.name(), new LeafJob(d, this::wake, fileOps));
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
        job(disk.name()).restore();
    }

    /** Starts a job; returns its number (unique per leaf, one more than the last). */
    public long startJob(String image, JobKind kind, Long speed, OnError onError) throws IOException {
        return startJobAt(image, kind, speed == null ? null : JobSpeed.fixed(speed), onError);
    }

    /** Starts a job at a speed (null: unlimited; auto: a stream only). */
    public long startJobAt(String image, JobKind kind, JobSpeed speed, OnError onError) throws IOException {
        return job(image).start(kind, speed, onError);
    }

    public void pause(String image) throws IOException {
        job(image).pause();
    }

    public void resume(String image) throws IOException {
        job(image).resume();
    }

    public void cancel(String image) throws IOException {
        job(image).cancel();
    }

    public void setSpeed(String image, JobSpeed speed) throws IOException {
        job(image).setSpeed(speed);
    }

    /** See {@link MountSession#prioritize}. */
    public void prioritize(String image, List<long[]> byteRanges) throws IOException {
        job(image).prioritize(byteRanges);
    }

    /** Records why a command on this leaf was refused (shown as command_error; the job's error stays). */
    public void recordCommandError(String image, String message) {
        LeafJob job = jobs.get(image);
        if (job != null) {
            job.recordCommandError(message);
        }
    }

    /** The leaf's status, from the job's published snapshot: takes no lock and waits for no I/O. */
    public LeafStatus status(String image) {
        return job(image).status();
    }

    private LeafJob job(String image) throws IllegalArgumentException {
        LeafJob job = jobs.get(image);
        if (job == null) {
            throw new IllegalArgumentException("no such image: " + image);
        }
        return job;
    }

    private synchronized void wake() {
        notifyAll();
    }

    // ------------------------------------------------------------------ the thread

    private void run() {
        if (!fileOps.setCurrentThreadIdleIoPriority()) {
            LOG.debug("filler runs at normal I/O priority (idle class not available)");
        }
        List<LeafJob> all = new ArrayList<>(jobs.values());
        int[] maxClusters = new int[1];
        long[] wakeAt = new long[1];
        while (lifecycle.get() == Lifecycle.RUNNING) {
            long now = System.nanoTime();
            long soonest = now + TimeUnit.MILLISECONDS.toNanos(IDLE_WAIT_MS);
            boolean stepped = false;
            for (int i = 0; i < all.size() && !stepped; i++) {
                LeafJob job = all.get((roundRobin + i) % all.size());
                if (job.hasRetired()) {
                    job.closeRetired();
                }
                LeafJob.Run run = job.claim(now, maxClusters, wakeAt);
                if (run == null) {
                    soonest = Math.min(soonest, wakeAt[0]);
                    continue;
                }
                roundRobin = (roundRobin + i + 1) % all.size();
                yieldToGuest(job.disk);
                try (LogLeaf tag = LogLeaf.tag(job.disk.name())) {
                    job.step(run, maxClusters[0]);
                }
                stepped = true;
            }
            if (stepped) {
                continue;
            }
            // Nothing may step now: sleep until the soonest throttle or backoff ends, or a command wakes us.
            synchronized (this) {
                if (lifecycle.get() != Lifecycle.RUNNING) {
                    break;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, Math.max(soonest - System.nanoTime(), 1));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        LOG.debug("filler thread ends");
    }

    /**
     * Waits (a few milliseconds at most) while guest requests are in flight on {@code disk}: the filler
     * before each step, and a stream's workers before each fill.
     */
    static void yieldToGuest(LeafDisk disk) {
        for (int i = 0; i < GUEST_YIELD_MAX && disk.guestActive(GUEST_YIELD_NANOS); i++) {
            try {
                TimeUnit.NANOSECONDS.sleep(GUEST_YIELD_NANOS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * Halts the thread, waits for it, then closes every job's runs (a commit's writer, recording the
     * backing's new identity); running jobs stay recorded as running and resume at the next mount.
     * Idempotent.
     */
    @Override
    public void close() {
        Lifecycle was = lifecycle.getAndSet(Lifecycle.HALTED);
        if (was == Lifecycle.HALTED) {
            return;
        }
        if (was == Lifecycle.RUNNING) {
            wake();
            try {
                thread.join(STOP_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (thread.isAlive()) {
                LOG.warn("filler thread did not stop within {} ms; a job step is stuck", STOP_TIMEOUT_MS);
            }
        }
        for (LeafJob job : jobs.values()) {
            job.shutdown();
        }
    }
}
