package corfs.engine;

import corfs.image.ClusterBitmap;
import corfs.image.ProfileLog;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Records a leaf's access profile while it is mounted: each cluster the guest waited for the backing to
 * deliver (the clusters of its own read that {@link LeafDisk} fetched on a miss, and the partly written
 * edge clusters a write filled first), once ever, in the order of their first fetch, with the
 * milliseconds since this recorder was made (the mount). Fills of the stream, the prefetcher and the
 * sequential read-ahead are not the guest's and are never recorded.
 *
 * <h2>Cost</h2>
 * Nothing on the hot path (a read of local clusters never reaches it). A miss costs one atomic
 * test-and-set per cluster in {@link #recorded} and, for a cluster not yet recorded, an append to
 * {@link #pending} under a lock held for a few stores; the miss itself waited for the backing.
 *
 * <h2>Persistence</h2>
 * {@link #flush} (the mount's flusher, once a second) appends what is pending to the sidecar
 * ({@link ProfileLog}) and makes it durable; {@link #close} flushes a last time. A crash loses what was
 * pending, at most about a second of recording, never what was flushed. A cluster whose records were
 * lost is not recorded again later in that mount (its bit is set); a later mount loads the bits from
 * the file, so it is recorded again then if the guest waits for it.
 *
 * <h2>Threads</h2>
 * {@link #record} from any thread (FUSE workers); {@link #flush} and {@link #close} from the flusher and
 * the closing thread, serialised by {@link #flushLock}. Lock order: {@link #flushLock}, then
 * {@link #pending}'s monitor; nothing else is taken under either.
 */
public final class AccessRecorder implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AccessRecorder.class);
    /** Records kept while the file cannot take them; more are dropped (and logged once). */
    static final int MAX_PENDING = 1 << 20;

    private final String name;
    private final ProfileLog log;
    private final ClusterBitmap recorded;
    private final long startNanos = System.nanoTime();
    private final Pending pending = new Pending();
    private final Object flushLock = new Object();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final AtomicBoolean overflowLogged = new AtomicBoolean();
    private boolean failureLogged; // under flushLock
    private long[] writeClusters = new long[0]; // under flushLock
    private int[] writeMillis = new int[0]; // under flushLock

    /** The records appended since the last flush, in order; guarded by its own monitor. */
    private static final class Pending {
        long[] clusters = new long[64];
        int[] millis = new int[64];
        int count;
    }

    private AccessRecorder(String name, ProfileLog log) {
        this.name = name;
        this.log = log;
        ProfileLog.Contents c = log.loaded();
        this.recorded = new ClusterBitmap(c.header().clusters());
        for (int i = 0; i < c.count(); i++) {
            recorded.set(c.clusters()[i]);
        }
    }

    /**
     * Opens the profile of the leaf at {@code leaf} for recording (see {@link ProfileLog#openForAppend}).
     *
     * @throws IOException when it cannot be opened or created (the mount then records nothing)
     */
    public static AccessRecorder open(java.nio.file.Path leaf, ProfileLog.Header header) throws IOException {
        ProfileLog log = ProfileLog.openForAppend(leaf, header);
        AccessRecorder r = new AccessRecorder(leaf.getFileName().toString(), log);
        if (log.loaded().count() > 0) {
            LOG.info("{}: recording its access profile after the {} clusters recorded before", r.name,
                    log.loaded().count());
        }
        return r;
    }

    /**
     * The guest waited for clusters [first, last] to be fetched: records each one not recorded before.
     * Called with the clusters held in the leaf's range lock, so callers never race for one cluster;
     * the test-and-set makes the once-only rule hold anyway.
     */
    void record(long first, long last) {
        int ms = -1;
        for (long c = first; c <= last; c++) {
            if (!recorded.set(c)) {
                continue;
            }
            if (ms < 0) {
                ms = (int) Math.min(Integer.MAX_VALUE, (System.nanoTime() - startNanos) / 1_000_000);
            }
            synchronized (pending) {
                if (pending.count == pending.clusters.length) {
                    if (pending.count >= MAX_PENDING) {
                        if (overflowLogged.compareAndSet(false, true)) {
                            LOG.warn("{}: the access profile cannot be saved fast enough; dropping records", name);
                        }
                        continue;
                    }
                    pending.clusters = Arrays.copyOf(pending.clusters, pending.count * 2);
                    pending.millis = Arrays.copyOf(pending.millis, pending.count * 2);
                }
                pending.clusters[pending.count] = c;
                pending.millis[pending.count] = ms;
                pending.count++;
            }
        }
    }

    /** Clusters recorded, in this mount and before. */
    public long recordedClusters() {
        return recorded.count();
    }

    /**
     * Appends the pending records to the sidecar and makes them durable. A failure is logged once and the
     * records kept for the next flush.
     */
    public void flush() {
        synchronized (flushLock) {
            if (closed.get()) {
                return;
            }
            flushLocked();
        }
    }

    private void flushLocked() {
        int n;
        synchronized (pending) {
            n = pending.count;
            if (n == 0) {
                return;
            }
            if (writeClusters.length < n) {
                writeClusters = new long[pending.clusters.length];
                writeMillis = new int[pending.clusters.length];
            }
            System.arraycopy(pending.clusters, 0, writeClusters, 0, n);
            System.arraycopy(pending.millis, 0, writeMillis, 0, n);
        }
        try {
            log.append(writeClusters, writeMillis, n);
        } catch (IOException | RuntimeException e) {
            if (!failureLogged) {
                failureLogged = true;
                LOG.warn("{}: cannot save its access profile to {}: {}", name, log.path(), e.toString());
            }
            return;
        }
        synchronized (pending) {
            // Records appended meanwhile follow the n written ones: move them to the front.
            System.arraycopy(pending.clusters, n, pending.clusters, 0, pending.count - n);
            System.arraycopy(pending.millis, n, pending.millis, 0, pending.count - n);
            pending.count -= n;
        }
        failureLogged = false;
    }

    /** Flushes a last time and closes the sidecar. Idempotent. */
    @Override
    public void close() throws IOException {
        synchronized (flushLock) {
            if (closed.get()) {
                return;
            }
            flushLocked();
            closed.set(true);
            log.close();
        }
    }

    @Override
    public String toString() {
        return "AccessRecorder[" + name + "]";
    }
}
