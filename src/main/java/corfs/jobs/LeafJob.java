package corfs.jobs;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingIdentity;
import corfs.engine.LeafDisk;
import corfs.image.LeafHeader;
import corfs.image.UnreadableLedger;
import corfs.io.FileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.UnaryOperator;

/**
 * The job of one leaf as a state machine: control commands (any thread), the steps the filler runs, the
 * persisted job record and the status snapshot.
 *
 * <h2>Runs</h2>
 * A start or a resume begins a <em>run</em>: a {@link JobStep} that owns what it opened (a commit's
 * writer). At most one run is current; a run that ends (completed, failed, cancelled, replaced,
 * unmounted) is <em>retired</em> and closed exactly once, by the filler after its step or by the command
 * that retired it, whichever finds it not stepping. Results of a step apply only while its run is still
 * current, so a late step of a cancelled run can never change the job that replaced it.
 *
 * <h2>Locks</h2>
 * <ul>
 *   <li>{@link #commandLock}: serialises the commands on this leaf (each is check, I/O, install); waited
 *       for with a timeout, then BUSY. Held across I/O; the filler never takes it.</li>
 *   <li>{@link #persistLock}: one header write of the job record at a time, the record taken inside it,
 *       so the last write always holds the newest state.</li>
 *   <li>this object's monitor: every mutable field, held only for in-memory work, <b>never across
 *       I/O</b> (asserted before each I/O call). It is the innermost lock.</li>
 * </ul>
 * Lock order: commandLock, then persistLock, then the leaf image's header lock, then this monitor, then
 * the monitors of {@link #pacing} and of a stream step's priority queue (innermost, in-memory only).
 * Status takes none of them: it reads the immutable {@link JobSnapshot} published after every change.
 *
 * <h2>The backing's identity</h2>
 * A commit writer is counted in {@link #openWriters} before it opens, and the persisted record says
 * {@code backingWritten} while any is open or its closing has not been followed by recording the
 * backing's new identity. A run is armed (may step) only after that record is durable, so the flag is
 * on disk before the first write to the backing. See {@link corfs.image.BackingChange}.
 *
 * <h2>Speed</h2>
 * A fixed limit charges every step's bytes against {@link #throttleUntilNanos}. {@code speed=auto} (a
 * stream only) gives the run's {@link StreamStep} a {@link LatencyController} ({@link #pacing}, kept
 * across pause and resume, replaced when the target changes): it sets the size of the fills (the claim's
 * step), the fills in flight, and its rate, which is charged like a fixed limit. The record persists the
 * setting ({@link JobSpeed#encode}), so a resumed job is auto again; the controller starts afresh then.
 */
final class LeafJob {
    private static final Logger LOG = LoggerFactory.getLogger(LeafJob.class);
    private static final long COMMAND_WAIT_MS = 15_000;
    private static final long STEP_WAIT_NANOS = TimeUnit.SECONDS.toNanos(10);
    private static final long MAX_JOB_ID = 0xFFFF_FFFFL;
    private static final int MAX_STEP_BYTES = 1 << 20;
    /**
     * The step of an unlimited stream whose backing copies into the leaf inside the kernel
     * ({@link LeafDisk#copiesInKernel()}): one copy per step costs a system call, not a buffer's trip
     * through user space, so larger steps only save calls and lock round trips.
     */
    private static final int COPY_STEP_BYTES = 8 << 20;
    private static final long CATCH_UP_NANOS = 250_000_000L;

    /** One run of the job: its step and whether the filler may (armed) or does (stepping) run it. */
    static final class Run {
        final JobStep step;
        /** Guarded by the job's monitor. */
        boolean armed;
        boolean stepping;

        Run(JobStep step) {
            this.step = step;
        }
    }

    final LeafDisk disk;
    private final Runnable wakeFiller;
    private final FileOps fileOps;
    private final ReentrantLock commandLock = new ReentrantLock();
    private final ReentrantLock persistLock = new ReentrantLock();
    private final AtomicReference<JobSnapshot> snapshot = new AtomicReference<>(JobSnapshot.NONE);
    private final RateMeter rate = new RateMeter();

    // ---- guarded by this monitor
    private JobKind kind = JobKind.NONE;
    private JobState state = JobState.IDLE;
    private long id;
    private JobSpeed speed = JobSpeed.UNLIMITED;
    /** speed=auto's controller of a stream, else null. */
    private LatencyController pacing;
    /** Priority ranges for a stream that has no run yet (paused at mount): handed to its next run. */
    private final List<long[]> pendingPriority = new ArrayList<>();
    private OnError onError = OnError.STOP;
    private String error;
    private String commandError;
    private long doneBytes;
    private long totalBytes;
    private long rateNow;
    private long rateAtNanos;
    private final List<long[]> unreadable = new ArrayList<>();
    private Run current;
    private final List<Run> retired = new ArrayList<>();
    private int openWriters;
    private boolean backingWritten;
    private long throttleUntilNanos;
    private long retryNotBeforeNanos;
    private long retryDelayMillis;
    private boolean shutDown;

    LeafJob(LeafDisk disk, Runnable wakeFiller, FileOps fileOps) {
        this.disk = disk;
        this.wakeFiller = wakeFiller;
        this.fileOps = fileOps;
    }

    // ------------------------------------------------------------------ mount

    /** Restores the job recorded in the header: a running job resumes, others are shown. Before start. */
    void restore() throws IOException {
        LeafHeader.JobRecord rec = disk.image().header().job();
        List<long[]> ledger = rec.state().isActive() || rec.kind() == JobKind.NONE ? List.of()
                : UnreadableLedger.load(disk.image().dataPath()); // an active stream rescans and records anew
        boolean resume;
        synchronized (this) {
            kind = rec.kind();
            state = rec.state();
            id = rec.id();
            speed = JobSpeed.decode(rec.speed());
            if (speed.isAuto() && rec.kind() != JobKind.STREAM) {
                speed = JobSpeed.UNLIMITED; // only a stream paces itself
            }
            pacing = speed.isAuto() ? newPacing(speed) : null;
            onError = rec.onError();
            error = rec.error();
            backingWritten = rec.backingWritten();
            unreadable.addAll(ledger);
            resetProgress();
            resume = rec.state() == JobState.RUNNING;
            if (rec.state().isActive() && disk.readOnly()) {
                state = JobState.PAUSED;
                resume = false;
                LOG.info("{}: {} job was {}; mounted read-only, so it stays paused", disk.name(), rec.kind().word(),
                        rec.state().word());
            }
            publish();
        }
        if (resume) {
            LOG.info("{}: resuming {} job {} interrupted by an unmount or crash", disk.name(), rec.kind().word(),
                    rec.id());
            Run run;
            try {
                run = new Run(openStep(rec.kind(), rec.onError()));
            } catch (IOException | RuntimeException e) {
                synchronized (this) {
                    state = JobState.FAILED;
                    error = e.getMessage() != null ? e.getMessage() : e.toString();
                    publish();
                }
                LOG.warn("{}: cannot resume the {} job: {}", disk.name(), rec.kind().word(), error);
                persist(UnaryOperator.identity());
                return;
            }
            synchronized (this) {
                current = run;
                paceRun(run);
            }
            arm(run);
        }
    }

    // ------------------------------------------------------------------ commands (any thread)

    /** Starts a new job, numbered one more than the last; returns its number. */
    long start(JobKind newKind, JobSpeed newSpeed, OnError newOnError) throws IOException {
        String image = disk.name();
        if (newSpeed != null && newSpeed.isAuto() && newKind != JobKind.STREAM) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, image + ": speed " + newSpeed.word()
                    + " is for streams");
        }
        if (disk.readOnly()) {
            throw new CorfsException(Reason.READ_ONLY, image + " is mounted read-only: no " + newKind.word() + " job");
        }
        lockCommands();
        try {
            synchronized (this) {
                if (state.isActive()) {
                    throw new CorfsException(Reason.BUSY, image + ": a " + kind.word() + " job is already "
                            + state.word() + " (cancel it first)");
                }
            }
            if (disk.backing() == null) {
                throw newKind == JobKind.STREAM
                        ? new CorfsException(Reason.INVALID_ARGUMENT, image + " is standalone: nothing to stream")
                        : new CorfsException(Reason.READ_ONLY, image + " has no backing to commit to");
            }
            OnError policy = newOnError != null ? newOnError : OnError.STOP;
            Run run = new Run(openStep(newKind, policy)); // a commit opens its writer: refused changes nothing
            long newId;
            Restore undo;
            synchronized (this) {
                undo = new Restore(this);
                newId = id % MAX_JOB_ID + 1;
                kind = newKind;
                id = newId;
                speed = newSpeed != null ? newSpeed : JobSpeed.UNLIMITED;
                pacing = speed.isAuto() ? newPacing(speed) : null;
                pendingPriority.clear();
                paceRun(run);
                onError = policy;
                error = null;
                commandError = null;
                unreadable.clear();
                resetProgress();
                rate.reset();
                retryDelayMillis = 0;
                retryNotBeforeNanos = 0;
                throttleUntilNanos = System.nanoTime();
                state = JobState.RUNNING;
                current = run;
            }
            try {
                saveUnreadable();
                arm(run);
            } catch (IOException | RuntimeException e) {
                synchronized (this) {
                    undo.apply(this);
                    current = null;
                    publish();
                }
                closeRun(run, UnaryOperator.identity());
                throw e;
            }
            LOG.info("{}: {} job {} started (speed {}, on_error {})", image, newKind.word(), newId,
                    speedText(), policy.word());
            return newId;
        } finally {
            commandLock.unlock();
        }
    }

    void pause() throws IOException {
        lockCommands();
        try {
            Run run;
            synchronized (this) {
                if (state != JobState.RUNNING) {
                    throw new CorfsException(Reason.NO_JOB, disk.name() + ": no running job to pause (state "
                            + state.word() + ")");
                }
                state = JobState.PAUSED;
                commandError = null;
                run = current;
                publish();
            }
            persist(UnaryOperator.identity());
            awaitStepEnd(run);
            awaitQuiet(run);
            LOG.info("{}: {} job {} paused", disk.name(), kind.word(), id);
        } finally {
            commandLock.unlock();
        }
    }

    void resume() throws IOException {
        if (disk.readOnly()) {
            throw new CorfsException(Reason.READ_ONLY, disk.name() + " is mounted read-only: its job cannot resume");
        }
        lockCommands();
        try {
            JobKind k;
            OnError policy;
            boolean needsRun;
            synchronized (this) {
                if (state != JobState.PAUSED && state != JobState.FAILED) {
                    throw new CorfsException(Reason.NO_JOB, disk.name() + ": no paused or failed job to resume (state "
                            + state.word() + ")");
                }
                k = kind;
                policy = onError;
                needsRun = current == null;
            }
            Run run = needsRun ? new Run(openStep(k, policy)) : null;
            Restore undo;
            synchronized (this) {
                undo = new Restore(this);
                state = JobState.RUNNING;
                error = null;
                commandError = null;
                retryDelayMillis = 0;
                retryNotBeforeNanos = 0;
                throttleUntilNanos = System.nanoTime();
                if (run != null) {
                    current = run;
                    paceRun(run);
                    if (run.step instanceof StreamStep st && !pendingPriority.isEmpty()) {
                        st.prioritize(pendingPriority);
                        pendingPriority.clear();
                    }
                    resetProgress();
                    rate.reset();
                } else {
                    publish();
                }
            }
            try {
                if (run != null) {
                    arm(run);
                } else {
                    persist(UnaryOperator.identity());
                }
            } catch (IOException | RuntimeException e) {
                synchronized (this) {
                    undo.apply(this);
                    if (run != null) {
                        current = null;
                    }
                    publish();
                }
                if (run != null) {
                    closeRun(run, UnaryOperator.identity());
                }
                throw e;
            }
            LOG.info("{}: {} job {} resumed", disk.name(), k.word(), id);
        } finally {
            commandLock.unlock();
        }
        wakeFiller.run();
    }

    void cancel() throws IOException {
        lockCommands();
        try {
            Run run;
            synchronized (this) {
                if (!state.isActive() && state != JobState.FAILED) {
                    throw new CorfsException(Reason.NO_JOB, disk.name() + ": no job to cancel (state " + state.word() + ")");
                }
                state = JobState.CANCELLED;
                commandError = null;
                run = retireCurrent();
                publish();
            }
            persist(UnaryOperator.identity());
            if (run != null) {
                awaitStepEnd(run);
            }
            closeRetired(); // a step still running past the wait is closed by the filler after it
            awaitQuiet(run); // the run may be closing on the filler: its fills in flight end first either way
            LOG.info("{}: {} job {} cancelled", disk.name(), kind.word(), id);
        } finally {
            commandLock.unlock();
        }
        wakeFiller.run();
    }

    void setSpeed(long bytesPerSecond) throws IOException {
        setSpeed(JobSpeed.fixed(bytesPerSecond));
    }

    /** Sets the speed of the running or paused job: a limit, or auto (a stream only; same target: kept). */
    void setSpeed(JobSpeed newSpeed) throws IOException {
        lockCommands();
        try {
            synchronized (this) {
                if (!state.isActive()) {
                    throw new CorfsException(Reason.NO_JOB, disk.name() + ": no running or paused job to set the speed of");
                }
                if (newSpeed.isAuto() && kind != JobKind.STREAM) {
                    throw new CorfsException(Reason.INVALID_ARGUMENT, disk.name() + ": speed " + newSpeed.word()
                            + " is for streams, and the job is a " + kind.word());
                }
                if (!newSpeed.equals(speed) || pacing == null) {
                    pacing = newSpeed.isAuto() ? newPacing(newSpeed) : null;
                }
                speed = newSpeed;
                if (current != null) {
                    paceRun(current);
                }
                commandError = null;
                throttleUntilNanos = System.nanoTime();
                publish();
            }
            persist(UnaryOperator.identity());
        } finally {
            commandLock.unlock();
        }
        wakeFiller.run();
    }

    /**
     * Makes the stream (running or paused) fetch these byte ranges next, in this order, then go on from
     * where it was. Each is {offset, length}, length 0 meaning one cluster; every range is checked against
     * the disk before any is queued (INVALID_ARGUMENT), and a leaf without a running or paused stream is
     * NO_JOB. In memory only: a remount forgets them (the stream fetches everything anyway).
     */
    void prioritize(List<long[]> byteRanges) throws IOException {
        long size = disk.size();
        int cs = disk.clusterSize();
        List<long[]> clusters = new ArrayList<>(byteRanges.size());
        for (long[] r : byteRanges) {
            long offset = r[0];
            long length = r[1] == 0 ? Math.min(cs - Math.floorMod(offset, cs), Math.max(1, size - offset)) : r[1];
            if (offset < 0 || length <= 0 || offset >= size || length > size - offset) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, disk.name() + ": range " + offset
                        + (r[1] == 0 ? "" : "+" + r[1]) + " is not within the disk (" + size + " bytes)");
            }
            clusters.add(new long[] {offset / cs, (offset + length - 1) / cs});
        }
        lockCommands();
        try {
            synchronized (this) {
                if (kind != JobKind.STREAM || !state.isActive()) {
                    throw new CorfsException(Reason.NO_JOB, disk.name() + ": no running or paused stream to"
                            + " prioritize (" + kind.word() + " job, state " + state.word() + ")");
                }
                if (current != null && current.step instanceof StreamStep st) {
                    st.prioritize(clusters);
                } else {
                    pendingPriority.addAll(0, clusters);
                    while (pendingPriority.size() > StreamStep.MAX_PRIORITY_QUEUE) {
                        pendingPriority.remove(pendingPriority.size() - 1);
                    }
                }
                commandError = null;
                publish();
            }
            LOG.info("{}: stream {}: {} range(s) prioritized", disk.name(), id, clusters.size());
        } finally {
            commandLock.unlock();
        }
        wakeFiller.run();
    }

    /** Shows why a command on this leaf was refused, apart from the job's own error. */
    synchronized void recordCommandError(String message) {
        commandError = message;
        publish();
    }

    // ------------------------------------------------------------------ status (any thread, no lock)

    LeafStatus status() {
        JobSnapshot s = snapshot.get();
        long now = System.nanoTime();
        boolean running = s.state() == JobState.RUNNING;
        long r = running && now - s.rateAtNanos() < RateMeter.STALE_NANOS ? s.rate() : 0;
        long remaining = Math.max(0, s.totalBytes() - s.doneBytes());
        long eta = running && r > 0 ? (remaining + r - 1) / r : s.state() == JobState.COMPLETED ? 0 : -1;
        return new LeafStatus(disk.name(), disk.size(), disk.clusterSize(), disk.localBytes(), disk.dirtyBytes(),
                disk.image().header().standalone(), s.kind(), s.state(), s.id(), s.doneBytes(), s.totalBytes(),
                s.limit(), r, eta, s.onError(), s.error(), s.commandError(), s.unreadable(),
                corfs.backing.BackingSpec.redact(disk.image().header().backingSpec()), s.speed(), s.autoWindow());
    }

    // ------------------------------------------------------------------ the filler thread

    /**
     * The run to step now, marked stepping, with the clusters it may do in {@code maxClusters[0]}; or null,
     * with the nanoTime it may step next (or Long.MAX_VALUE) in {@code wakeAt[0]}.
     */
    synchronized Run claim(long now, int[] maxClusters, long[] wakeAt) {
        wakeAt[0] = Long.MAX_VALUE;
        Run run = current;
        if (shutDown || state != JobState.RUNNING || run == null || !run.armed || run.stepping) {
            return null;
        }
        long notBefore = Math.max(throttleUntilNanos, retryNotBeforeNanos);
        if (notBefore - now > 0) {
            wakeAt[0] = notBefore;
            return null;
        }
        long bytes = MAX_STEP_BYTES;
        if (kind == JobKind.STREAM && pacing == null && speed.bytesPerSecond() == 0 && disk.copiesInKernel()) {
            bytes = COPY_STEP_BYTES;
        } else if (pacing != null) {
            bytes = pacing.fillBytes(); // auto: the controller sizes the fills (see LatencyController)
        } else if (speed.bytesPerSecond() > 0) {
            bytes = Math.min(bytes, Math.max(speed.bytesPerSecond() / 20, disk.clusterSize())); // ~20 steps a second
        }
        maxClusters[0] = (int) Math.max(1, bytes / disk.clusterSize());
        run.stepping = true;
        return run;
    }

    /** Runs one claimed step and applies its result; then closes retired runs. Filler thread only. */
    void step(Run run, int maxClusters) {
        assert !Thread.holdsLock(this) : "a step does I/O";
        try {
            long processed = run.step.step(maxClusters);
            if (processed == JobStep.FINISHED) {
                run.step.complete();
                finish(run);
            } else {
                progress(run, processed);
            }
        } catch (Throwable t) {
            failed(run, t);
        } finally {
            synchronized (this) {
                run.stepping = false;
                notifyAll();
            }
        }
        closeRetired();
    }

    /** True while a retired run still waits to be closed (the filler retries it). */
    synchronized boolean hasRetired() {
        return !retired.isEmpty();
    }

    private void progress(Run run, long processed) {
        long done;
        synchronized (this) {
            if (run != current) {
                return;
            }
            retryDelayMillis = 0;
            if (kind == JobKind.STREAM) {
                done = disk.localBytes();
            } else {
                done = doneBytes + processed;
                totalBytes = Math.max(totalBytes, done); // writes during a commit add work
            }
            doneBytes = done;
            long now = System.nanoTime();
            rate.sample(now, done);
            rateNow = rate.bytesPerSecond(now);
            rateAtNanos = now;
            long limit = limit();
            if (limit > 0 && processed > 0) {
                // A job that fell behind (yielding to the guest) may catch up by a quarter second, no more.
                long base = Math.max(throttleUntilNanos, now - CATCH_UP_NANOS);
                throttleUntilNanos = base + processed * 1_000_000_000L / limit;
            }
            publish();
        }
    }

    private void finish(Run run) throws IOException {
        boolean standalone;
        synchronized (this) {
            if (run != current || state != JobState.RUNNING || shutDown) {
                return;
            }
            standalone = kind == JobKind.STREAM && unreadable.isEmpty();
            if (kind == JobKind.STREAM && !standalone) {
                state = JobState.COMPLETED_WITH_ERRORS;
                error = unreadable.size() + " unreadable extent(s) skipped";
                LOG.warn("{}: stream {} completed with {} unreadable extent(s)", disk.name(), id, unreadable.size());
            } else {
                state = JobState.COMPLETED;
                error = null;
                LOG.info("{}: {} {} completed{}", disk.name(), kind.word(), id, kind == JobKind.STREAM
                        ? "; the leaf is standalone" : "; the backing holds every write");
            }
            doneBytes = kind == JobKind.STREAM ? disk.localBytes() : totalBytes;
            current = null;
        }
        // Shown once durable: a status that says completed already says standalone, or shows the
        // backing's new identity recorded.
        closeRun(run, standalone ? h -> h.withStandalone(true) : UnaryOperator.identity());
        synchronized (this) {
            publish();
        }
    }

    private void failed(Run run, Throwable t) {
        ErrorPolicy.Decision decision;
        synchronized (this) {
            if (run != current || shutDown) {
                LOG.debug("{}: a step of a retired run failed: {}", disk.name(), t.toString());
                return;
            }
            decision = ErrorPolicy.decide(onError, t, retryDelayMillis);
            error = decision.message();
            if (decision.retry()) {
                retryDelayMillis = decision.delayMillis();
                retryNotBeforeNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(retryDelayMillis);
                publish();
                LOG.warn("{}: {}", disk.name(), decision.message());
                return;
            }
            state = JobState.FAILED;
            current = null;
            publish();
        }
        if (t instanceof IOException) {
            LOG.warn("{}: {} job {} failed: {}", disk.name(), kind.word(), id, decision.message());
        } else {
            LOG.warn("{}: {} job {} failed unexpectedly", disk.name(), kind.word(), id, t);
        }
        closeRun(run, UnaryOperator.identity());
    }

    // ------------------------------------------------------------------ runs

    /** Creates a run's step; a commit opens the backing for writing (I/O, no monitor held). */
    private JobStep openStep(JobKind k, OnError policy) throws IOException {
        assert !Thread.holdsLock(this) : "opening a writer is I/O";
        if (k == JobKind.STREAM) {
            return new StreamStep(disk, policy, this::skipped, fileOps);
        }
        boolean wasWritten;
        synchronized (this) {
            // A run retired by a cancel may still be closing its writer on the filler thread, and its
            // exclusive lock on the backing would refuse ours: wait (bounded) until it is closed.
            long deadline = System.nanoTime() + STEP_WAIT_NANOS;
            while (openWriters > 0 && deadline - System.nanoTime() > 0) {
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, deadline - System.nanoTime());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            wasWritten = backingWritten;
            openWriters++;
            backingWritten = true;
        }
        try {
            return CommitStep.open(disk);
        } catch (IOException | RuntimeException e) {
            synchronized (this) {
                openWriters--;
                // no writer opened: the backing was not touched (a read-only HTTP backing refuses here),
                // so a later persist must not claim a commit changed it
                if (openWriters == 0) {
                    backingWritten = wasWritten;
                }
                notifyAll();
            }
            throw e;
        }
    }

    /** Makes the record (with backingWritten for a commit) durable, then lets the filler step the run. */
    private void arm(Run run) throws IOException {
        persist(UnaryOperator.identity());
        synchronized (this) {
            run.armed = true;
            publish();
        }
        wakeFiller.run();
    }

    /** Moves the current run to the retired list; caller holds the monitor. */
    private Run retireCurrent() {
        assert Thread.holdsLock(this);
        Run run = current;
        current = null;
        if (run != null) {
            retired.add(run);
        }
        return run;
    }

    /** Closes every retired run that is not stepping (the filler closes the others after their step). */
    void closeRetired() {
        while (true) {
            Run run = null;
            synchronized (this) {
                for (Run r : retired) {
                    if (!r.stepping) {
                        run = r;
                        break;
                    }
                }
                if (run == null) {
                    return;
                }
                retired.remove(run);
            }
            closeRun(run, null); // the command that retired it persisted the state
        }
    }

    /**
     * Closes a run that no thread steps and persists the record with {@code change} (null: only if the
     * run closed a writer); when it closed a writer, the backing's new identity is recorded in the same
     * header write.
     */
    private void closeRun(Run run, UnaryOperator<LeafHeader> change) {
        assert !Thread.holdsLock(this) : "closing a run is I/O";
        boolean closedWriter = run.step.close();
        BackingIdentity identity = null;
        if (closedWriter) {
            synchronized (this) {
                openWriters--;
                notifyAll(); // a commit waiting to open its writer (openStep)
            }
            try {
                identity = disk.backing().identity();
            } catch (IOException | RuntimeException e) {
                LOG.warn("{}: cannot read the backing's identity after the commit wrote to it ({}); the next mount"
                        + " records it", disk.name(), e.toString());
            }
        }
        if (change == null && !closedWriter) {
            return;
        }
        UnaryOperator<LeafHeader> base = change == null ? UnaryOperator.identity() : change;
        BackingIdentity recorded = identity;
        try {
            persist(recorded == null ? base : h -> base.apply(h).withBackingIdentity(recorded));
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: cannot record the job's state: {}", disk.name(), e.toString());
        }
    }

    /**
     * Writes the current job record (and {@code change}) to the header. The record is taken inside the
     * persist lock, so concurrent persists leave the newest state on disk.
     */
    private void persist(UnaryOperator<LeafHeader> change) throws IOException {
        assert !Thread.holdsLock(this) : "persisting is two metadata fsyncs";
        if (disk.readOnly()) {
            return;
        }
        persistLock.lock();
        try {
            disk.image().updateHeader(h -> {
                LeafHeader changed = change.apply(h);
                boolean identityRecorded = !changed.backingIdentity().equals(h.backingIdentity());
                return changed.withJob(jobRecord(identityRecorded));
            });
        } finally {
            persistLock.unlock();
        }
    }

    private synchronized LeafHeader.JobRecord jobRecord(boolean identityRecorded) {
        if (identityRecorded && openWriters == 0) {
            backingWritten = false;
        }
        return new LeafHeader.JobRecord(kind, state, speed.encode(), onError, error, id,
                backingWritten || openWriters > 0);
    }

    /** Adds an unreadable extent, keeping the list sorted and merged (a stream's fills end in any order). */
    private void skipped(long offset, long length, String message) {
        synchronized (this) {
            int i = 0;
            while (i < unreadable.size() && unreadable.get(i)[0] < offset) {
                i++;
            }
            unreadable.add(i, new long[] {offset, length});
            if (i + 1 < unreadable.size() && offset + length == unreadable.get(i + 1)[0]) {
                unreadable.get(i)[1] += unreadable.remove(i + 1)[1];
            }
            if (i > 0 && unreadable.get(i - 1)[0] + unreadable.get(i - 1)[1] == offset) {
                unreadable.get(i - 1)[1] += unreadable.remove(i)[1];
            }
            error = message;
            publish();
        }
        saveUnreadable();
    }

    private void saveUnreadable() {
        assert !Thread.holdsLock(this);
        if (disk.readOnly()) {
            return;
        }
        List<long[]> copy;
        synchronized (this) {
            copy = copyOf(unreadable);
        }
        try {
            UnreadableLedger.save(disk.image().dataPath(), copy);
        } catch (IOException e) {
            LOG.warn("{}: cannot record unreadable extents: {}", disk.name(), e.toString());
        }
    }

    /**
     * Unmount: the filler has stopped. Closes every run (a commit's writer, recording the backing's
     * identity) and persists the state as it is, so a running job resumes at the next mount.
     */
    void shutdown() {
        List<Run> runs = new ArrayList<>();
        synchronized (this) {
            shutDown = true;
            for (Run r : retired) {
                if (!r.stepping) {
                    runs.add(r);
                }
            }
            retired.removeAll(runs);
            if (current != null && !current.stepping) {
                runs.add(current);
            }
        }
        for (Run r : runs) {
            closeRun(r, UnaryOperator.identity());
        }
    }

    // ------------------------------------------------------------------ helpers

    private void lockCommands() throws CorfsException {
        boolean locked;
        try {
            locked = commandLock.tryLock(COMMAND_WAIT_MS, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            locked = false;
        }
        if (!locked) {
            throw new CorfsException(Reason.BUSY, disk.name() + ": another command on this leaf is still running");
        }
    }

    /**
     * Waits (bounded) for a step of {@code run} in flight to end, so that once pause or cancel returns the
     * job moves nothing more. Waiting on the monitor releases it, so the step can finish.
     */
    private synchronized void awaitStepEnd(Run run) {
        if (run == null) {
            return;
        }
        long deadline = System.nanoTime() + STEP_WAIT_NANOS;
        while (run.stepping) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                LOG.warn("{}: the job's current step is still running after {} ms", disk.name(),
                        STEP_WAIT_NANOS / 1_000_000);
                return;
            }
            try {
                TimeUnit.NANOSECONDS.timedWait(this, left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Waits (bounded) until what the run started in the background (a stream's fills) has ended. */
    private void awaitQuiet(Run run) {
        assert !Thread.holdsLock(this);
        if (run != null && !run.step.awaitQuiet(STEP_WAIT_NANOS)) {
            LOG.warn("{}: the job's fills in flight are still running after {} ms", disk.name(),
                    STEP_WAIT_NANOS / 1_000_000);
        }
    }

    /**
     * A stream's progress is the leaf's: done = local bytes of the whole disk, so it never goes back
     * across remounts and copy-on-read by the guest counts too. A commit counts from what is dirty now.
     */
    private void resetProgress() {
        assert Thread.holdsLock(this);
        if (kind == JobKind.COMMIT) {
            doneBytes = 0;
            totalBytes = disk.dirtyBytes();
        } else {
            doneBytes = disk.localBytes();
            totalBytes = disk.size();
        }
    }

    /** Publishes the status snapshot; caller holds the monitor (in-memory only). */
    private void publish() {
        assert Thread.holdsLock(this);
        snapshot.set(new JobSnapshot(kind, state, id, limit(), onError, error, commandError, doneBytes, totalBytes,
                rateNow, rateAtNanos, copyOf(unreadable), speed, pacing == null ? -1 : pacing.window()));
    }

    /** The rate to keep to now, bytes/s (0: none): the fixed limit, or auto's current rate. */
    private long limit() {
        assert Thread.holdsLock(this);
        return pacing != null ? pacing.rateLimit() : speed.bytesPerSecond();
    }

    /** Gives the run's stream step the current pacing (null clears it). Caller holds the monitor. */
    private void paceRun(Run run) {
        assert Thread.holdsLock(this);
        if (run.step instanceof StreamStep st) {
            st.pace(pacing);
        }
    }

    private LatencyController newPacing(JobSpeed s) {
        return pacingFor(s, disk.clusterSize());
    }

    /**
     * A controller for speed=auto: its target, fills of {@link LatencyController#MIN_AUTO_FILL} (or one cluster,
     * if larger) to a full step (1 MiB of whole clusters).
     */
    static LatencyController pacingFor(JobSpeed s, int clusterSize) {
        long max = Math.max(MAX_STEP_BYTES, clusterSize);
        long min = Math.min(max, Math.max(clusterSize, LatencyController.MIN_AUTO_FILL));
        return new LatencyController(TimeUnit.MICROSECONDS.toNanos(s.autoTargetMicros()), min, max);
    }

    private String speedText() {
        return speed.isAuto() ? speed.word() : speed.bytesPerSecond() == 0 ? "unlimited" : speed.bytesPerSecond() + " B/s";
    }

    private static List<long[]> copyOf(List<long[]> extents) {
        List<long[]> out = new ArrayList<>(extents.size());
        for (long[] e : extents) {
            out.add(e.clone());
        }
        return List.copyOf(out);
    }

    /** The fields a failed start or resume puts back. */
    private static final class Restore {
        private final JobKind kind;
        private final JobState state;
        private final long id;
        private final JobSpeed speed;
        private final LatencyController pacing;
        private final OnError onError;
        private final String error;
        private final List<long[]> unreadable;
        private final long doneBytes;
        private final long totalBytes;

        Restore(LeafJob j) {
            assert Thread.holdsLock(j);
            kind = j.kind;
            state = j.state;
            id = j.id;
            speed = j.speed;
            pacing = j.pacing;
            onError = j.onError;
            error = j.error;
            unreadable = copyOf(j.unreadable);
            doneBytes = j.doneBytes;
            totalBytes = j.totalBytes;
        }

        void apply(LeafJob j) {
            assert Thread.holdsLock(j);
            j.kind = kind;
            j.state = state;
            j.id = id;
            j.speed = speed;
            j.pacing = pacing;
            j.onError = onError;
            j.error = error;
            j.unreadable.clear();
            for (long[] e : unreadable) {
                j.unreadable.add(e.clone());
            }
            j.doneBytes = doneBytes;
            j.totalBytes = totalBytes;
        }
    }
}
