package corfs.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The read-ahead policy of a {@link LeafDisk}: keeps one sequential cold reader a few fill chunks ahead,
 * so the backing reads overlap with serving the reader. It only decides <em>what</em> to fill and
 * <em>when</em>; the filling itself is the disk's {@link Fill} (which takes the cluster range lock and
 * follows the disk's ordering rules), so a policy can be replaced without touching copy-on-read.
 *
 * <h2>How far ahead</h2>
 * The chunk size and how many chunks are kept ahead come from a {@link ReadAheadBudget}, read afresh at
 * each call: the bytes the link carries in about two round trips (at most {@code maxChunks} chunks of
 * {@code maxChunkClusters}), so on a slow link a guest miss elsewhere on the disk queues behind about one
 * round trip of read-ahead, not a fixed several megabytes; a fast link keeps the largest shape. The
 * window that follows a reader is {@code chunks x chunkClusters} of the shape of the moment.
 *
 * <h2>State</h2>
 * One frontier, {@link #prefetchedThrough}: the last cluster handed to the workers (-1 before a
 * sequential cold read started one). It only moves forward by compare-and-set, except that a reader far
 * behind it (two windows) takes it over (a new sequential stream elsewhere on the disk). Requests that do
 * not fit the bounded queue ({@code maxChunks} tasks) are dropped: the reader then fills synchronously,
 * nothing is lost.
 *
 * <h2>Threads, ownership, stop</h2>
 * Up to {@code inFlight} named daemon threads, {@code corfs-readahead-<leaf>-N}, started on demand and
 * retired after 5 s idle, so that many chunks are read at once (a backing with a round trip R is then not
 * read one chunk per R). They hold no lock between tasks; each task is one {@code Fill} of at most one
 * chunk, of its own clusters (the frontier hands out disjoint ranges), whose failure is logged at debug
 * and forgotten (a guest read of the same clusters reports the error). The owning disk calls
 * {@link #close()} before closing its image: it stops accepting work and waits (30 s at most) for the
 * tasks in progress, which are never interrupted (NIO closes a channel when its thread is interrupted).
 * Idempotent.
 */
final class SequentialReadAhead implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(SequentialReadAhead.class);

    /** Fills [first, last] the way the disk's stream step does. */
    @FunctionalInterface
    interface Fill {
        void fill(long first, long last) throws IOException;
    }

    private final String name;
    private final long clusters;
    private final ReadAheadBudget budget;
    private final Fill fill;
    private final boolean enabled;
    private final AtomicLong prefetchedThrough = new AtomicLong(-1);
    private final AtomicBoolean closed = new AtomicBoolean();
    private final ThreadPoolExecutor workers;

    /**
     * A fixed policy: always {@code chunks} chunks of {@code chunkClusters} ahead.
     *
     * @param clusters      clusters of the disk
     * @param chunkClusters clusters of one fill (one task)
     * @param chunks        how many chunks the reader is kept ahead (and the queue's bound)
     * @param inFlight      how many chunks are filled at once (threads), 1 to {@code chunks}
     * @param enabled       false makes every call a no-op (read-only mount, standalone leaf)
     */
    SequentialReadAhead(String name, long clusters, long chunkClusters, int chunks, int inFlight, Fill fill,
                        boolean enabled) {
        this(name, clusters, ReadAheadBudget.fixed(1, Math.max(1, chunkClusters), chunks), chunks, inFlight, fill,
                enabled);
    }

    /**
     * @param clusters  clusters of the disk
     * @param budget    the chunk size and chunks ahead, asked at every call
     * @param maxChunks the most chunks the budget gives (the queue's bound)
     * @param inFlight  how many chunks are filled at once (threads), 1 to {@code maxChunks}
     * @param enabled   false makes every call a no-op (read-only mount, standalone leaf)
     */
    SequentialReadAhead(String name, long clusters, ReadAheadBudget budget, int maxChunks, int inFlight, Fill fill,
                        boolean enabled) {
        this.name = name;
        this.clusters = clusters;
        this.budget = budget;
        this.fill = fill;
        this.enabled = enabled;
        int chunks = Math.max(1, maxChunks);
        int threads = Math.max(1, Math.min(chunks, inFlight));
        AtomicInteger count = new AtomicInteger();
        // Core threads (timing out) rather than core 0: a pool grows past its core only when the queue is full.
        this.workers = new ThreadPoolExecutor(threads, threads, 5, TimeUnit.SECONDS, new ArrayBlockingQueue<>(chunks),
                r -> {
                    Thread t = new Thread(r, "corfs-readahead-" + name + "-" + count.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                }, new ThreadPoolExecutor.DiscardPolicy());
        this.workers.allowCoreThreadTimeOut(true);
    }

    /**
     * A read of local clusters ending at cluster {@code last}: a reader just behind the frontier is the
     * sequential one, so the frontier is pushed on.
     */
    void afterLocalRead(long last) {
        long ahead = prefetchedThrough.get();
        if (ahead >= last && ahead < clusters - 1 && ahead - last < budget.shape().windowClusters() / 2) {
            ahead(last);
        }
    }

    /** Clusters of one chunk now: also how far past its own clusters a sequential cold read fetches. */
    long chunkClusters() {
        return budget.shape().chunkClusters();
    }

    /**
     * Keeps the next chunks after cluster {@code from} (the budget's window) being filled by the workers. A
     * full queue drops the request. Holds no lock; each task takes its range when it runs.
     */
    void ahead(long from) {
        if (!enabled || closed.get()) {
            return;
        }
        ReadAheadBudget.Shape shape = budget.shape();
        long chunkClusters = shape.chunkClusters();
        long window = shape.windowClusters();
        long limit = Math.min(clusters - 1, from + window);
        while (true) {
            long done = prefetchedThrough.get();
            if (done > limit) {
                // the frontier belongs to a reader elsewhere; far from it, this reader starts its own
                if (done - from > 2L * window && prefetchedThrough.compareAndSet(done, from)) {
                    continue;
                }
                return;
            }
            long start = Math.max(done + 1, from + 1);
            if (start > limit) {
                return;
            }
            long end = Math.min(limit, start + chunkClusters - 1);
            if (!prefetchedThrough.compareAndSet(done, end)) {
                continue;
            }
            workers.execute(() -> {
                try {
                    fill.fill(start, end);
                } catch (IOException | RuntimeException e) {
                    LOG.debug("{}: prefetch of clusters [{}, {}] failed: {}", name, start, end, e.toString());
                }
            });
        }
    }

    /** Stops accepting work and waits, 30 s at most, for the tasks in progress. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        workers.shutdown();
        try {
            if (!workers.awaitTermination(30, TimeUnit.SECONDS)) {
                LOG.warn("{}: prefetch did not stop within 30 s", name);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
