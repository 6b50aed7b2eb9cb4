package corfs.fuse;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.fuse.LibFuseSession.FuseBuf;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * libfuse 2's session loop run on a pool of named Java threads ({@code corfs-fuse-0..N-1}) instead of
 * {@code fuse_loop_mt}'s native threads.
 *
 * <p>Why: {@code fuse_loop_mt} starts a native worker whenever none is idle and retires it when more than
 * ten are, so under steady load it creates and ends pthreads all the time; jffi attaches every native thread
 * that enters a Java callback to the JVM and detaches it again after the callback until that thread has done
 * 1000 callbacks, so nearly every request paid a JVM attach (a new {@code java.lang.Thread}) and a detach.
 * Threads started here are Java threads: they are attached once, for good.
 *
 * <p>Each worker does what {@code fuse_do_work} of libfuse 2.9 does, without the pool resizing: reset its
 * own {@code struct fuse_buf} to its own buffer of {@code fuse_chan_bufsize} bytes, {@code
 * fuse_session_receive_buf}, continue on {@code -EINTR}, end on 0 (unmounted: the kernel answers ENODEV and
 * libfuse marks the session exited) or on an error (then it exits the session so the others end too),
 * otherwise {@code fuse_session_process_buf}, whose callbacks run on the worker; and it stops when the
 * session is exited.
 *
 * <h2>Pool size</h2>
 * Fixed ({@code -o threads=N}) or, by default, <em>elastic</em>: {@link #baseThreads} workers (one per CPU,
 * 2 to 16) and one more whenever every worker has been inside its current request for
 * {@link #STALL_NANOS} or longer, up to {@value #MAX_THREADS} workers that are not waiting on a backing. A
 * worker serving a request that may wait on the backing (a read or write that touches a cluster that is not
 * local; {@link #waitsOnBacking}) does not count toward that cap, only toward {@value #MAX_ALL_THREADS} in
 * all: so requests hung on a backing with no timeout (at most {@value #MAX_ALL_THREADS} - 1 of them) never
 * take the last worker a read of local clusters needs. Past that hard cap local reads queue behind them too.
 * A stalled pool means requests blocked on a slow
 * or hung backing: then requests for local data would wait in the kernel's queue, so a worker is added (one
 * per check, every {@link #WATCH_BUSY_NANOS}). A pool that is merely saturated by CPU work is not grown:
 * on 2 CPUs, 4 fio jobs of 4 KiB reads served by a pool that grew whenever all workers were busy (like
 * {@code fuse_loop_mt}) got 0.7x the IOPS and 4x the p99 of a single worker, which takes queued requests
 * back to back without sleeping between them. The stall check runs on one named thread,
 * {@code corfs-fuse-watch-N}, only in an elastic pool; it reads each worker's {@link Worker#busySince}
 * (a volatile the worker writes as it takes and as it finishes a request: the hot path's whole cost). A
 * worker above the base retires after finishing a request once the pool has not stalled for
 * {@link #RETIRE_AFTER_NANOS}: a load that stalls now and then keeps its extra workers instead of starting
 * and ending threads (the churn that made {@code fuse_loop_mt} slow here). The kernel wakes one reader per
 * request (an exclusive wait), so idle workers cost memory, not wake-ups.
 *
 * <p>Counters: {@link #alive} counts workers started and not ended (incremented before a start, decremented
 * by the worker as it leaves); {@link #busy} those between a received request and its reply. Growth and
 * retirement decisions are taken under this object's monitor, so the pool never exceeds its bounds. The
 * watcher touches only Java state (never libfuse after {@link #teardown}: it checks the state under the
 * monitor, which teardown holds) and ends when the loop is no longer running or no worker is alive.
 *
 * <p>Lifecycle, with its state in an atomic: {@link #setUp} (mounts; NEW) → {@link #start} (RUNNING) →
 * the workers end after an unmount or {@link #exit} → {@link #teardown} (TORN_DOWN) exactly once, and only
 * when every worker has ended: {@code fuse_teardown} destroys the session the workers use, so it is
 * skipped (and the fuse object leaked) while a worker may still be inside libfuse. A worker blocked in
 * {@code read(/dev/fuse)} wakes only when a request arrives or the connection ends (an unmount, or the
 * process exiting): {@link #exit} alone does not wake it.
 */
final class FuseLoop {
    private static final Logger LOG = LoggerFactory.getLogger(FuseLoop.class);
    static final String THREAD_PREFIX = "corfs-fuse-";
    static final int MIN_THREADS = 1;
    static final int MAX_THREADS = 64;
    /** The hard cap of an elastic pool, workers waiting on a backing included (see the class comment). */
    static final int MAX_ALL_THREADS = 256;
    /** The worker running on this thread, null on any other thread. */
    private static final ThreadLocal<Worker> CURRENT = new ThreadLocal<>();
    /** {@link #start}'s argument for the elastic pool sized from the CPUs (see the class comment). */
    static final int ELASTIC = 0;
    private static final AtomicInteger WATCHERS = new AtomicInteger();
    /**
     * An elastic pool sheds workers above its base only after it has not been saturated for this long
     * (30 s; the system property {@code corfs.fuse.retire_after_ms} changes it, for tests).
     */
    static final long RETIRE_AFTER_NANOS = TimeUnit.MILLISECONDS.toNanos(
            Math.max(1, Long.getLong("corfs.fuse.retire_after_ms", 30_000)));
    /** An elastic pool grows when every worker has been in its current request this long (2 ms). */
    static final long STALL_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    /** How often the watcher checks for a stall while some worker is busy (1 ms), and while none is (20 ms). */
    static final long WATCH_BUSY_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    static final long WATCH_IDLE_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
    private static final long IDLE = Long.MIN_VALUE;
    private static final int EINTR = 4;

    /**
     * One worker: its thread, when it took its current request ({@link #IDLE} between requests), and whether
     * that request may wait on a backing.
     */
    private static final class Worker {
        final Thread thread;
        volatile long busySince = IDLE;
        volatile boolean onBacking;

        Worker(Thread thread) {
            this.thread = thread;
        }
    }

    enum State { NEW, RUNNING, TORN_DOWN }

    private final LibFuseSession lib;
    private final Runtime runtime;
    /** Keeps the callbacks (closures referenced by the operations struct) reachable while libfuse may call them. */
    private final CorfsFilesystem fs;
    /** The operations struct handed to fuse_setup, kept for the same reason. */
    private final Pointer operations;
    private final Pointer fuse;
    private final Pointer mountPointC;
    private final Pointer session;
    private final Pointer channel;
    private final long bufferSize;
    private final AtomicReference<State> state = new AtomicReference<>(State.NEW);
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicInteger receiveError = new AtomicInteger();
    /** Guarded by this monitor. */
    private final List<Worker> workers = new ArrayList<>();
    private final AtomicInteger alive = new AtomicInteger();
    private final AtomicInteger busy = new AtomicInteger();
    /** nanoTime of the last stall the watcher saw (every worker in one request for {@link #STALL_NANOS}). */
    private volatile long lastStallNanos = System.nanoTime();
    private Thread watcher;
    private int baseWorkers;
    private int maxWorkers;
    private int maxAll;
    private int nextIndex;
    private boolean cleanupStarted;

    private FuseLoop(LibFuseSession lib, Runtime runtime, CorfsFilesystem fs, Pointer operations, Pointer fuse,
                     Pointer mountPointC) {
        this.lib = lib;
        this.runtime = runtime;
        this.fs = fs;
        this.operations = operations;
        this.fuse = fuse;
        this.mountPointC = mountPointC;
        this.session = lib.fuse_get_session(fuse);
        this.channel = lib.fuse_session_next_chan(session, null);
        this.bufferSize = lib.fuse_chan_bufsize(channel);
    }

    /**
     * {@code fuse_setup}: parses {@code argv} (program name, {@code -f}, mount point, options), mounts and
     * creates the session; nothing is served until {@link #start}. Throws when libfuse refuses (it has
     * printed its reason on stderr and unmounted again).
     */
    static FuseLoop setUp(LibFuseSession lib, CorfsFilesystem fs, String[] argv) throws CorfsException {
        corfs.StartupTrace.mark("lib-loaded");
        Pointer ops = fs.operations();
        Runtime runtime = Runtime.getRuntime(lib);
        Pointer mountPointOut = Memory.allocateDirect(runtime, runtime.addressSize(), true);
        Pointer multithreadedOut = Memory.allocateDirect(runtime, 4, true);
        corfs.StartupTrace.mark("fuse-setup");
        Pointer fuse = lib.fuse_setup(argv.length, argv, ops, fs.operationsSize(), mountPointOut, multithreadedOut,
                null);
        if (fuse == null) {
            throw new CorfsException(Reason.IO, "libfuse refused it (its reason, \"fuse: ...\", is on stderr)");
        }
        return new FuseLoop(lib, runtime, fs, ops, fuse, mountPointOut.getPointer(0));
    }

    /** {@link #setUp} up to {@code fuse_setup}, for {@link FuseMount#rehearse}: binds and allocates, calls nothing. */
    static void rehearse(LibFuseSession lib) {
        Runtime runtime = Runtime.getRuntime(lib);
        Memory.allocateDirect(runtime, runtime.addressSize(), true);
        Memory.allocateDirect(runtime, 4, true);
    }

    /** The base of an elastic pool on this machine: one worker per CPU, 2 to 16. */
    static int baseThreads() {
        return Math.max(2, Math.min(16, java.lang.Runtime.getRuntime().availableProcessors()));
    }

    /**
     * Starts {@code threads} workers, or with {@link #ELASTIC} an elastic pool of {@link #baseThreads} that
     * grows to {@value #MAX_THREADS}. Refuses a second start.
     */
    synchronized void start(int threads) {
        if (threads != ELASTIC && (threads < MIN_THREADS || threads > MAX_THREADS)) {
            throw new IllegalArgumentException("threads must be " + MIN_THREADS + ".." + MAX_THREADS + ", not "
                    + threads);
        }
        if (!state.compareAndSet(State.NEW, State.RUNNING)) {
            throw new IllegalStateException("the FUSE loop was already started (" + state.get() + ")");
        }
        if (lib.fuse_start_cleanup_thread(fuse) != 0) {
            throw new IllegalStateException("libfuse could not start its cleanup thread");
        }
        cleanupStarted = true;
        baseWorkers = threads == ELASTIC ? baseThreads() : threads;
        maxWorkers = threads == ELASTIC ? MAX_THREADS : threads;
        maxAll = threads == ELASTIC ? MAX_ALL_THREADS : threads;
        for (int i = 0; i < baseWorkers; i++) {
            addWorker();
        }
        if (maxWorkers > baseWorkers) {
            watcher = new Thread(this::watch, "corfs-fuse-watch-" + WATCHERS.getAndIncrement());
            watcher.setDaemon(true);
            watcher.start();
        }
        LOG.debug("started {} FUSE worker(s) (at most {}), {} byte buffers", baseWorkers, maxWorkers, bufferSize);
    }

    /** Starts one more worker. Caller holds this monitor. */
    private void addWorker() {
        assert Thread.holdsLock(this);
        Worker[] self = new Worker[1];
        Thread t = new Thread(() -> work(self[0]), THREAD_PREFIX + nextIndex++);
        self[0] = new Worker(t);
        // A worker stuck in read(/dev/fuse) after a failed unmount must not keep the JVM alive.
        t.setDaemon(true);
        workers.removeIf(w -> w.thread.getState() == Thread.State.TERMINATED);
        workers.add(self[0]);
        alive.incrementAndGet();
        t.start();
    }

    /**
     * Says whether the request the calling worker serves may wait on a backing (true before the engine is
     * called for a range that is not all local, false after). Does nothing on a thread that is not a worker.
     */
    static void waitsOnBacking(boolean waits) {
        Worker me = CURRENT.get();
        if (me != null) {
            me.onBacking = waits;
        }
    }

    /** The worker took a request. */
    private void received(Worker me) {
        me.busySince = System.nanoTime();
        busy.incrementAndGet();
    }

    /** The worker replied: true if it should retire (above the base, and no stall for a while). */
    private boolean replied(Worker me) {
        me.busySince = IDLE;
        me.onBacking = false;
        busy.decrementAndGet();
        if (alive.get() <= baseWorkers || System.nanoTime() - lastStallNanos < RETIRE_AFTER_NANOS) {
            return false;
        }
        synchronized (this) {
            if (alive.get() <= baseWorkers) {
                return false;
            }
            alive.decrementAndGet(); // counted out here, so two retiring workers never go below the base
            return true;
        }
    }

    /** The elastic pool's watcher: adds a worker whenever the pool stalls (see the class comment). */
    private void watch() {
        try {
            while (true) {
                long pause = busy.get() > 0 ? WATCH_BUSY_NANOS : WATCH_IDLE_NANOS;
                Thread.sleep(pause / 1_000_000, (int) (pause % 1_000_000));
                synchronized (this) {
                    if (state.get() != State.RUNNING || alive.get() == 0) {
                        return;
                    }
                    if (alive.get() < maxAll && alive.get() - onBacking() < maxWorkers && stalled(System.nanoTime())
                            && lib.fuse_session_exited(session) == 0) {
                        lastStallNanos = System.nanoTime();
                        addWorker();
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable t) {
            LOG.error("the FUSE pool's watcher failed; the pool no longer grows", t);
        }
        LOG.debug("{} ended", Thread.currentThread().getName());
    }

    /** Live workers serving a request that may wait on a backing. Holds the monitor. */
    private int onBacking() {
        assert Thread.holdsLock(this);
        int n = 0;
        for (Worker w : workers) {
            if (w.onBacking && w.thread.isAlive()) {
                n++;
            }
        }
        return n;
    }

    /** True if every live worker has been in its current request for {@link #STALL_NANOS}. Holds the monitor. */
    private boolean stalled(long now) {
        assert Thread.holdsLock(this);
        if (busy.get() < alive.get()) {
            return false;
        }
        int inRequest = 0;
        for (Worker w : workers) {
            if (!w.thread.isAlive()) {
                continue;
            }
            long since = w.busySince;
            if (since == IDLE || now - since < STALL_NANOS) {
                return false;
            }
            inRequest++;
        }
        return inRequest > 0;
    }

    private void work(Worker me) {
        CURRENT.set(me);
        boolean retired = false;
        Pointer buf = null;
        Pointer mem = null;
        Pointer chp = null;
        try {
            buf = Memory.allocateDirect(runtime, FuseBuf.SIZE, true);
            mem = Memory.allocateDirect(runtime, (int) bufferSize, false);
            chp = Memory.allocateDirect(runtime, runtime.addressSize(), true);
            long memAddress = mem.address();
            long channelAddress = channel.address();
            while (lib.fuse_session_exited(session) == 0) {
                FuseBuf.reset(buf, memAddress, bufferSize);
                chp.putAddress(0, channelAddress);
                int res = lib.fuse_session_receive_buf(session, buf, chp);
                if (res == -EINTR) {
                    continue;
                }
                if (res <= 0) {
                    if (res < 0) {
                        receiveError.compareAndSet(0, -res);
                        lib.fuse_session_exit(session);
                    }
                    break;
                }
                long ch = chp.getAddress(0);
                received(me);
                try {
                    lib.fuse_session_process_buf(session, buf, ch == channelAddress ? channel : chp.getPointer(0));
                } finally {
                    if (replied(me)) {
                        retired = true;
                    }
                }
                if (retired) {
                    LOG.debug("{} retired: the pool has not stalled for {} s", Thread.currentThread().getName(),
                            TimeUnit.NANOSECONDS.toSeconds(RETIRE_AFTER_NANOS));
                    break;
                }
            }
        } catch (Throwable t) {
            // Callbacks catch everything themselves; this is the loop's own failure (e.g. no memory for a buffer).
            failure.compareAndSet(null, t);
            LOG.error("FUSE worker {} failed; the others go on", Thread.currentThread().getName(), t);
        } finally {
            if (!retired) {
                alive.decrementAndGet();
            }
            // The native buffers must outlive the last native call that uses them.
            Reference.reachabilityFence(buf);
            Reference.reachabilityFence(mem);
            Reference.reachabilityFence(chp);
        }
        LOG.debug("{} ended", Thread.currentThread().getName());
    }

    State state() {
        return state.get();
    }

    /** True while at least one worker runs. */
    synchronized boolean isRunning() {
        for (Worker w : workers) {
            if (w.thread.isAlive()) {
                return true;
            }
        }
        return false;
    }

    /** Waits up to {@code millis} in all for every worker to end; true if they have. */
    boolean awaitExit(long millis) throws InterruptedException {
        // Not the workers of one moment: in an elastic pool those may all have retired while others,
        // started later, still serve the mount. Only the watcher starts workers after start(), and only
        // while one is alive and the session has not exited (workers end for good only once it has), so
        // once none is alive none can appear.
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(1, millis));
        while (true) {
            List<Thread> all = new ArrayList<>();
            synchronized (this) {
                for (Worker w : workers) {
                    all.add(w.thread);
                }
            }
            boolean anyAlive = false;
            for (Thread t : all) {
                if (t.isAlive()) {
                    anyAlive = true;
                    long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                    if (left <= 0 || !join(t, left)) {
                        return false;
                    }
                }
            }
            if (!anyAlive) {
                return true;
            }
        }
    }

    private static boolean join(Thread t, long millis) throws InterruptedException {
        t.join(millis);
        return !t.isAlive();
    }

    /** Marks the session exited: each worker ends after its current request or, if blocked, its next one. */
    void exit() {
        if (state.get() != State.TORN_DOWN) {
            lib.fuse_session_exit(session);
        }
    }

    /** The first failure of a worker, or a receive error as an errno message; null if none. */
    String failure() {
        Throwable t = failure.get();
        if (t != null) {
            return t.toString();
        }
        int e = receiveError.get();
        return e != 0 ? "reading /dev/fuse: errno " + e : null;
    }

    /**
     * {@code fuse_teardown} (unmounts if still mounted, calls the {@code destroy} operation, frees the
     * session) exactly once, and only once no worker runs. Returns false, doing nothing, if a worker still
     * runs or it was already done.
     */
    synchronized boolean teardown() {
        if (isRunning()) {
            LOG.warn("FUSE workers still running; not tearing the libfuse session down");
            return false;
        }
        State s = state.get();
        if (s == State.TORN_DOWN || !state.compareAndSet(s, State.TORN_DOWN)) {
            return false;
        }
        if (cleanupStarted) {
            lib.fuse_stop_cleanup_thread(fuse);
        }
        lib.fuse_teardown(fuse, mountPointC);
        Reference.reachabilityFence(fs);
        Reference.reachabilityFence(operations);
        return true;
    }

    /** Workers running now. */
    int threads() {
        return alive.get();
    }
}
