package corfs.engine;

import corfs.backing.Backing;
import corfs.backing.ForwardingBacking;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A test-only decorator of a real backing (a {@code FileBacking}) that stands in for a network: a fixed
 * delay on each {@link #readFully} (a round trip), an optional gate that holds every read until it is
 * opened, an optional failing range, and counters of the reads inside at once. Its {@link #maxInFlight()}
 * is whatever the test says. The counters tell concurrency without timing: a gate that opens only when
 * N reads are inside proves N were in flight at once.
 */
public final class DelayBacking extends ForwardingBacking {
    private final int maxInFlight;
    private final long delayNanos;
    private final AtomicInteger inside = new AtomicInteger();
    private final AtomicInteger maxInside = new AtomicInteger();
    private final AtomicLong reads = new AtomicLong();
    private volatile CountDownLatch gate;
    private volatile CountDownLatch arrivals;
    private volatile long failFrom = -1;
    private volatile long failTo = -1;
    private volatile long failFrom2 = -1;
    private volatile long failTo2 = -1;

    public DelayBacking(Backing inner, int maxInFlight, long delayNanos) {
        super(inner);
        this.maxInFlight = maxInFlight;
        this.delayNanos = delayNanos;
    }

    /** Holds every read until {@link #openGate()}; {@link #awaitInside} tells how many wait. */
    public void closeGate() {
        gate = new CountDownLatch(1);
    }

    public void openGate() {
        CountDownLatch g = gate;
        gate = null;
        if (g != null) {
            g.countDown();
        }
    }

    /** Opens the gate by itself once {@code n} reads are inside at once (then lets every read through). */
    public void openWhenInside(int n) {
        arrivals = new CountDownLatch(n);
        closeGate();
    }

    /** Waits (bounded) until {@code n} reads are inside; true if they were. */
    public boolean awaitInside(int n, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (inside.get() < n) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    /** Reads overlapping [from, to) (and a second range, or -1) fail with an IOException. */
    public void failReads(long from, long to, long from2, long to2) {
        failFrom = from;
        failTo = to;
        failFrom2 = from2;
        failTo2 = to2;
    }

    public int maxInside() {
        return maxInside.get();
    }

    public int inside() {
        return inside.get();
    }

    public long reads() {
        return reads.get();
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        int now = inside.incrementAndGet();
        maxInside.accumulateAndGet(now, Math::max);
        reads.incrementAndGet();
        try {
            CountDownLatch a = arrivals;
            if (a != null) {
                a.countDown();
                if (a.getCount() == 0) {
                    openGate();
                }
            }
            CountDownLatch g = gate;
            if (g != null && !g.await(30, TimeUnit.SECONDS)) {
                throw new IOException("test gate not opened within 30 s");
            }
            if (delayNanos > 0) {
                TimeUnit.NANOSECONDS.sleep(delayNanos);
            }
            long end = offset + dst.remaining();
            if (offset < failTo && end > failFrom || offset < failTo2 && end > failFrom2) {
                throw new IOException("injected read error at " + offset);
            }
            inner.readFully(dst, offset);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } finally {
            inside.decrementAndGet();
        }
    }

    @Override
    public int maxInFlight() {
        return maxInFlight;
    }

    @Override
    public void close() throws IOException {
        openGate();
        inner.close();
    }
}
