package corfs.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;

/**
 * Serialises operations on overlapping cluster ranges and lets disjoint ranges run in parallel.
 *
 * <p>This is how the engine keeps the rule that older backing data never lands over newer written data:
 * a copy-on-read fill, a stream step, a guest write and a commit copy of the same cluster each hold the
 * range covering it for the whole read-modify-write, so they never interleave (QEMU's "serialising
 * requests", at cluster granularity).
 *
 * <p>A thread holds at most one range at a time (no nesting), so there is no lock order to break and
 * no deadlock. The held ranges are few (one per busy thread), so a list under one monitor is enough.
 * Waiting has no deadline, since giving up would fail guest I/O, but it wakes every second and logs when
 * a wait grows long, so a stuck holder is visible.
 */
public final class ClusterRangeLock {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterRangeLock.class);
    private static final long WAIT_SLICE_MS = 1000;
    private static final long WARN_AFTER_MS = 30_000;

    private final List<Held> held = new ArrayList<>();

    /** A held range; {@link #close()} releases it. */
    public final class Held implements AutoCloseable {
        private final long first;
        private final long last;
        private boolean released;

        private Held(long first, long last) {
            this.first = first;
            this.last = last;
        }

        public long first() {
            return first;
        }

        public long last() {
            return last;
        }

        @Override
        public void close() {
            synchronized (ClusterRangeLock.this) {
                if (released) {
                    return;
                }
                released = true;
                held.remove(this);
                ClusterRangeLock.this.notifyAll();
            }
        }
    }

    /** Blocks until no held range overlaps [first, last], then holds it. */
    public Held lock(long first, long last) {
        if (first > last || first < 0) {
            throw new IllegalArgumentException("bad cluster range [" + first + ", " + last + "]");
        }
        long start = System.nanoTime();
        boolean warned = false;
        boolean interrupted = false;
        synchronized (this) {
            try {
                while (overlaps(first, last)) {
                    try {
                        wait(WAIT_SLICE_MS);
                    } catch (InterruptedException e) {
                        interrupted = true; // guest I/O must finish; remember the interrupt for the caller
                    }
                    long waitedMs = (System.nanoTime() - start) / 1_000_000;
                    if (!warned && waitedMs > WARN_AFTER_MS) {
                        warned = true;
                        LOG.warn("waited {} ms for clusters [{}, {}]; held: {}", waitedMs, first, last, describeHeld());
                    }
                }
                Held h = new Held(first, last);
                held.add(h);
                return h;
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    private boolean overlaps(long first, long last) {
        for (Held h : held) {
            if (h.first <= last && first <= h.last) {
                return true;
            }
        }
        return false;
    }

    private String describeHeld() {
        StringBuilder sb = new StringBuilder();
        for (Held h : held) {
            sb.append('[').append(h.first).append(", ").append(h.last).append("] ");
        }
        return sb.toString().trim();
    }

    /** Number of ranges held now (for tests and assertions). */
    public synchronized int heldCount() {
        return held.size();
    }
}
