package corfs.backing;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A deadline on every call into a backing, so a backing that hangs (an NFS server gone, a stopped FUSE
 * daemon under it, {@code lseek(SEEK_DATA)} waiting for either) does not hang the filesystem: the caller
 * gets IO after the timeout, local clusters keep being served, and calls work again once the backing
 * answers. Covers reads, in-kernel copies ({@link #copyTo}), {@link #allocation}, {@link #identity}, {@link #openWriter}, the writer's
 * calls and {@link #close}.
 *
 * <h2>Invariants</h2>
 * <ul>
 * <li>Each call runs on a worker thread named {@code corfs-backing-N}; the caller waits for it at most
 * the timeout (queueing included) and then abandons it. An abandoned call is never interrupted (NIO
 * closes a channel when a thread blocked on it is interrupted): it finishes whenever the backing
 * answers, and its result is dropped (a writer opened too late is closed).</li>
 * <li>At most {@code workers} calls run at once (a permit is held until the call really returns, not
 * until its caller gives up). When every permit is held by an abandoned call, a new call is refused at
 * once instead of waiting out another timeout.</li>
 * <li>A read that times out may still write into the caller's buffer later
 * ({@link BackingTimeoutException}): the caller drops that buffer. A copy that times out may still write
 * into its target until the exception's {@link BackingTimeoutException#stillWriting()} completes, which it does
 * when the worker returns. Writes are copied first, so an
 * abandoned write never reads memory its caller reuses; after any writer call times out the writer
 * refuses everything but {@code close}, and the commit fails (its dirty bits stay set).</li>
 * </ul>
 */
public final class TimeoutBacking extends ForwardingBacking {
    private static final Logger LOG = LoggerFactory.getLogger(TimeoutBacking.class);
    /** Default worker count: above the FUSE thread default (16) plus the filler and prefetch threads. */
    public static final int DEFAULT_WORKERS = 32;
    private static final AtomicInteger THREADS = new AtomicInteger();

    private final long timeoutMillis;
    private final int workerCount;
    private final ThreadPoolExecutor workers;
    private final Semaphore permits;
    /** Calls whose caller gave up while they still ran in the backing. */
    private final AtomicInteger abandoned = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    public TimeoutBacking(Backing inner, long timeoutMillis) {
        this(inner, timeoutMillis, DEFAULT_WORKERS);
    }

    public TimeoutBacking(Backing inner, long timeoutMillis, int workerCount) {
        super(inner);
        if (timeoutMillis <= 0 || workerCount <= 0) {
            throw new IllegalArgumentException("timeout " + timeoutMillis + " ms, " + workerCount + " workers");
        }
        this.timeoutMillis = timeoutMillis;
        this.workerCount = workerCount;
        this.permits = new Semaphore(workerCount);
        // The permits bound the tasks, so the queue never holds more than workerCount of them.
        this.workers = new ThreadPoolExecutor(workerCount, workerCount, 30, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, "corfs-backing-" + THREADS.incrementAndGet());
                    t.setDaemon(true); // an abandoned call must not keep the JVM alive
                    return t;
                });
        this.workers.allowCoreThreadTimeOut(true);
    }

    @Override
    public int maxInFlight() {
        return Math.min(workerCount, inner.maxInFlight());
    }

    @Override
    public BackingIdentity identity() throws IOException {
        return call("identity", inner::identity, null);
    }

    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        return call("allocation at " + offset, () -> inner.allocation(offset, max), null);
    }

    /**
     * Reads on a worker thread straight into {@code dst}. On a timeout the read is abandoned and a
     * {@link BackingTimeoutException} says so: the worker may still write into {@code dst} later, so the
     * caller must drop that buffer (the engine never passes memory it does not own, and never reuses a
     * buffer after this exception).
     */
    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        ByteBuffer target = dst.duplicate();
        call("read at " + offset, () -> {
            inner.readFully(target, offset);
            return null;
        }, null);
        dst.position(target.position());
    }

    @Override
    public boolean canCopyTo(corfs.io.FileOps.SparseFile target) {
        return inner.canCopyTo(target);
    }

    /**
     * Copies on a worker thread, with the deadline. On a timeout the copy is abandoned, not stopped: it may
     * still write into {@code target} until the {@link BackingTimeoutException#stillWriting()} it carries
     * completes (see {@link Backing#copyTo}).
     */
    @Override
    public boolean copyTo(long offset, int length, corfs.io.FileOps.SparseFile target, long targetOffset)
            throws IOException {
        return call("copy at " + offset, () -> inner.copyTo(offset, length, target, targetOffset), null, true);
    }

    @Override
    public Writer openWriter() throws IOException {
        Writer w = call("open for writing", inner::openWriter, TimeoutBacking::closeQuietly);
        return new TimeoutWriter(w);
    }

    /**
     * Closes the inner backing with the same deadline, without interrupting anything; calls still stuck
     * in the backing are left to finish on their own (daemon threads). Idempotent.
     */
    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            call("close", () -> {
                inner.close();
                return null;
            }, null);
        } catch (RejectedCallException | BackingTimeoutException e) {
            LOG.warn("backing {} not closed: {}; it stays open until the process exits", inner.location(),
                    e.getMessage());
        } finally {
            workers.shutdown(); // no interrupt: idle workers exit, stuck ones finish when the backing answers
            int stuck = abandoned.get();
            if (stuck > 0) {
                LOG.warn("backing {}: {} call(s) still stuck in it at close; left to finish", inner.location(), stuck);
            }
        }
    }

    /**
     * Runs {@code task} on a worker and waits at most the timeout (queueing included). On a timeout,
     * {@code lateResult} (if not null) receives a result that arrives after the caller gave up.
     */
    private <T> T call(String what, Callable<T> task, java.util.function.Consumer<T> lateResult) throws IOException {
        return call(what, task, lateResult, false);
    }

    /**
     * As above; {@code writesTarget}: the task writes into something its caller passed (a copy into a
     * file), so a timeout tells when the abandoned task returned ({@link BackingTimeoutException#stillWriting}).
     */
    private <T> T call(String what, Callable<T> task, java.util.function.Consumer<T> lateResult, boolean writesTarget)
            throws IOException {
        if (abandoned.get() >= workerCount) {
            throw new RejectedCallException("backing " + inner.location() + " is not answering (" + workerCount
                    + " calls stuck in it for over " + timeoutMillis + " ms); " + what + " refused");
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        try {
            if (!permits.tryAcquire(timeoutMillis, TimeUnit.MILLISECONDS)) {
                throw timedOut(what, null, writesTarget ? CompletableFuture.completedFuture(null) : null);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new BackingTimeoutException("interrupted waiting for backing " + inner.location(), e,
                    writesTarget ? CompletableFuture.completedFuture(null) : null);
        }
        // completes when the task has returned (or will never run): an abandoned call writes nothing after
        CompletableFuture<Void> settled = new CompletableFuture<>();
        CompletableFuture<Void> told = writesTarget ? settled : null;
        // 0 queued, 1 running, 2 done, 3 given up before it ran, 4 abandoned while running
        AtomicInteger state = new AtomicInteger();
        CompletableFuture<T> result = new CompletableFuture<>();
        try {
            workers.execute(() -> {
                try {
                    if (!state.compareAndSet(0, 1)) {
                        return; // its caller gave up before it started
                    }
                    T value = null;
                    Throwable failure = null;
                    try {
                        value = task.call();
                    } catch (Throwable t) {
                        failure = t;
                    }
                    if (state.compareAndSet(1, 2)) {
                        if (failure == null) {
                            result.complete(value);
                        } else {
                            result.completeExceptionally(failure);
                        }
                    } else { // abandoned: nobody waits for it
                        abandoned.decrementAndGet();
                        LOG.info("backing {} answered {} after its caller gave up", inner.location(), what);
                        if (failure == null && lateResult != null) {
                            lateResult.accept(value);
                        }
                    }
                } finally {
                    permits.release();
                    settled.complete(null);
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            permits.release();
            settled.complete(null);
            throw new RejectedCallException("backing " + inner.location() + " is closed; " + what + " refused");
        }
        try {
            long left = deadline - System.nanoTime();
            return result.get(Math.max(1, left), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            if (!state.compareAndSet(0, 3) && state.compareAndSet(1, 4)) {
                abandoned.incrementAndGet();
            } else if (state.get() == 2) {
                return resultNow(result); // it finished just now
            }
            throw timedOut(what, e, told);
        } catch (InterruptedException e) {
            // keep the task's bookkeeping right: treat as a timeout
            if (!state.compareAndSet(0, 3) && state.compareAndSet(1, 4)) {
                abandoned.incrementAndGet();
            }
            Thread.currentThread().interrupt();
            throw new BackingTimeoutException("interrupted waiting for backing " + inner.location(), e, told);
        } catch (ExecutionException e) {
            throw Deadline.rethrow("backing " + inner.location() + " " + what, e.getCause());
        }
    }

    private static <T> T resultNow(CompletableFuture<T> f) throws IOException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            throw e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    private BackingTimeoutException timedOut(String what, Throwable cause, CompletableFuture<Void> stillWriting) {
        LOG.warn("backing {} did not answer {} within {} ms", inner.location(), what, timeoutMillis);
        return new BackingTimeoutException("backing " + inner.location() + " did not answer " + what + " within "
                + timeoutMillis + " ms", cause, stillWriting);
    }

    private static void closeQuietly(Writer w) {
        try {
            w.close();
        } catch (IOException | RuntimeException e) {
            LOG.warn("closing a backing writer opened after its caller gave up: {}", e.toString());
        }
    }

    /** Refused at once: every worker is stuck, or the backing is closed. */
    private static final class RejectedCallException extends CorfsException {
        RejectedCallException(String message) {
            super(Reason.IO, message);
        }
    }

    /** The writer with the same deadlines; after a timeout it refuses everything but close. */
    private final class TimeoutWriter implements Writer {
        private final Writer w;
        private volatile String broken;
        private final AtomicBoolean writerClosed = new AtomicBoolean();

        TimeoutWriter(Writer w) {
            this.w = w;
        }

        private void checkUsable() throws CorfsException {
            if (broken != null) {
                throw new CorfsException(Reason.IO, "backing writer unusable: an earlier " + broken
                        + " did not answer in time");
            }
        }

        @Override
        public void writeFully(ByteBuffer src, long offset) throws IOException {
            checkUsable();
            // a private copy: an abandoned write must not read a buffer its caller reuses
            ByteBuffer copy = ByteBuffer.allocate(src.remaining());
            copy.put(src.duplicate()).flip();
            try {
                call("write at " + offset, () -> {
                    w.writeFully(copy, offset);
                    return null;
                }, null);
            } catch (BackingTimeoutException e) {
                broken = "write";
                throw e;
            }
            src.position(src.limit());
        }

        @Override
        public void flush() throws IOException {
            checkUsable();
            try {
                call("flush", () -> {
                    w.flush();
                    return null;
                }, null);
            } catch (BackingTimeoutException e) {
                broken = "flush";
                throw e;
            }
        }

        @Override
        public void writeZeroes(long offset, long length) throws IOException {
            checkUsable();
            try {
                call("write of zeroes at " + offset, () -> {
                    w.writeZeroes(offset, length);
                    return null;
                }, null);
            } catch (BackingTimeoutException e) {
                broken = "write of zeroes";
                throw e;
            }
        }

        @Override
        public void close() throws IOException {
            if (writerClosed.compareAndSet(false, true)) {
                call("close of the writer", () -> {
                    w.close();
                    return null;
                }, null);
            }
        }
    }
}
