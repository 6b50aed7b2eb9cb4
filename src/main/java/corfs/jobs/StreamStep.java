package corfs.jobs;

import corfs.engine.BackingReadException;
import corfs.engine.FetchPurpose;
import corfs.engine.LeafDisk;
import corfs.image.ClusterBitmap;
import corfs.io.FileOps;
import corfs.vocabulary.OnError;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A stream run: fills every cluster that is not local, keeping up to {@link #maxInFlight} fills in flight
 * so that a backing with a round trip R is not read one chunk per R. A hole of the backing becomes a hole
 * of the leaf in one fill, however long (1 GiB at most), without a read. With on_error=skip a failing
 * range is isolated cluster by cluster: the readable ones are filled, the others reported to the
 * {@link Skipped} sink and not revisited by this run. Other read errors are thrown for the job's
 * {@link ErrorPolicy}.
 *
 * <h2>Threads</h2>
 * The filler thread is the scheduler: {@link #step} (filler only) collects the fills that completed,
 * issues new ones, first from the priority queue ({@link #prioritize}), then in disk order from
 * {@link #cursor}, up to {@link #maxInFlight} (or the window of its {@link #pace pacing}: none in the first
 * half of a quiet window, a step that then returns 0 and is never read as finished), and waits (at most
 * {@value #STEP_WAIT_MS} ms) for one to complete when none has. The fills run on this run's own workers,
 * {@code corfs-stream-<leaf>-N} (daemon, idle I/O class, at most {@link #maxInFlight}: {@value #COPY_IN_FLIGHT}
 * when the disk copies inside the kernel, fixed for the run; retired when idle),
 * through {@link LeafDisk#fill}, whose per-cluster locks make a guest write racing a fill win. Workers are
 * never interrupted (NIO closes a channel when its thread is interrupted): {@link #awaitQuiet} and
 * {@link #close} wait for them with a bound.
 *
 * <h2>Priority ranges and pacing (any thread hands them over)</h2>
 * {@link #prioritize} (a command thread, under the job's command lock) puts cluster ranges at the head of
 * {@link #priority}, a deque guarded by its own monitor (innermost, in-memory only); the filler drains it
 * before its cursor, range by range in order, skipping clusters that are local or in flight, and leaves
 * the cursor where it was, so the stream then goes on from there. The queue holds at most
 * {@value #MAX_PRIORITY_QUEUE} ranges: beyond, the oldest are dropped (the cursor still gets to them).
 * {@link #pace} (a command thread) sets or clears the {@link LatencyController} of speed=auto, in a
 * volatile field: the filler reads its window before issuing and gives it one latency sample per
 * completed data fill of one of its fill sizes (every cluster missing; not holes, not priority fills, not a
 * fill cut short by the backing's extent or the disk's end): the time {@link LeafDisk#fill} took, measured on
 * the worker, with its size (the controller sizes the fills; the claim's step is that size).
 *
 * <h2>Invariants</h2>
 * <ul>
 * <li>The ranges in {@link #inFlight} never overlap, and a cluster in one is never issued again until its
 * fill completed: the scan skips them.</li>
 * <li>Progress counts only completed fills: {@link #step} returns the bytes of the fills it collected
 * (holes included), which is what the speed limit charges; the bytes in flight are at most
 * {@code maxInFlight} fills of {@code maxClusters}, so the limit holds over time within that burst.</li>
 * <li>A fill that failed (not skipped) is thrown by the step that collects it, and the cursor goes back
 * to its first cluster, so a retry issues it again; fills still in flight go on and are collected by the
 * next step (retry) or waited for by {@link #close} (stop).</li>
 * <li>{@link JobStep#FINISHED} only when nothing is in flight and no cluster is left to issue (every
 * cluster local, or skipped), so {@link #complete()}'s flush covers every fill.</li>
 * <li>Every completion is queued before its worker counts itself out of {@link #running}, so once
 * {@link #awaitQuiet} returns true the queue holds every result.</li>
 * </ul>
 */
final class StreamStep implements JobStep {
    private static final Logger LOG = LoggerFactory.getLogger(StreamStep.class);
    /** Where skipped clusters go (the job's unreadable list and ledger). Called with no monitor held. */
    interface Skipped {
        void unreadable(long offset, long length, String message);
    }

    /** The most fills in flight, whatever the backing allows. */
    static final int MAX_IN_FLIGHT = 8;
    /**
     * Fills in flight when the backing copies into the leaf inside the kernel ({@link LeafDisk#copiesInKernel}):
     * a local file's read-ahead keeps the disk busy, and more copies at once only contend for the leaf's
     * inode lock (buffered writers of one file serialise, spinning).
     */
    static final int COPY_IN_FLIGHT = 4;
    private static final long MAX_HOLE_STEP = 1L << 30;
    private static final long STEP_WAIT_MS = 500;
    private static final long CLOSE_WAIT_MS = 30_000;
    /** The most priority ranges queued at once (each prioritize command names 64 at most). */
    static final int MAX_PRIORITY_QUEUE = 1024;
    private static final AtomicInteger POOLS = new AtomicInteger();

    /**
     * One fill's outcome: its range, the missing bytes it made local, its failure, the clusters it skipped,
     * how long {@link LeafDisk#fill} took and whether that is a latency sample for the pacing.
     */
    private record Done(long first, long last, long bytes, Throwable failure, List<Skip> skips, long nanos,
                        boolean sample) {
    }

    private record Skip(long offset, long length, String message) {
    }

    private final LeafDisk disk;
    private final OnError onError;
    private final Skipped skipped;
    private final int maxInFlight;
    private final ThreadPoolExecutor workers;
    private final LinkedBlockingQueue<Done> completed = new LinkedBlockingQueue<>();
    /** Fills submitted and not yet returned; guarded by its own monitor for {@link #awaitQuiet}. */
    private final AtomicInteger running = new AtomicInteger();

    // ---- filler thread only
    /** first cluster to first..last of every fill issued and not yet collected. */
    private final TreeMap<Long, Long> inFlight = new TreeMap<>();
    private long cursor;
    /** Clusters [cursor, dataUntil) are data according to the backing's last answer. */
    private long dataUntil;
    private boolean skippedAny;
    /** Set by whoever closes the run (the filler, or the command that retired it). */
    private volatile boolean closed;
    /** speed=auto's controller, or null for a fixed speed; see the class comment. */
    private volatile LatencyController pacing;
    /** Cluster ranges {first, last} to issue before the cursor, head first; guarded by itself. */
    private final ArrayDeque<long[]> priority = new ArrayDeque<>();

    StreamStep(LeafDisk disk, OnError onError, Skipped skipped, FileOps fileOps) {
        this.disk = disk;
        this.onError = onError;
        this.skipped = skipped;
        this.maxInFlight = disk.copiesInKernel() ? Math.min(COPY_IN_FLIGHT, inFlightFor(disk)) : inFlightFor(disk);
        String prefix = "corfs-stream-" + disk.name() + "-" + POOLS.incrementAndGet() + "-";
        AtomicInteger threads = new AtomicInteger();
        // Never more tasks than maxInFlight (the scheduler counts them), so the queue never rejects.
        this.workers = new ThreadPoolExecutor(maxInFlight, maxInFlight, 5, TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(maxInFlight), r -> {
                    Thread t = new Thread(() -> {
                        fileOps.setCurrentThreadIdleIoPriority();
                        r.run();
                    }, prefix + threads.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                }, new ThreadPoolExecutor.AbortPolicy());
        this.workers.allowCoreThreadTimeOut(true);
    }

    /** Fills in flight for this disk's backing: what it says it can take, 1 to {@link #MAX_IN_FLIGHT}. */
    static int inFlightFor(LeafDisk disk) {
        return disk.backing() == null ? 1 : Math.max(1, Math.min(MAX_IN_FLIGHT, disk.backing().maxInFlight()));
    }

    int maxInFlight() {
        return maxInFlight;
    }

    /** Sets (or, with null, clears) the pacing of speed=auto. Any thread. */
    void pace(LatencyController controller) {
        pacing = controller;
    }

    /**
     * Queues cluster ranges {first, last} (valid, first &lt;= last &lt; clusters) to be issued next, in
     * this order and before any queued earlier. Any thread; in-memory only.
     */
    void prioritize(List<long[]> clusterRanges) {
        synchronized (priority) {
            for (int i = clusterRanges.size() - 1; i >= 0; i--) {
                long[] r = clusterRanges.get(i);
                assert r[0] >= 0 && r[0] <= r[1] && r[1] < disk.clusters() : r[0] + ".." + r[1];
                priority.addFirst(new long[] {r[0], r[1]});
            }
            while (priority.size() > MAX_PRIORITY_QUEUE) {
                priority.removeLast();
            }
        }
    }

    /** The priority ranges not issued yet (tests, and a resume that needs a new run). */
    List<long[]> pendingPriority() {
        synchronized (priority) {
            List<long[]> out = new ArrayList<>(priority.size());
            for (long[] r : priority) {
                out.add(r.clone());
            }
            return out;
        }
    }

    /**
     * Fills in flight allowed at wall-clock time {@code wallMillis}: the backing's limit, or less under
     * speed=auto, none in the first half of its quiet window (see {@link LatencyController}).
     */
    private int window(long wallMillis) {
        LatencyController p = pacing;
        return p == null ? maxInFlight : Math.min(maxInFlight, p.inFlightAt(wallMillis));
    }

    /** The longest a step waits out a quiet window of speed=auto (the filler serves other jobs meanwhile). */
    private static final long PAUSE_WAIT_MS = 50;
    /** The wall clock the quiet windows follow (ms since the epoch); tests set another. */
    private volatile java.util.function.LongSupplier wallClock = System::currentTimeMillis;

    /** For tests: the wall clock that places speed=auto's quiet windows. */
    void wallClock(java.util.function.LongSupplier clock) {
        wallClock = clock;
    }

    /** Nothing in flight in a quiet window's first half: waits up to {@link #PAUSE_WAIT_MS} of what is left of it. */
    private void waitOutPause(long wallMillis) {
        LatencyController p = pacing;
        long left = p == null ? 0 : p.pauseLeftMillis(wallMillis);
        try {
            Thread.sleep(Math.max(1, Math.min(left, PAUSE_WAIT_MS)));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public long step(int maxClusters) throws IOException {
        long bytes = collect(0);
        long wall = wallClock.getAsLong();
        int window = window(wall); // one window for the whole step: 0 is never read as nothing left to do
        if (window == 0) { // a quiet window of speed=auto: the fills in flight drain, nothing new is issued
            if (inFlight.isEmpty()) {
                waitOutPause(wall);
                return bytes;
            }
            return bytes > 0 ? bytes : collect(STEP_WAIT_MS);
        }
        issue(maxClusters, window);
        if (inFlight.isEmpty()) {
            if (!skippedAny && cursor > 0 && disk.image().local().nextClear(0, disk.clusters()) < disk.clusters()) {
                cursor = 0; // skipped extents are not revisited; anything else missing is, once
                dataUntil = 0;
                issue(maxClusters, window);
            }
            if (inFlight.isEmpty()) {
                return bytes > 0 ? bytes : FINISHED;
            }
        }
        if (bytes == 0) {
            bytes = collect(STEP_WAIT_MS);
        }
        return bytes;
    }

    /**
     * Takes the completed fills off the queue, waiting up to {@code waitMs} for the first; reports their
     * skipped clusters; throws the first failure after rewinding the cursor to it. Returns their bytes.
     */
    private long collect(long waitMs) throws IOException {
        List<Done> batch = new ArrayList<>();
        if (waitMs > 0) {
            Done first;
            try {
                first = completed.poll(waitMs, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return 0;
            }
            if (first == null) {
                return 0;
            }
            batch.add(first);
        }
        completed.drainTo(batch);
        long bytes = 0;
        Done failed = null;
        LatencyController p = pacing;
        long now = System.nanoTime();
        for (Done d : batch) {
            inFlight.remove(d.first());
            if (p != null && d.sample() && d.failure() == null && d.skips().isEmpty()
                    && d.bytes() == (d.last() - d.first() + 1) * disk.clusterSize()) { // every cluster missing
                if (p.sample(now, d.nanos(), d.bytes()) && LOG.isDebugEnabled()) {
                    LOG.debug("{}: auto sample {} KiB in {} us; {}", disk.name(), d.bytes() >> 10, d.nanos() / 1000, p);
                }
            } else if (p != null && (d.failure() != null || !d.skips().isEmpty())) {
                p.lost(now); // a read that failed or timed out is the strongest sign of a queue: back off
            }
            for (Skip s : d.skips()) {
                skippedAny = true;
                skipped.unreadable(s.offset(), s.length(), s.message());
            }
            if (d.failure() == null) {
                bytes += d.bytes();
            } else if (failed == null || d.first() < failed.first()) {
                failed = d;
            }
        }
        if (failed != null) {
            cursor = Math.min(cursor, failed.first());
            dataUntil = 0;
            throwFailure(failed.failure());
        }
        return bytes;
    }

    private static void throwFailure(Throwable t) throws IOException {
        if (t instanceof IOException e) {
            throw e;
        }
        if (t instanceof RuntimeException e) {
            throw e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IOException(t);
    }

    /**
     * Issues fills, the priority ranges first, then in disk order from the cursor, until the window is in
     * flight or none is left.
     */
    private void issue(int maxClusters, int window) {
        ClusterBitmap local = disk.image().local();
        long clusters = disk.clusters();
        int cs = disk.clusterSize();
        issuePriority(maxClusters, window);
        while (inFlight.size() < window && !closed) {
            long first = local.nextClear(cursor, clusters);
            if (first >= clusters) {
                cursor = clusters;
                return;
            }
            Map.Entry<Long, Long> covering = inFlight.floorEntry(first);
            if (covering != null && covering.getValue() >= first) {
                cursor = covering.getValue() + 1;
                continue;
            }
            long last = Math.min(clusters - 1, first + Math.max(1, maxClusters) - 1);
            if (first >= dataUntil) {
                LeafDisk.BackingExtent extent = disk.backingExtent(first);
                if (extent.zeros()) {
                    last = Math.min(extent.end() - 1, first + Math.max(1, MAX_HOLE_STEP / cs) - 1);
                    dataUntil = 0;
                } else {
                    dataUntil = extent.end();
                }
            }
            if (first < dataUntil) {
                last = Math.min(last, dataUntil - 1); // a fill of data stops where the backing's data does
            }
            Long next = inFlight.higherKey(first);
            if (next != null) {
                last = Math.min(last, next - 1);
            }
            submit(first, last, first < dataUntil);
            cursor = last + 1;
        }
    }

    /** Issues the priority ranges' clusters that are neither local nor in flight, head first. */
    private void issuePriority(int maxClusters, int window) {
        ClusterBitmap local = disk.image().local();
        while (inFlight.size() < window && !closed) {
            long first;
            long last;
            synchronized (priority) {
                long[] r = priority.peekFirst();
                if (r == null) {
                    return;
                }
                first = local.nextClear(r[0], r[1] + 1);
                Map.Entry<Long, Long> covering = first > r[1] ? null : inFlight.floorEntry(first);
                if (covering != null && covering.getValue() >= first) {
                    r[0] = covering.getValue() + 1; // in flight already: on past it
                    if (r[0] > r[1]) {
                        priority.removeFirst();
                    }
                    continue;
                }
                if (first > r[1]) {
                    priority.removeFirst();
                    continue;
                }
                last = Math.min(r[1], first + Math.max(1, maxClusters) - 1);
                last = Math.min(last, local.nextSet(first, last + 1) - 1);
                Long next = inFlight.higherKey(first);
                if (next != null) {
                    last = Math.min(last, next - 1);
                }
                r[0] = last + 1;
                if (r[0] > r[1]) {
                    priority.removeFirst();
                }
            }
            submit(first, last, false);
        }
    }

    private void submit(long first, long last, boolean data) {
        ClusterBitmap local = disk.image().local();
        int cs = disk.clusterSize();
        long clusters = disk.clusters();
        long missing = (last - first + 1) * (long) cs - local.count(first, last + 1) * (long) cs;
        if (last == clusters - 1 && !local.get(last)) {
            missing -= clusters * cs - disk.size();
        }
        long bytes = missing;
        inFlight.put(first, last);
        running.incrementAndGet();
        try {
            workers.execute(() -> fill(first, last, bytes, data));
        } catch (RuntimeException e) { // rejected: the pool is shut down (cannot happen while not closed)
            inFlight.remove(first);
            quietOne();
            throw e;
        }
    }

    /**
     * A worker's fill of [first, last]; its outcome goes to the queue, whatever happens. {@code data}: the
     * backing said data for the whole range, so the fill's time is a latency sample.
     */
    private void fill(long first, long last, long bytes, boolean data) {
        Done done;
        try {
            Filler.yieldToGuest(disk);
            long started = System.nanoTime();
            try {
                disk.fill(first, last, FetchPurpose.STREAM);
                done = new Done(first, last, bytes, null, List.of(), System.nanoTime() - started, data);
            } catch (BackingReadException e) {
                if (onError != OnError.SKIP) {
                    throw e;
                }
                done = new Done(first, last, Math.min(disk.size(), (last + 1) * disk.clusterSize())
                        - first * disk.clusterSize(), null, isolate(first, last), 0, false);
            }
        } catch (Throwable t) {
            done = new Done(first, last, 0, t, List.of(), 0, false);
        }
        completed.add(done);
        quietOne();
    }

    /** Fills the readable clusters of [first, last] one by one and returns the others. */
    private List<Skip> isolate(long first, long last) throws IOException {
        int cs = disk.clusterSize();
        List<Skip> skips = new ArrayList<>();
        for (long c = first; c <= last; c++) {
            try {
                disk.fill(c, c, FetchPurpose.STREAM);
            } catch (BackingReadException single) {
                long off = c * cs;
                Skip prev = skips.isEmpty() ? null : skips.get(skips.size() - 1);
                long len = Math.min(disk.size(), off + cs) - off;
                if (prev != null && prev.offset() + prev.length() == off) {
                    skips.set(skips.size() - 1, new Skip(prev.offset(), prev.length() + len, single.getMessage()));
                } else {
                    skips.add(new Skip(off, len, single.getMessage()));
                }
            }
        }
        return skips;
    }

    private void quietOne() {
        if (running.decrementAndGet() == 0) {
            synchronized (running) {
                running.notifyAll();
            }
        }
    }

    /**
     * Waits, at most {@code timeoutNanos}, until no fill of this run is running (any thread; after the
     * filler stopped stepping it, so nothing new is issued). Returns false on timeout.
     */
    @Override
    public boolean awaitQuiet(long timeoutNanos) {
        long deadline = System.nanoTime() + timeoutNanos;
        synchronized (running) {
            while (running.get() > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(running, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
        }
        return true;
    }

    @Override
    public void complete() throws IOException {
        disk.flush();
    }

    /** Stops issuing, waits (bounded) for the fills in flight and retires the workers. Idempotent. */
    @Override
    public boolean close() {
        if (closed) {
            return false;
        }
        closed = true;
        workers.shutdown();
        if (!awaitQuiet(TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MS))) {
            LOG.warn("{}: {} stream fill(s) still running after {} ms; they finish on their own", disk.name(),
                    running.get(), CLOSE_WAIT_MS);
        }
        return false;
    }
}
