package corfs.engine;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingMeter;
import corfs.backing.BackingTimeoutException;
import corfs.backing.MeteredBacking;
import corfs.image.ClusterBitmap;
import corfs.image.LeafImage;
import corfs.io.IoFailures;
import corfs.vocabulary.LeafCounters;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The virtual disk of one leaf: the backing overlaid with the leaf, with copy-on-read. This is the one
 * place that knows the ordering rules; the FUSE adapter and the jobs call it, and unit tests drive it
 * through the same methods.
 *
 * <h2>Invariants</h2>
 * <ul>
 * <li>A cluster's {@code local} bit is set only after its data is in the leaf's data file (written, or a
 * hole punched for zeros). Readers that see the bit read the leaf without any lock.</li>
 * <li>Every change of a cluster's content or bits (fill, write, zeroing, commit copy) happens while
 * holding that cluster in {@link #locks}, so a fill of backing data and a guest write to the same
 * cluster never interleave: the fill re-checks {@code local} under the lock and backs off.</li>
 * <li>{@code dirty} goes ahead of the data, in the same locked section as the write or zeroing
 * ({@link #raiseDirty}): a cluster that is local is marked dirty and the leaf's in-use flag made durable
 * <em>before</em> the data lands ({@link LeafImage#markInUse()}: one header write per mount, so after an
 * unclean stop every local cluster counts as dirty); one that is not
 * local is marked dirty before its fill or data and local after, so the metadata never says local and
 * clean about a cluster holding written data, whatever a crash keeps (LeafImage's class comment). A
 * commit clears it only if no write touched the cluster since the commit copied it
 * ({@link #redirtied}).</li>
 * <li>Reads of local clusters take no lock and allocate nothing.</li>
 * <li>A read of a local cluster that finds the data file shorter than the disk (truncated behind
 * corfs's back) is an error (EIO), never zeros; {@code corfs check} counts the local clusters past the
 * end. A file truncated and then extended again reads the lost clusters as zeros: nothing tells those
 * holes from clusters that were zeros.</li>
 * </ul>
 * Durability is {@link LeafImage#flush()}'s business; {@link #flush()} is the guest's barrier.
 * What to fetch ahead of a sequential cold reader is {@link SequentialReadAhead}'s policy; it fills
 * through {@link #fill}, under the same rules as a stream step. The clusters a guest request waited for
 * (the misses of its own range in {@code readCold}, the partial edges a write fills) are told to the
 * {@link AccessRecorder}, if any, when they are fetched; clusters fetched ahead of the guest (a sequential
 * read's window, the read-ahead's fills) when the guest first reads them ({@link #fetchedAhead}: a profile
 * must hold what the boot read, or a prefetch of it leaves those to the guest); fills of jobs are never
 * told, nor read-ahead the guest never reads. A prefetch follows the guest
 * through a {@link GuestReadListener} ({@link #guestReads}), told of every read before it is served, and
 * yields to the guest's copy-on-read fills ({@link #coldReadsInFlight}); it too fills through {@link #fill}.
 *
 * <h2>Threads</h2>
 * Called from many FUSE threads and the filler thread at once. {@link #close} fences writes: from then
 * on a write or zeroing is refused (EIO), and close waits (bounded) for those in flight before the leaf's
 * final flush clears its in-use flag, or leaves the flag set. Never interrupt a thread inside it: NIO
 * closes a channel when a thread blocked on it is interrupted.
 */
public final class LeafDisk implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(LeafDisk.class);
    /** The counters of a backing that is not metered: never fed, so zeros (shared, not one per status call). */
    private static final BackingMeter NO_METER = new BackingMeter();
    private static final long[] NONE = {};
    /**
     * Largest backing read of one fill step; also the largest read-ahead chunk, and the most a sequential
     * cold read fetches past its own clusters (the {@link ReadAheadBudget} may say less on a slow link).
     */
    static final int FILL_CHUNK = 1 << 20;
    /**
     * A sequential cold reader is kept at most this many fill chunks ahead by the read-ahead threads, all
     * of them in flight at once when the backing allows ({@link Backing#maxInFlight()}); fewer and smaller
     * when the link is slow ({@link ReadAheadBudget}).
     */
    static final int PREFETCH_CHUNKS = 8;
    /** The most one in-kernel copy of a stream's fill moves ({@link #copyInKernel}); larger runs use buffers. */
    private static final long MAX_COPY = 64L << 20;

    private final String name;
    private final LeafImage image;
    private final Backing backing;
    private final boolean readOnly;
    private final long size;
    private final int clusterSize;
    private final int clusterShift;
    private final long clusters;
    private final FileChannel data;
    private final ClusterBitmap local;
    private final ClusterRangeLock locks = new ClusterRangeLock();
    private final ClusterBitmap redirtied;
    private final DirectBufferPool buffers;
    private final ByteBuffer zeros;
    private final AtomicInteger guestInFlight = new AtomicInteger();
    private final AtomicLong lastGuestIoNanos = new AtomicLong();
    private final AtomicLong modifiedMillis = new AtomicLong(System.currentTimeMillis());
    private final AtomicBoolean storeFailureLogged = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    /**
     * Writes and zeroings between their {@link #enterWrite} and their end. With {@link #closed}, the fence
     * that lets {@link #close} clear the leaf's in-use flag only once no write can land any more.
     */
    private final AtomicInteger writersInFlight = new AtomicInteger();
    /** How long {@link #close} waits for writes in flight before it leaves the in-use flag set. */
    static final long CLOSE_DRAIN_MILLIS = 10_000;
    private volatile long lastReadEnd = -1;
    /** Bytes read from the backing, by {@link FetchPurpose} ordinal; only grow. */
    private final LongAdder[] fetched = new LongAdder[FetchPurpose.values().length];
    private final SequentialReadAhead readAhead;
    /** Sized from the link by every backing read of {@link #fillRun}; shapes {@link #readAhead}. */
    private final ReadAheadBudget readAheadBudget;
    /** Null when the access profile is not recorded (read-only, -o profile=off, no backing). */
    private final AccessRecorder recorder;
    /**
     * Clusters fetched ahead of the guest (a sequential read's window, the read-ahead's fills) that it has
     * not read yet: recorded in the profile when it first does, since it needed them though it did not wait.
     * Null when nothing is recorded. {@link #aheadUnread} counts them, so a local read pays one atomic read
     * while there are none.
     */
    private final ClusterBitmap fetchedAhead;
    private final AtomicLong aheadUnread = new AtomicLong();
    /** Guest reads fetching from the backing (copy-on-read) right now: what a prefetch yields to. */
    private final AtomicInteger coldReads = new AtomicInteger();
    /**
     * Told of every guest read; null when nobody follows the guest (no prefetch runs). The hot path pays
     * this one volatile read when it is null.
     */
    private volatile GuestReadListener guestReads;
    /** Serialises installing and removing {@link #guestReads} (never taken on the read path). */
    private final Object listenerLock = new Object();

    /**
     * @param backing null only for a standalone leaf (every cluster local)
     */
    public LeafDisk(String name, LeafImage image, Backing backing, boolean readOnly) {
        this(name, image, backing, readOnly, null);
    }

    /**
     * @param backing null only for a standalone leaf (every cluster local)
     * @param recorder told which clusters the guest waited for (see {@link AccessRecorder}); null records
     *        nothing; ignored when the disk is read-only. The caller keeps it and closes it after this disk
     *        serves no more I/O.
     */
    public LeafDisk(String name, LeafImage image, Backing backing, boolean readOnly, AccessRecorder recorder) {
        this(name, image, backing, readOnly, recorder, null);
    }

    /**
     * As above, with the read-ahead's budget given ({@code null}: sized from the link, the default); tests
     * give a {@link ReadAheadBudget#fixed} one.
     */
    LeafDisk(String name, LeafImage image, Backing backing, boolean readOnly, AccessRecorder recorder,
             ReadAheadBudget budget) {
        this.name = name;
        this.image = image;
        this.backing = backing;
        this.readOnly = readOnly || image.readOnly();
        this.size = image.header().virtualSize();
        this.clusterSize = image.header().clusterSize();
        this.clusterShift = Integer.numberOfTrailingZeros(clusterSize);
        this.clusters = image.clusters();
        this.data = image.data();
        this.local = image.local();
        this.redirtied = new ClusterBitmap(clusters);
        int chunk = Math.max(FILL_CHUNK, clusterSize);
        this.buffers = new DirectBufferPool(chunk, 32);
        this.zeros = ByteBuffer.allocateDirect(chunk).asReadOnlyBuffer();
        if (backing == null && local.count() != clusters) {
            throw new IllegalArgumentException("a leaf without backing must be standalone");
        }
        int inFlight = backing == null ? 1 : Math.max(1, Math.min(PREFETCH_CHUNKS, backing.maxInFlight()));
        this.readAheadBudget = budget != null ? budget
                : new ReadAheadBudget(System::nanoTime, clusterSize, chunkClusters(), PREFETCH_CHUNKS);
        this.readAhead = new SequentialReadAhead(name, clusters, readAheadBudget, PREFETCH_CHUNKS, inFlight,
                (f, l) -> fill(f, l, FetchPurpose.READ_AHEAD), !this.readOnly && backing != null);
        for (int i = 0; i < fetched.length; i++) {
            fetched[i] = new LongAdder();
        }
        this.recorder = this.readOnly || backing == null ? null : recorder;
        this.fetchedAhead = this.recorder == null ? null : new ClusterBitmap(clusters);
    }

    public String name() {
        return name;
    }

    public long size() {
        return size;
    }

    public int clusterSize() {
        return clusterSize;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public LeafImage image() {
        return image;
    }

    /** The backing, or null when the leaf is standalone and was opened without it. */
    public Backing backing() {
        return backing;
    }

    public long modifiedMillis() {
        return modifiedMillis.get();
    }

    /**
     * True when a stream's fills copy from the backing into the leaf inside the kernel (a local file
     * backing on the leaf's filesystem, on Linux): the stream then sizes its steps for that.
     */
    public boolean copiesInKernel() {
        return !readOnly && backing != null && backing.canCopyTo(image.sparseData());
    }

    /** Bytes the leaf's data file really occupies (for st_blocks). */
    public long allocatedBytes() throws IOException {
        return image.sparseData().allocatedBytes();
    }

    /** Bytes of the virtual disk whose data is local. */
    public long localBytes() {
        return image.bytesIn(local);
    }

    /** Bytes written through corfs and not yet committed. */
    public long dirtyBytes() {
        return image.bytesIn(image.dirty());
    }

    /**
     * Installs the listener told of every guest read, or removes it ({@code null}). One at a time: a
     * prefetch installs it when it starts and removes it when it ends. {@code expected} is the listener
     * being replaced (null when none should be installed); false, changing nothing, when another is.
     */
    public boolean guestReads(GuestReadListener expected, GuestReadListener listener) {
        synchronized (listenerLock) {
            if (guestReads != expected) {
                return false;
            }
            guestReads = listener;
            return true;
        }
    }

    /** Guest reads fetching clusters from the backing at this moment (copy-on-read fills in flight). */
    public int coldReadsInFlight() {
        return coldReads.get();
    }

    /** Bytes read from the backing for {@code purpose} since this disk was opened (data, not holes). */
    public long fetchedBytes(FetchPurpose purpose) {
        return fetched[purpose.ordinal()].sum();
    }

    /**
     * The counters as the status shows them: fetched bytes by purpose, and the backing's latency and errors
     * when its backing is a {@link MeteredBacking} (as a mount opens it), zeros otherwise.
     */
    public LeafCounters counters() {
        long cor = fetchedBytes(FetchPurpose.COPY_ON_READ);
        long ra = fetchedBytes(FetchPurpose.READ_AHEAD);
        long st = fetchedBytes(FetchPurpose.STREAM);
        long pf = fetchedBytes(FetchPurpose.PREFETCH);
        BackingMeter meter = backing instanceof MeteredBacking m ? m.meter() : NO_METER;
        return meter.snapshotInto(cor, ra, st, pf);
    }

    /** True while a guest request is being served or was served within {@code withinNanos}. */
    public boolean guestActive(long withinNanos) {
        return guestInFlight.get() > 0 || System.nanoTime() - lastGuestIoNanos.get() < withinNanos;
    }

    // ------------------------------------------------------------------ guest I/O

    /**
     * Reads up to {@code dst.remaining()} bytes at {@code offset} (fewer at the end of the disk) into
     * {@code dst}, advancing its position. Returns the count, 0 at or past the end.
     */
    public int read(ByteBuffer dst, long offset) throws IOException {
        if (offset < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "negative offset");
        }
        if (offset >= size || !dst.hasRemaining()) {
            return 0;
        }
        int len = (int) Math.min(dst.remaining(), size - offset);
        long first = offset >>> clusterShift;
        long last = (offset + len - 1) >>> clusterShift;
        GuestReadListener listener = guestReads;
        boolean followed = listener != null && listener.guestRead(first, last);
        guestInFlight.incrementAndGet();
        try {
            int savedLimit = dst.limit();
            dst.limit(dst.position() + len);
            try {
                if (local.allSet(first, last + 1)) {
                    readLeaf(dst, offset);
                    if (fetchedAhead != null && aheadUnread.get() > 0) {
                        recordReadAhead(first, last);
                    }
                    if (!followed) {
                        readAhead.afterLocalRead(last);
                    }
                } else {
                    coldReads.incrementAndGet();
                    try {
                        readCold(dst, offset, len, first, last, followed);
                    } finally {
                        coldReads.decrementAndGet();
                    }
                }
            } finally {
                dst.limit(savedLimit);
            }
            lastReadEnd = offset + len;
            return len;
        } finally {
            lastGuestIoNanos.set(System.nanoTime());
            guestInFlight.decrementAndGet();
        }
    }

    /**
     * Clusters [first, last] are about to be fetched ahead of the guest: recorded when it reads them. Marked
     * before the fill makes them local (the caller holds their range lock), since a local read takes no
     * lock and may come the moment the local bit is set. A stale mark (the fill failed, and a cold read
     * recorded the cluster later) costs a re-record, which the recorder ignores.
     */
    private void markFetchedAhead(long first, long last) {
        for (long c = first; c <= last; c++) {
            if (fetchedAhead.set(c)) {
                aheadUnread.incrementAndGet();
            }
        }
    }

    /** The fill of clusters marked by {@link #markFetchedAhead} failed. */
    private void unmarkFetchedAhead(long first, long last) {
        for (long c = first; c <= last; c++) {
            if (fetchedAhead.clear(c)) {
                aheadUnread.decrementAndGet();
            }
        }
    }

    /** The guest read local clusters [first, last]: those fetched ahead of it go into the profile now. */
    private void recordReadAhead(long first, long last) {
        for (long c = first; c <= last; c++) {
            if (fetchedAhead.clear(c)) {
                aheadUnread.decrementAndGet();
                recorder.record(c, c);
            }
        }
    }

    private void readLeaf(ByteBuffer dst, long offset) throws IOException {
        long pos = offset;
        while (dst.hasRemaining()) {
            int n = data.read(dst, pos);
            if (n < 0) {
                throw new CorfsException(Reason.IO, "leaf data file " + image.dataPath() + " is shorter than "
                        + size + " bytes");
            }
            pos += n;
        }
    }

    /**
     * The slow path: some clusters are missing. Fills them under the range lock and serves the read; a
     * sequential read fetches ahead too, unless a prefetch follows this read ({@code followed}).
     */
    private void readCold(ByteBuffer dst, long offset, int len, long first, long last, boolean followed)
            throws IOException {
        long lockLast = last;
        if (!followed && (offset == lastReadEnd || (first > 0 && local.get(first - 1)))) {
            // Sequential: fetch ahead the missing clusters that follow, in the same backing read: one chunk of
            // the read-ahead's budget (a slow link's guest read does not wait for a whole fill buffer).
            long windowLast = Math.min(clusters - 1, last + readAhead.chunkClusters());
            long firstLocalAfter = local.nextSet(last + 1, windowLast + 1);
            lockLast = Math.max(last, firstLocalAfter - 1);
            readAhead.ahead(lockLast);
        }
        int base = dst.position();
        long end = offset + len;
        try (ClusterRangeLock.Held held = locks.lock(first, lockLast)) {
            long c = first;
            while (c <= lockLast) {
                boolean isLocal = local.get(c);
                long runEnd = isLocal ? local.nextClear(c, lockLast + 1) : local.nextSet(c, lockLast + 1);
                long runStart = c << clusterShift;
                long runStop = Math.min(size, runEnd << clusterShift);
                if (isLocal) {
                    long from = Math.max(runStart, offset);
                    long to = Math.min(runStop, end);
                    if (from < to) {
                        ByteBuffer slice = dst.duplicate();
                        slice.limit(base + (int) (to - offset)).position(base + (int) (from - offset));
                        readLeaf(slice, from);
                        if (fetchedAhead != null && c <= last && aheadUnread.get() > 0) {
                            recordReadAhead(c, Math.min(runEnd - 1, last));
                        }
                    }
                } else {
                    // the window past the guest's own clusters is recorded when the guest reads it
                    fillRunMarkingAhead(c, runEnd - 1, dst, base, offset, end, true, FetchPurpose.COPY_ON_READ,
                            Math.max(c, last + 1));
                    if (recorder != null && c <= last) {
                        recorder.record(c, Math.min(runEnd - 1, last)); // the guest's own clusters, not the window
                    }
                }
                c = runEnd;
            }
        }
        dst.position(base + len);
    }

    private long chunkClusters() {
        return Math.max(1, buffers.bufferSize() >>> clusterShift);
    }

    /**
     * Writes {@code src} at {@code offset}; returns the bytes written. A partly covered cluster that is
     * not local is filled from the backing first; fully covered ones are not fetched.
     */
    public int write(ByteBuffer src, long offset) throws IOException {
        checkWritable();
        if (offset < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "negative offset");
        }
        if (!src.hasRemaining()) {
            return 0;
        }
        if (offset >= size) {
            throw new CorfsException(Reason.FILE_TOO_BIG, "write at " + offset + " is past the end of the "
                    + size + "-byte disk " + name);
        }
        int len = (int) Math.min(src.remaining(), size - offset);
        long first = offset >>> clusterShift;
        long last = (offset + len - 1) >>> clusterShift;
        guestInFlight.incrementAndGet();
        enterWrite();
        try (ClusterRangeLock.Held held = locks.lock(first, last)) {
            long[] raised = raiseDirty(first, last);
            boolean landing = false;
            try {
                fillPartialEdges(offset, offset + len, first, last);
                ByteBuffer view = src.duplicate();
                view.limit(view.position() + len);
                landing = true;
                writeLeaf(view, offset);
                markWritten(first, last);
            } catch (IOException | RuntimeException e) {
                writeFailed(first, last, raised, landing);
                throw e;
            }
            src.position(src.position() + len);
            return len;
        } finally {
            lastGuestIoNanos.set(System.nanoTime());
            guestInFlight.decrementAndGet();
            exitWrite();
        }
    }

    /**
     * Makes [offset, offset+length) read as zeros without fetching it (discard, write-zeroes). Whole
     * clusters become holes in the leaf; partly covered ones are filled first and zeroed in place.
     */
    public void zeroRange(long offset, long length) throws IOException {
        checkWritable();
        if (offset < 0 || length < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "negative offset or length");
        }
        if (offset >= size || length == 0) {
            return;
        }
        long end = length >= size - offset ? size : offset + length; // no overflow for huge lengths
        long first = offset >>> clusterShift;
        long last = (end - 1) >>> clusterShift;
        guestInFlight.incrementAndGet();
        enterWrite();
        try (ClusterRangeLock.Held held = locks.lock(first, last)) {
            long[] raised = raiseDirty(first, last);
            boolean landing = false;
            try {
                fillPartialEdges(offset, end, first, last);
                long wholeFrom = ((offset + clusterSize - 1) >>> clusterShift) << clusterShift;
                long wholeTo = end == size ? end : (end >>> clusterShift) << clusterShift;
                landing = true;
                if (wholeFrom < wholeTo) {
                    punchOrZero(wholeFrom, wholeTo - wholeFrom);
                    writeZeros(offset, Math.min(end, wholeFrom));
                    writeZeros(Math.max(offset, wholeTo), end);
                } else {
                    writeZeros(offset, end);
                }
                markWritten(first, last);
            } catch (IOException | RuntimeException e) {
                writeFailed(first, last, raised, landing);
                throw e;
            }
        } finally {
            lastGuestIoNanos.set(System.nanoTime());
            guestInFlight.decrementAndGet();
            exitWrite();
        }
    }

    /** The guest's barrier: every write acknowledged before it is durable, data and bits. */
    public void flush() throws IOException {
        if (!readOnly) {
            image.flush();
        }
    }

    private void checkWritable() throws CorfsException {
        if (readOnly) {
            throw new CorfsException(Reason.READ_ONLY, name + " is mounted read-only");
        }
    }

    /**
     * Counts a write in flight, then refuses it if {@link #close} has begun: either close sees the count
     * and waits for it, or the write sees {@link #closed} and lands nothing (both are atomics, so one of
     * the two always sees the other). A write that passed here may still land after close's final flush
     * otherwise, into a local clean cluster whose in-use flag close then clears. The caller calls
     * {@link #exitWrite} in a finally block.
     */
    private void enterWrite() throws CorfsException {
        writersInFlight.incrementAndGet();
        if (closed.get()) {
            exitWrite();
            throw new CorfsException(Reason.IO, name + " is closing: the write was not served");
        }
    }

    private void exitWrite() {
        if (writersInFlight.decrementAndGet() == 0 && closed.get()) {
            synchronized (writersInFlight) {
                writersInFlight.notifyAll();
            }
        }
    }

    /** Waits (bounded) until no write is in flight; false if some still is. */
    private boolean drainWriters(long millis) {
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(millis);
        synchronized (writersInFlight) {
            while (writersInFlight.get() > 0) {
                long left = java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) {
                    return false;
                }
                try {
                    writersInFlight.wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return writersInFlight.get() == 0;
                }
            }
        }
        return true;
    }

    /** Fills the first and last cluster of [start, end) when they are partly covered and not local. */
    private void fillPartialEdges(long start, long end, long first, long last) throws IOException {
        if (!local.get(first) && (start != clusterStart(first) || end < clusterEnd(first))) {
            fillRun(first, first, null, 0, 0, 0, false, FetchPurpose.COPY_ON_READ);
            if (recorder != null) {
                recorder.record(first, first); // the guest's write waited for it
            }
        }
        if (last != first && !local.get(last) && end < clusterEnd(last)) {
            fillRun(last, last, null, 0, 0, 0, false, FetchPurpose.COPY_ON_READ);
            if (recorder != null) {
                recorder.record(last, last);
            }
        }
    }

    /**
     * The dirty bit goes ahead of the data (LeafImage's class comment): marks dirty every cluster of
     * [first, last] that is not, and if one of them is local, makes sure the in-use flag is durable (the
     * dirty bit itself is stored by the next flush) before the caller writes. Caller holds the
     * range lock, so no commit can clear the bits in between. Returns the clusters raised here, for
     * {@link #lowerDirty} if the write fails; allocates nothing when all are dirty already.
     */
    private long[] raiseDirty(long first, long last) throws IOException {
        ClusterBitmap dirty = image.dirty();
        long c = dirty.nextClear(first, last + 1);
        if (c > last) {
            return NONE;
        }
        long[] raised = new long[(int) (last - c + 1)];
        int n = 0;
        boolean wasLocal = false;
        for (; c <= last; c = dirty.nextClear(c + 1, last + 1)) {
            wasLocal |= local.get(c);
            image.markDirty(c);
            raised[n++] = c;
        }
        raised = java.util.Arrays.copyOf(raised, n);
        if (wasLocal) {
            try {
                image.markInUse();
            } catch (IOException | RuntimeException e) {
                lowerDirty(raised, false); // no flag: a later write must try again, not trust the bit
                throw e;
            }
        }
        return raised;
    }

    /**
     * A write failed: clears the dirty bits {@link #raiseDirty} raised, except where data may have
     * landed in a local cluster ({@code landing}), which stays dirty. A cluster that is not local
     * always goes back to clean: its data file content is ignored until a fill overwrites it.
     */
    private void lowerDirty(long[] raised, boolean landing) {
        for (long c : raised) {
            if (!landing || !local.get(c)) {
                image.clearDirty(c);
            }
        }
    }

    /**
     * A write or zeroing of [first, last] failed after its data began to land ({@code landing}): part of
     * it may be in the data file. Keeps what {@link #raiseDirty} raised on local clusters and marks every
     * local cluster of the range as touched since a commit copied it ({@link #redirtied}), as a completed
     * write does: a commit that copied one of them before would otherwise clear its dirty bit, and the leaf
     * would keep a change that no commit copies.
     */
    private void writeFailed(long first, long last, long[] raised, boolean landing) {
        lowerDirty(raised, landing);
        if (landing) {
            for (long c = local.nextSet(first, last + 1); c <= last; c = local.nextSet(c + 1, last + 1)) {
                redirtied.set(c);
            }
        }
    }

    /** The data is written: now the local bits may say so (dirty first, so a snapshot never splits them). */
    private void markWritten(long first, long last) {
        for (long c = first; c <= last; c++) {
            image.markDirty(c);
            image.markLocal(c);
            redirtied.set(c);
        }
        modifiedMillis.set(System.currentTimeMillis());
    }

    private long clusterStart(long cluster) {
        return cluster << clusterShift;
    }

    private long clusterEnd(long cluster) {
        return Math.min(size, (cluster + 1) << clusterShift);
    }

    // ------------------------------------------------------------------ fills

    /**
     * {@link #fillRun}, with the clusters [aheadFrom, last] marked as fetched ahead of the guest first (none
     * when {@code aheadFrom > last}, or when no profile is recorded) and unmarked if the fill fails.
     */
    private void fillRunMarkingAhead(long first, long last, ByteBuffer dst, int dstBase, long reqStart, long reqEnd,
                                     boolean serveDespiteStoreFailure, FetchPurpose purpose, long aheadFrom)
            throws IOException {
        boolean ahead = fetchedAhead != null && aheadFrom <= last;
        if (ahead) {
            markFetchedAhead(aheadFrom, last);
        }
        try {
            fillRun(first, last, dst, dstBase, reqStart, reqEnd, serveDespiteStoreFailure, purpose);
        } catch (IOException | RuntimeException e) {
            if (ahead) {
                unmarkFetchedAhead(aheadFrom, last);
            }
            throw e;
        }
    }

    /**
     * Copies the missing clusters [first, last] from the backing into the leaf and marks them local.
     * Caller holds the range lock covering them, and every one of them is missing. Holes of the backing
     * (SEEK_DATA) and all-zero clusters become holes in the leaf, never written data.
     *
     * <p>If {@code dst} is not null, the part of each fetched cluster that lies in [reqStart, reqEnd) is
     * copied to {@code dst} at {@code dstBase + (offset - reqStart)}: the read is served from the fetched
     * bytes. With {@code serveDespiteStoreFailure}, a failure to store (a full leaf filesystem) still
     * serves the read, leaving the clusters not local; otherwise it throws. Bytes read from the backing
     * are counted under {@code purpose}.
     */
    private void fillRun(long first, long last, ByteBuffer dst, int dstBase, long reqStart, long reqEnd,
                         boolean serveDespiteStoreFailure, FetchPurpose purpose) throws IOException {
        assert !local.get(first) && local.nextSet(first, last + 1) > last : "fill of local clusters";
        long pos = clusterStart(first);
        long stop = clusterEnd(last);
        int chunk = buffers.bufferSize();
        while (pos < stop) {
            // One question to the backing: what lies at pos. Clusters wholly inside a hole or a zero
            // extent become leaf holes without a read; a failure to answer is a failed read.
            Allocation at = backingAllocation(pos, stop);
            long extentEnd = pos + at.length();
            if (at.readsAsZeros()) {
                long holeEnd = extentEnd >= stop ? stop : clusterStart(extentEnd >>> clusterShift);
                if (holeEnd > pos) {
                    storeZeros(pos, holeEnd, dst, dstBase, reqStart, reqEnd, serveDespiteStoreFailure);
                    pos = holeEnd;
                    continue;
                }
                extentEnd = pos + 1; // a hole shorter than a cluster: read the cluster
            }
            // Read whole clusters up to the one holding the extent's end, one chunk at most
            // (pos is cluster-aligned and the chunk a multiple of the cluster size).
            long dataStop = Math.min(stop, Math.min(clusterEnd((extentEnd - 1) >>> clusterShift), pos + chunk));
            if (dst == null && purpose == FetchPurpose.STREAM) {
                // In the kernel, no buffer: the whole data extent of this run in one copy (a stream's run
                // is one step, at most COPY_STEP_BYTES of LeafJob).
                long copyStop = Math.min(stop, clusterEnd((extentEnd - 1) >>> clusterShift));
                if (copyStop - pos <= MAX_COPY && copyInKernel(pos, (int) (copyStop - pos))) {
                    fetched[purpose.ordinal()].add(copyStop - pos);
                    markLocalRange(pos, copyStop); // the data is in the leaf: now the bits may say so
                    pos = copyStop;
                    continue;
                }
            }
            ByteBuffer buf = buffers.acquire();
            boolean reusable = true;
            try {
                int n = (int) (dataStop - pos);
                buf.clear().limit(n);
                long token = readAheadBudget.begin();
                long delivered = 0;
                try {
                    backing.readFully(buf, pos);
                    delivered = n;
                } catch (BackingTimeoutException e) {
                    reusable = false; // an abandoned read may still write into buf: never pool it again
                    throw new BackingReadException(pos, n, e);
                } catch (IOException | RuntimeException e) {
                    throw new BackingReadException(pos, n, e);
                } finally {
                    readAheadBudget.end(token, delivered);
                }
                fetched[purpose.ordinal()].add(n);
                buf.flip();
                storeFetched(buf, pos, serveDespiteStoreFailure);
                serve(buf, pos, dst, dstBase, reqStart, reqEnd);
            } finally {
                if (reusable) {
                    buffers.release(buf);
                }
            }
            pos = dataStop;
        }
    }

    /**
     * A stream's data step without a buffer: the backing copies [pos, pos+n) into the leaf's data file
     * inside the kernel when it can ({@link Backing#copyTo}); false when it cannot, and the caller reads and
     * writes. The bytes are stored as they are: zero clusters inside the backing's data extents are written,
     * not punched (the backing's holes never get here). A copy that timed out may still be writing: the
     * {@link BackingReadException} carries the {@link corfs.backing.BackingTimeoutException}, and
     * {@link #fill} keeps the clusters locked until it returned.
     */
    private boolean copyInKernel(long pos, int n) throws IOException {
        if (readOnly) {
            return false;
        }
        long token = readAheadBudget.begin();
        long delivered = 0;
        try {
            boolean copied = backing.copyTo(pos, n, image.sparseData(), pos);
            delivered = copied ? n : 0;
            return copied;
        } catch (IOException | RuntimeException e) {
            if (IoFailures.isNoSpace(e)) {
                throw IoFailures.classify(e instanceof IOException io ? io : new IOException(e),
                        "the leaf's filesystem is full (" + image.dataPath() + ")");
            }
            throw new BackingReadException(pos, n, e);
        } finally {
            readAheadBudget.end(token, delivered);
        }
    }

    private void markLocalRange(long from, long to) {
        for (long c = from >>> clusterShift; c <= (to - 1) >>> clusterShift; c++) {
            image.markLocal(c);
        }
    }

    /** The backing's allocation at {@code pos}, up to {@code stop}; a failure is a failed backing read. */
    private Allocation backingAllocation(long pos, long stop) throws BackingReadException {
        try {
            return backing.allocation(pos, stop - pos);
        } catch (IOException | RuntimeException e) {
            throw new BackingReadException(pos, stop - pos, e);
        }
    }

    /** Stores fetched bytes [pos, pos+buf.remaining()) cluster by cluster: zeros as holes, others written. */
    private void storeFetched(ByteBuffer buf, long pos, boolean tolerateFailure) throws IOException {
        if (readOnly) {
            return; // a read-only mount changes no file: reads of missing clusters are served uncached
        }
        int n = buf.remaining();
        int off = 0;
        try {
            while (off < n) {
                int clusterLen = (int) Math.min(clusterSize - ((pos + off) & (clusterSize - 1)), n - off);
                boolean zero = isZero(buf, off, clusterLen);
                int runLen = clusterLen;
                while (off + runLen < n) {
                    int next = Math.min(clusterSize, n - off - runLen);
                    if (isZero(buf, off + runLen, next) != zero) {
                        break;
                    }
                    runLen += next;
                }
                if (zero) {
                    punchOrZero(pos + off, runLen);
                } else {
                    ByteBuffer slice = buf.duplicate();
                    slice.limit(off + runLen).position(off);
                    writeLeaf(slice, pos + off);
                }
                // data is in the leaf: now the bits may say so
                for (long c = (pos + off) >>> clusterShift; c <= (pos + off + runLen - 1) >>> clusterShift; c++) {
                    image.markLocal(c);
                }
                off += runLen;
            }
        } catch (IOException e) {
            if (!tolerateFailure) {
                throw e;
            }
            if (storeFailureLogged.compareAndSet(false, true)) {
                LOG.warn("{}: cannot store fetched data in the leaf ({}); serving reads from the backing uncached",
                        name, e.toString());
            }
        }
    }

    private void storeZeros(long from, long to, ByteBuffer dst, int dstBase, long reqStart, long reqEnd,
                            boolean tolerateFailure) throws IOException {
        try {
            if (readOnly) {
                throw new CorfsException(Reason.READ_ONLY, "read-only: nothing is stored");
            }
            if (leafHoldsData(from, to)) {
                punchOrZero(from, to - from);
            }
            for (long c = from >>> clusterShift; c <= (to - 1) >>> clusterShift; c++) {
                image.markLocal(c);
            }
        } catch (IOException e) {
            if (!tolerateFailure) {
                throw e;
            }
        }
        if (dst != null) {
            long a = Math.max(from, reqStart);
            long b = Math.min(to, reqEnd);
            for (long p = a; p < b; ) {
                int n = (int) Math.min(zeros.capacity(), b - p);
                dst.put(dstBase + (int) (p - reqStart), zeros, 0, n);
                p += n;
            }
        }
    }

    /**
     * False when the leaf's data file has no data in [from, to) (SEEK_DATA), so that range already reads
     * as zeros and needs no punch: a stream over a sparse backing then leaves its holes untouched (no
     * fallocate, and no fsync instead of fdatasync at the next flush). True when it has some, or cannot
     * tell. The caller holds the range lock, so nothing lands there in between.
     */
    private boolean leafHoldsData(long from, long to) {
        try {
            long next = image.sparseData().nextData(from);
            return next >= 0 && next < to;
        } catch (IOException | RuntimeException e) {
            return true;
        }
    }

    private static void serve(ByteBuffer buf, long bufOffset, ByteBuffer dst, int dstBase, long reqStart, long reqEnd) {
        if (dst == null) {
            return;
        }
        long a = Math.max(bufOffset, reqStart);
        long b = Math.min(bufOffset + buf.limit(), reqEnd);
        if (a < b) {
            dst.put(dstBase + (int) (a - reqStart), buf, (int) (a - bufOffset), (int) (b - a));
        }
    }

    private boolean isZero(ByteBuffer buf, int off, int len) {
        ByteBuffer a = buf.duplicate();
        a.limit(off + len).position(off);
        ByteBuffer z = zeros.duplicate();
        z.limit(len);
        return a.mismatch(z) < 0;
    }

    private void punchOrZero(long offset, long length) throws IOException {
        try {
            image.punchHole(offset, length);
        } catch (IOException e) {
            if (IoFailures.isNoSpace(e)) {
                throw IoFailures.classify(e, "the leaf's filesystem is full (" + image.dataPath() + ")");
            }
            LOG.debug("{}: punch hole failed ({}); writing zeros", name, e.toString());
            writeZeros(offset, offset + length);
        }
    }

    private void writeZeros(long from, long to) throws IOException {
        for (long p = from; p < to; ) {
            int n = (int) Math.min(zeros.capacity(), to - p);
            ByteBuffer z = zeros.duplicate();
            z.limit(n);
            writeLeaf(z, p);
            p += n;
        }
    }

    private void writeLeaf(ByteBuffer src, long offset) throws IOException {
        long pos = offset;
        try {
            while (src.hasRemaining()) {
                pos += data.write(src, pos);
            }
        } catch (IOException e) {
            throw IoFailures.classify(e, "the leaf's filesystem is full (" + image.dataPath() + ")");
        }
    }

    // ------------------------------------------------------------------ job steps

    /**
     * Stream step: makes every cluster in [first, last] local, fetching the missing ones; the bytes count
     * as {@link FetchPurpose#STREAM}.
     */
    public void fill(long first, long last) throws IOException {
        fill(first, last, FetchPurpose.STREAM);
    }

    /**
     * Makes every cluster in [first, last] local, fetching the missing ones (the stream's, read-ahead's and
     * prefetch's step); the bytes read from the backing count under {@code purpose}.
     */
    public void fill(long first, long last, FetchPurpose purpose) throws IOException {
        checkWritable();
        ClusterRangeLock.Held held = locks.lock(first, last);
        boolean release = true;
        try {
            long c = local.nextClear(first, last + 1);
            while (c <= last) {
                long runEnd = local.nextSet(c, last + 1);
                fillRunMarkingAhead(c, runEnd - 1, null, 0, 0, 0, false, purpose,
                        purpose == FetchPurpose.READ_AHEAD ? c : runEnd); // only read-ahead is fetched ahead
                c = runEnd <= last ? local.nextClear(runEnd, last + 1) : last + 1;
            }
        } catch (BackingReadException e) {
            if (e.getCause() instanceof BackingTimeoutException abandoned && abandoned.stillWriting().isPresent()) {
                // An abandoned in-kernel copy may still write into these clusters: nobody else (a guest
                // write above all) may touch them before it returned. They hold no local data, so only I/O
                // to these few clusters waits, as long as the backing does not answer.
                release = false;
                abandoned.stillWriting().get().whenComplete((v, t) -> held.close());
            }
            throw e;
        } finally {
            if (release) {
                held.close();
            }
        }
    }

    /**
     * What the backing holds from cluster {@code first} on, in whole clusters, for a scheduler that issues
     * fills ahead ({@code StreamStep}): one allocation call. {@code zeros}: clusters [first, end) lie
     * wholly in a hole or zero extent (end &gt; first); otherwise clusters [first, end) may hold data
     * (end &gt; first; a failure to answer says data for one cluster, and the fill that follows reports it).
     */
    public record BackingExtent(boolean zeros, long end) {
    }

    /** See {@link BackingExtent}; {@code first} &lt; {@link #clusters()}. */
    public BackingExtent backingExtent(long first) {
        if (backing == null) {
            return new BackingExtent(false, first + 1);
        }
        try {
            long start = clusterStart(first);
            Allocation at = backing.allocation(start, size - start);
            long end = start + at.length();
            if (at.readsAsZeros()) {
                long holeEnd = end >= size ? clusters : end >>> clusterShift;
                if (holeEnd > first) {
                    return new BackingExtent(true, holeEnd);
                }
                return new BackingExtent(false, first + 1); // a hole shorter than a cluster: read it
            }
            return new BackingExtent(false, Math.min(clusters, (end + clusterSize - 1) >>> clusterShift));
        } catch (IOException | RuntimeException e) {
            return new BackingExtent(false, first + 1);
        }
    }

    /**
     * Commit step, first half: copies the dirty clusters of [first, last] to the backing (not yet
     * durable) and returns them, so {@link #markCommitted} can clear their dirty bits once the backing
     * has been flushed.
     */
    public long[] copyDirtyToBacking(long first, long last, Backing.Writer writer) throws IOException {
        ClusterBitmap dirty = image.dirty();
        long[] copied = new long[(int) (last - first + 1)];
        int count = 0;
        try (ClusterRangeLock.Held held = locks.lock(first, last)) {
            ByteBuffer buf = buffers.acquire();
            try {
                long c = dirty.nextSet(first, last + 1);
                while (c <= last) {
                    long runEnd = Math.min(dirty.nextClear(c, last + 1),
                            c + Math.max(1, buffers.bufferSize() >>> clusterShift));
                    long from = clusterStart(c);
                    long to = clusterEnd(runEnd - 1);
                    buf.clear().limit((int) (to - from));
                    readLeaf(buf, from);
                    buf.flip();
                    if (isZero(buf, 0, buf.limit())) {
                        writer.writeZeroes(from, to - from); // NBD: WRITE_ZEROES, no data on the wire
                    } else {
                        writer.writeFully(buf, from);
                    }
                    for (long k = c; k < runEnd; k++) {
                        redirtied.clear(k);
                        copied[count++] = k;
                    }
                    c = runEnd <= last ? dirty.nextSet(runEnd, last + 1) : last + 1;
                }
            } finally {
                buffers.release(buf);
            }
        }
        return java.util.Arrays.copyOf(copied, count);
    }

    /**
     * Commit step, second half: the backing holding {@code copied} is durable; clears the dirty bit of
     * each cluster that no write touched since it was copied.
     */
    public long markCommitted(long[] copied) {
        if (copied.length == 0) {
            return 0;
        }
        long committed = 0;
        try (ClusterRangeLock.Held held = locks.lock(copied[0], copied[copied.length - 1])) {
            for (long c : copied) {
                if (!redirtied.get(c)) {
                    image.clearDirty(c);
                    committed += clusterEnd(c) - clusterStart(c);
                }
            }
        }
        return committed;
    }

    /** Clusters in all. */
    public long clusters() {
        return clusters;
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        readAhead.close();
        if (!readOnly && !drainWriters(CLOSE_DRAIN_MILLIS)) {
            // one may still land after the final flush: the next open must count every local cluster dirty
            LOG.warn("{}: {} write(s) still in flight after {} s; the leaf stays marked in use", name,
                    writersInFlight.get(), CLOSE_DRAIN_MILLIS / 1000);
            image.keepInUse();
        }
        try (image) {
            if (backing != null) {
                try {
                    backing.close();
                } catch (IOException | RuntimeException e) {
                    // Nothing of ours is lost when a read-only handle fails to close (a dead NFS mount says
                    // ENOTCONN): the leaf's flush, which follows, is what decides whether unmount was clean.
                    LOG.warn("{}: closing the backing failed: {}", name, e.toString());
                }
            }
        }
    }

    @Override
    public String toString() {
        return "LeafDisk[" + name + "]";
    }
}
