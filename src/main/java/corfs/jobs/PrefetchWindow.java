package corfs.jobs;

import corfs.image.ClusterBitmap;

import java.util.BitSet;

/**
 * Where the guest's boot is along a profile, and how far ahead of it a prefetch may fetch: the policy of
 * {@link PrefetchRun}, kept apart so it can be driven step by step in tests.
 *
 * <h2>Position</h2>
 * The furthest profile entry (in profile order) any guest read has touched marks where the boot is
 * ({@link #guestEntry}, -1 before the first). A prefetch may issue a chunk while the profile bytes before
 * it are below {@link #limit}: the profile bytes through the guest's entry plus the window.
 *
 * <h2>Window</h2>
 * Starts at {@link #MIN_WINDOW} (8 MiB of profile bytes). Only the <em>first</em> touch of each entry
 * judges it (a re-read says nothing about the prefetch): a first touch that finds the entry's clusters of
 * the read local is a hit, any other a miss. Hits of half a window's bytes since the last change double it
 * (up to {@link #MAX_WINDOW}): the guest keeps up, the link can run further ahead. A read with a miss
 * halves it (not below the minimum): the guest waited for the backing, so the prefetch should leave the
 * link to the guest's own fetches rather than run far ahead of it. A guest that reads nothing leaves the
 * link idle: once {@link #IDLE_GROW_NANOS} passed without a first touch (and without guest I/O, which
 * {@link PrefetchRun} checks), {@link #growIfIdle} doubles the window each time the prefetch is held at its
 * limit, at most once per completed fill (the run paces it), so a prefetch started before the guest (or
 * during a pause of the boot) carries on at the link's pace instead of stopping at the first window. A boot's
 * first idle moments, the kernel starting, are when the link is all the prefetch's. (It grew once per 200 ms
 * before: alone on a 134 MB/s link a 66 MB profile then took 1.4 s, three times the link's 0.49 s.) Growth
 * waits for an idle guest, not merely one without misses: on a slow link a guest that reads at its own pace
 * soon reaches the prefetch's front, and a window kept small then turns the prefetch back to the entries the
 * guest skipped over, which it reads next (growing on every pause between misses made a think-0 replay at
 * 26 MB/s take 2.5-4.1 s instead of 2.4-2.6 s).
 *
 * <p>Thread-safe: guest reads (FUSE threads) and the prefetch workers call it; every method takes this
 * object's monitor briefly and does no I/O (the local bitmap is memory).
 */
final class PrefetchWindow {
    static final long MIN_WINDOW = 8L << 20;
    static final long MAX_WINDOW = 1L << 30;
    static final long IDLE_GROW_NANOS = 50_000_000L;
    /**
     * A guest busy off the profile (I/O all the time, none of it on the profile's path, no miss in flight)
     * grows the window too, once no entry was first touched for this long: waiting for an idle guest alone
     * held such a prefetch at its first window for as long as the guest kept busy, forever for a running VM.
     */
    static final long OFF_PATH_GROW_NANOS = 1_000_000_000L;

    private final PrefetchPlan plan;
    private final BitSet touched;
    private int guestEntry = -1;
    private long window = MIN_WINDOW;
    private long hitBytes;
    private long lastEventNanos;
    private long hits;
    private long misses;

    PrefetchWindow(PrefetchPlan plan, long nowNanos) {
        this.plan = plan;
        this.touched = new BitSet(plan.entries());
        this.lastEventNanos = nowNanos;
    }

    /**
     * A guest read of bytes [start, end) whose first overlapping entry is at sorted position {@code from}
     * ({@link PrefetchPlan#firstOverlap}), judged against {@code local} as it is before the read is served.
     * Returns true when the guest's position moved forward.
     */
    synchronized boolean guestRead(int from, long start, long end, ClusterBitmap local, long nowNanos) {
        int shift = plan.clusterShift;
        int before = guestEntry;
        boolean missed = false;
        long hit = 0;
        for (int j = from; j < plan.sortedCount() && plan.sortedStart(j) < end; j++) {
            int entry = plan.sortedIndex(j);
            guestEntry = Math.max(guestEntry, entry);
            if (touched.get(entry)) {
                continue;
            }
            touched.set(entry);
            lastEventNanos = nowNanos;
            long a = Math.max(start, plan.sortedStart(j));
            long b = Math.min(end, plan.sortedEnd(j));
            if (local.allSet(a >>> shift, ((b - 1) >>> shift) + 1)) {
                hit += b - a;
                hits++;
            } else {
                missed = true;
                misses++;
            }
        }
        if (missed) {
            window = Math.max(MIN_WINDOW, window / 2);
            hitBytes = 0;
        } else if (hit > 0) {
            hitBytes += hit;
            if (hitBytes >= window / 2) {
                window = Math.min(MAX_WINDOW, window * 2);
                hitBytes = 0;
            }
        }
        return guestEntry > before;
    }

    /** Doubles the window when no entry was first touched for {@link #IDLE_GROW_NANOS}; true if it grew. The caller paces it. */
    synchronized boolean growIfIdle(long nowNanos) {
        return growIfUntouched(nowNanos, IDLE_GROW_NANOS);
    }

    /** Doubles the window when no entry was first touched for {@code quietNanos}; true if it grew. The caller paces it. */
    synchronized boolean growIfUntouched(long nowNanos, long quietNanos) {
        if (nowNanos - lastEventNanos < quietNanos || window >= MAX_WINDOW) {
            return false;
        }
        window = Math.min(MAX_WINDOW, window * 2);
        return true;
    }

    /** Profile bytes below which a chunk may be issued: through the guest's entry, plus the window. */
    synchronized long limit() {
        return (guestEntry < 0 ? 0 : plan.entryEnd[guestEntry]) + window;
    }

    /** The first chunk of the guest's entry: chunks from here on are ahead of the boot (0 before it starts). */
    synchronized int guestChunk() {
        return guestEntry < 0 ? 0 : plan.entryFirstChunk[guestEntry];
    }

    synchronized int guestEntry() {
        return guestEntry;
    }

    synchronized long window() {
        return window;
    }

    @Override
    public synchronized String toString() {
        return "PrefetchWindow[guest entry " + guestEntry + ", window " + window + ", hits " + hits + ", misses "
                + misses + "]";
    }
}
