package corfs.jobs;

import corfs.engine.GuestReadListener;
import corfs.engine.LeafDisk;
import corfs.image.AccessProfile;
import corfs.image.ClusterBitmap;
import corfs.io.FileOps;
import corfs.vocabulary.PrefetchState;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * One prefetch of an access profile over one leaf: fetches the profile's extents in profile order through
 * {@link LeafDisk#fill} (the per-cluster locks and rules of copy-on-read: a guest write is never
 * overwritten, a local cluster is never fetched again), following the guest so that it stays a window
 * ahead of the boot ({@link PrefetchWindow}) instead of racing to the end or falling behind.
 *
 * <h2>What is issued next</h2>
 * The profile is cut into chunks ({@link PrefetchPlan}); each is issued once. At start every chunk already
 * local is counted done without a backing read (a resumed prefetch starts where the last mount left it).
 * The next chunk is the first one not yet issued at or after the guest's entry whose profile bytes before
 * it are under the window's limit; when there is none ahead, the first one left behind the guest (entries
 * the boot skipped over). A chunk found local when it comes up is counted done without a read.
 *
 * <h2>A guest miss goes first</h2>
 * At most K = min(8, the backing's {@code maxInFlight()}) fills are in flight, each at most one fill chunk
 * (1 MiB), on the idle I/O class. While guest copy-on-read fills are in flight
 * ({@link LeafDisk#coldReadsInFlight}) the limit is K minus their number, at least one: a guest miss then
 * queues behind at most the fills already issued, none is added while the guest waits, and the prefetch
 * still moves (the guest's misses are what it is there to prevent, and one fill keeps the boot's next
 * clusters coming). Fills never yield otherwise: local guest reads do not slow the prefetch.
 *
 * <h2>Threads</h2>
 * K named daemon workers, {@code corfs-prefetch-<leaf>-N}, started by {@link #start}, each claiming the
 * next chunk under this object's monitor (held only to choose, never across I/O) and filling it. A worker
 * with nothing it may issue waits on the monitor (at most {@value #WAIT_MS} ms; a guest read that moves
 * the position or a completed fill wakes it). Guest reads reach {@link #guestRead} on FUSE threads: it
 * finds the entries a read touches by binary search and never waits for the monitor's holders doing I/O
 * (there are none). Workers are never interrupted (NIO closes a channel when its thread is interrupted).
 *
 * <h2>End</h2>
 * The first failed fill stops the run (no more chunks are issued; those in flight finish). The last worker
 * out removes the guest-read listener and reports the outcome once to {@link Ended}: COMPLETED when every
 * chunk was done, FAILED with the first failure. {@link #close} (unmount, a new profile, cancel) stops the
 * run without reporting: workers finish their fill and exit, waited for with a bound. Idempotent.
 */
final class PrefetchRun implements GuestReadListener, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(PrefetchRun.class);
    static final long WAIT_MS = 100;
    private static final long COLD_WAIT_MS = 10;
    private static final long CLOSE_WAIT_MS = 30_000;

    /** Told once how a run ended by itself (not when closed). Called on a worker, or on the starting thread. */
    interface Ended {
        void ended(PrefetchRun run, PrefetchState outcome, Throwable failure);
    }

    private final LeafDisk disk;
    private final AccessProfile profile;
    private final PrefetchPlan plan;
    private final PrefetchWindow window;
    private final ClusterBitmap local;
    private final FileOps fileOps;
    private final Ended ended;
    private final LongSupplier nanoClock;
    private final int maxInFlight;
    private final AtomicLong done = new AtomicLong();
    private final AtomicInteger fills = new AtomicInteger();
    private final List<Thread> workers = new ArrayList<>();

    // ---- guarded by this
    private final BitSet issued;
    private int left;
    private int inFlight;
    private int live;
    private Throwable failure;
    private boolean started;
    private boolean closed;
    private boolean reported;
    /** {@link #done} when the window last grew (see {@link #claim}). */
    private long doneAtGrowth;

    PrefetchRun(LeafDisk disk, AccessProfile profile, FileOps fileOps, Ended ended, LongSupplier nanoClock) {
        this.disk = disk;
        this.profile = profile;
        this.plan = PrefetchPlan.of(profile, disk.clusterSize(), Math.max(1, (1 << 20) >>> Integer.numberOfTrailingZeros(
                disk.clusterSize())));
        this.window = new PrefetchWindow(plan, nanoClock.getAsLong());
        this.local = disk.image().local();
        this.fileOps = fileOps;
        this.ended = ended;
        this.nanoClock = nanoClock;
        this.maxInFlight = StreamStep.inFlightFor(disk);
        this.issued = new BitSet(plan.chunks);
    }

    /** Bytes of the profile's extents known local: found local, or filled by this run. */
    long doneBytes() {
        return done.get();
    }

    long totalBytes() {
        return plan.totalBytes;
    }

    /** Fills this run handed to the disk (not counting chunks found local): what it read from the backing. */
    int fills() {
        return fills.get();
    }

    AccessProfile profile() {
        return profile;
    }

    PrefetchWindow window() {
        return window;
    }

    int maxInFlight() {
        return maxInFlight;
    }

    /**
     * Counts what is local, follows the guest and starts the workers; with nothing left to fetch, reports
     * COMPLETED at once on this thread. Once only.
     */
    void start() {
        synchronized (this) {
            if (started || closed) {
                throw new IllegalStateException("prefetch run of " + disk.name() + " already started or closed");
            }
            started = true;
            long known = 0;
            for (int k = 0; k < plan.chunks; k++) {
                if (local.allSet(plan.chunkFirst[k], plan.chunkLast[k] + 1)) {
                    issued.set(k);
                    known += plan.chunkBytes[k];
                }
            }
            done.set(known);
            left = plan.chunks - issued.cardinality();
            if (left > 0) {
                if (!disk.guestReads(null, this)) {
                    LOG.warn("{}: another prefetch follows the guest; this one runs without following it", disk.name());
                }
                live = maxInFlight;
                for (int i = 1; i <= maxInFlight; i++) {
                    Thread t = new Thread(this::work, "corfs-prefetch-" + disk.name() + "-" + i);
                    t.setDaemon(true);
                    workers.add(t);
                }
            }
        }
        if (workers.isEmpty()) {
            report(PrefetchState.COMPLETED, null);
            return;
        }
        LOG.info("{}: prefetch of {} profile bytes started, {} already local, {} fills in flight at most",
                disk.name(), plan.totalBytes, done.get(), maxInFlight);
        for (Thread t : workers) {
            t.start();
        }
    }

    // ------------------------------------------------------------------ the guest (FUSE threads)

    /** Follows the guest; true (no read-ahead for this read) when the profile names a cluster of it. */
    @Override
    public boolean guestRead(long first, long last) {
        long start = first << plan.clusterShift;
        long end = (last + 1) << plan.clusterShift;
        int from = plan.firstOverlap(start, end);
        if (from < 0) {
            return false;
        }
        if (window.guestRead(from, start, end, local, nanoClock.getAsLong())) {
            synchronized (this) {
                notifyAll();
            }
        }
        return true;
    }

    // ------------------------------------------------------------------ workers

    private void work() {
        fileOps.setCurrentThreadIdleIoPriority();
        try {
            while (true) {
                int k = claim();
                if (k < 0) {
                    return;
                }
                Throwable failed = null;
                try {
                    fills.incrementAndGet();
                    disk.fill(plan.chunkFirst[k], plan.chunkLast[k], corfs.engine.FetchPurpose.PREFETCH);
                } catch (Throwable t) {
                    failed = t;
                }
                finish(k, failed);
            }
        } finally {
            leave();
        }
    }

    /** The next chunk to fill, or -1 when this worker should exit (closed, failed, nothing left to issue). */
    private synchronized int claim() {
        while (!closed && failure == null && left > 0) {
            int cold = disk.coldReadsInFlight();
            int cap = Math.max(1, maxInFlight - cold);
            if (inFlight < cap) {
                int k = next();
                if (k >= 0) {
                    issued.set(k);
                    left--;
                    if (local.allSet(plan.chunkFirst[k], plan.chunkLast[k] + 1)) {
                        done.addAndGet(plan.chunkBytes[k]); // local already: no backing read
                        continue;
                    }
                    inFlight++;
                    return k;
                }
                // Held at the window's limit while the guest is idle: grow it once per completed fill (or at
                // once when nothing is in flight, so a window that admitted nothing new never stalls the run).
                // A guest busy off the profile (no miss in flight, no first touch for a second) grows it too.
                if ((inFlight == 0 || done.get() > doneAtGrowth)
                        && (!disk.guestActive(PrefetchWindow.IDLE_GROW_NANOS) ? window.growIfIdle(nanoClock.getAsLong())
                                : cold == 0 && window.growIfUntouched(nanoClock.getAsLong(),
                                        PrefetchWindow.OFF_PATH_GROW_NANOS))) {
                    doneAtGrowth = done.get();
                    continue;
                }
            }
            try {
                wait(cold > 0 ? COLD_WAIT_MS : WAIT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -1;
            }
        }
        return -1;
    }

    /** Chooses under the monitor: ahead of the guest within the window first, then what the guest skipped. */
    private int next() {
        int g = window.guestChunk();
        int k = issued.nextClearBit(g);
        if (k < plan.chunks && plan.chunkBefore[k] < window.limit()) {
            return k;
        }
        k = issued.nextClearBit(0);
        return k < g ? k : -1;
    }

    private synchronized void finish(int k, Throwable failed) {
        inFlight--;
        if (failed == null) {
            done.addAndGet(plan.chunkBytes[k]);
        } else if (failure == null) {
            failure = failed;
            LOG.warn("{}: prefetch of clusters [{}, {}] failed: {}", disk.name(), plan.chunkFirst[k], plan.chunkLast[k],
                    failed.toString());
        }
        notifyAll();
    }

    /** A worker exits; the last one out ends the run (unless it was closed). */
    private void leave() {
        PrefetchState outcome;
        Throwable cause;
        synchronized (this) {
            if (--live > 0) {
                notifyAll();
                return;
            }
            disk.guestReads(this, null);
            if (closed) {
                return;
            }
            cause = failure;
            outcome = failure != null ? PrefetchState.FAILED : PrefetchState.COMPLETED;
        }
        report(outcome, cause);
    }

    private void report(PrefetchState outcome, Throwable cause) {
        synchronized (this) {
            if (reported) {
                return;
            }
            reported = true;
        }
        LOG.info("{}: prefetch {} ({} of {} profile bytes local, {} fills, {})", disk.name(), outcome.word(),
                done.get(), plan.totalBytes, fills.get(), window);
        ended.ended(this, outcome, cause);
    }

    /**
     * Stops issuing and waits (at most {@value #CLOSE_WAIT_MS} ms) for the fills in flight; reports
     * nothing. Never from a worker of this run. Idempotent.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MS);
        for (Thread t : workers) {
            long left = deadline - System.nanoTime();
            try {
                if (left > 0) {
                    t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (t.isAlive()) {
                LOG.warn("{}: prefetch worker {} still filling after {} ms; it finishes on its own", disk.name(),
                        t.getName(), CLOSE_WAIT_MS);
            }
        }
        disk.guestReads(this, null);
    }
}
