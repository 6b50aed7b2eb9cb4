package corfs.backing.nbd;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingTimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * An NBD export as a {@link Backing}: a small pool of {@link NbdConnection}s, each with many requests in
 * flight, that rides out a server restart.
 *
 * <h2>Parallelism</h2>
 * A read is cut into pieces of {@link #pieceSize()} (the server's preferred block size, at least 256 KiB,
 * at most its maximum: qemu-nbd serves 128-256 KiB requests best) sent at once and spread round-robin
 * over the live connections. How many connections: the NBD specification says a client SHOULD NOT
 * spread requests over several connections unless the server advertises {@code CAN_MULTI_CONN}, because
 * without it a FLUSH on one connection need not cover writes made on another and caches need not be
 * shared. So corfs opens {@code connections} (default {@value #DEFAULT_CONNECTIONS}) when the server
 * advertises multi-conn and one otherwise, unless {@code connections=N} is given explicitly: then the user
 * asserts that reads over several connections are consistent (a read-only source that nobody writes, the
 * post-copy case) and gets N. The commit writer never spreads: its writes and its FLUSH all go over one
 * connection, so FLUSH covers them whatever the server advertises. Only the first connection is opened
 * by {@link #open}; the others are opened in the background (a server that takes one client at a time,
 * like qemu-nbd without {@code -e}, must not hang the open).
 *
 * <h2>Faults</h2>
 * <ul>
 * <li>A connection that dies (server gone, framing lost, an unknown cookie, a short read) fails its
 *     requests in flight; a read piece failed that way is sent again over another live connection (reads
 *     are idempotent) once the dead connection's reader thread has stopped, so that it can no longer
 *     copy into the caller's buffer. Writes are never sent again: the writer becomes unusable and the
 *     commit fails (its dirty bits stay set).</li>
 * <li>The keeper thread {@code corfs-nbd-keeper-N} reopens missing connections with exponential backoff
 *     (100 ms doubling to 5 s). Every new connection is checked before it serves anything: same size and
 *     the same content in the sampled blocks as when the backing was opened (see {@link #identity()}).
 *     One attempt is bounded apart from the call timeout: the connect and handshake by the connect
 *     timeout, the sample reads by as much again; an attempt that runs out is closed and retried, so a
 *     server that accepted and then stalls never holds the keeper (with a mount's
 *     {@code backing_timeout=0} the call timeout is a day).
 *     A different disk sets a sticky "backing changed" failure: every later call fails with it.</li>
 * <li>Every call waits at most {@code timeout} (default 30 s) in all, for a connection and for the
 *     server, then fails naming the server. A request still in flight when its call gives up is
 *     abandoned: the call throws {@link BackingTimeoutException}, the signal to drop the buffer. Any other
 *     failure is thrown only after every piece of the read has finished, so the buffer is never written
 *     after a call returned, except after a {@link BackingTimeoutException}.</li>
 * </ul>
 *
 * <h2>Threads and locks</h2>
 * Callers' threads send requests and wait for their futures with a deadline; futures complete on the
 * connections' reader threads, and nothing here ever blocks on one of those. The keeper thread alone
 * opens connections and installs them in {@code slots} (and lowers {@code target}); callers only read
 * them. Two monitors, never nested: {@code signal} wakes callers waiting for a connection (one was
 * installed, the backing changed or closed); {@code keeperSignal} wakes the keeper's idle poll when a
 * caller found a dead connection (never its backoff, so callers cannot make it hammer a server), and
 * at close. Every wait on either is bounded. A {@link Sample}'s monitor guards its fields and is never
 * held while waiting for the server. No thread is ever interrupted.
 */
public final class NbdBacking implements Backing {
    private static final Logger LOG = LoggerFactory.getLogger(NbdBacking.class);
    private static final AtomicInteger IDS = new AtomicInteger();

    /** Connections opened when the server advertises multi-conn and {@code connections} is not given. */
    public static final int DEFAULT_CONNECTIONS = 4;
    /** The per-call deadline when {@code timeout} is not given. */
    public static final long DEFAULT_TIMEOUT_SECONDS = 30;
    /** Smallest read piece: below this a network round trip costs more than the bytes. */
    static final int MIN_PIECE = 256 * 1024;
    /** Requests worth keeping in flight per connection. */
    private static final int DEPTH_PER_CONNECTION = 8;
    /** Bytes of each identity sample. */
    static final int SAMPLE_BYTES = 4096;
    /** Spread samples at k/8 of the size, k = 1..7, besides the first and last blocks. */
    private static final int SPREAD = 8;
    private static final long BACKOFF_MIN_MILLIS = 100;
    private static final long BACKOFF_MAX_MILLIS = 5000;
    /** Bound on waiting for a dead connection's reader before a piece is sent again, and on joins. */
    private static final long STOP_WAIT_MILLIS = 2000;
    /** Connect deadline of an extra connection while others serve. */
    private static final java.time.Duration EXTRA_CONNECT_TIMEOUT = java.time.Duration.ofSeconds(5);
    /** Sends of one read piece over connections that died under it. */
    private static final int MAX_ATTEMPTS = 3;

    private final NbdUri uri;
    private final NbdOptions options;
    private final long timeoutNanos;
    private final int id;
    private final long size;
    private final BlockSizes blockSizes;
    private final int pieceSize;
    private final boolean readOnly;
    private final boolean canFlush;
    private final AtomicReferenceArray<NbdConnection> slots;
    /** Slots the keeper fills: all of them, fewer once the server refused more clients. Written by the keeper. */
    private volatile int target;
    private final List<Sample> samples;
    private final Object signal = new Object();
    private final Object keeperSignal = new Object();
    /** Set by a caller that found a dead connection; the keeper's idle poll clears it. Guarded by keeperSignal. */
    private boolean kicked;
    private final AtomicLong nextSlot = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Thread keeper;
    /** Sticky: set once when a reconnected server serves another disk. */
    private volatile CorfsException changed;
    /** Why the last connection attempt or connection failed, for messages while none is up. */
    private volatile String lastFailure = "not connected yet";
    /** Bumped on every install, change and close: callers wait for it to move. Guarded by {@code signal}. */
    private long installs;

    private NbdBacking(NbdUri uri, NbdOptions options, int connections, NbdConnection first, long deadline)
            throws IOException {
        this.uri = uri;
        this.options = options;
        this.timeoutNanos = options.timeout().toNanos();
        this.id = IDS.incrementAndGet();
        this.size = first.size();
        this.blockSizes = first.blockSizes();
        int piece = Math.max(MIN_PIECE, blockSizes.preferred());
        piece = Math.min(piece, blockSizes.maximum());
        this.pieceSize = Math.max(blockSizes.minimum(), piece - piece % blockSizes.minimum());
        this.readOnly = first.readOnly();
        this.canFlush = first.canFlush();
        this.slots = new AtomicReferenceArray<>(connections);
        this.target = connections;
        this.samples = sampleLayout(size, blockSizes.minimum());
        byte[][] now = readSamples(first, deadline, timeoutNanos);
        for (int i = 0; i < now.length; i++) {
            samples.get(i).expected = now[i];
        }
        slots.set(0, first);
        this.keeper = new Thread(this::keeperMain, "corfs-nbd-keeper-" + id);
        this.keeper.setDaemon(true);
    }

    /**
     * Connects to {@code uri} (the first connection, synchronously: an unreachable server or a refused
     * handshake fails here with a message naming the server), samples the blocks of its identity and
     * starts the keeper, which opens the other connections. Takes at most about the timeout (the
     * connect's deadline; the samples get what is left of it).
     *
     * @param connections   connections wanted (1 to 64), or 0 for the default rule (see the class comment)
     */
    public static NbdBacking open(NbdUri uri, NbdOptions options, int connections) throws IOException {
        if (options.timeout().isZero()) {
            throw new IllegalArgumentException("an NBD backing needs a timeout");
        }
        long deadline = System.nanoTime() + options.timeout().toNanos(); // the whole open: connect and samples
        NbdConnection first = NbdClient.connect(uri, options);
        NbdBacking b;
        try {
            int n = connections > 0 ? connections : first.canMultiConn() ? DEFAULT_CONNECTIONS : 1;
            b = new NbdBacking(uri, options, n, first, deadline);
        } catch (IOException | RuntimeException e) {
            first.close();
            throw e;
        }
        b.keeper.start();
        LOG.info("{}: opened, {} bytes, {} connection(s){}, {}, block status {}", uri, b.size, b.slots.length(),
                first.canMultiConn() ? " (multi-conn)" : "", first.blockSizes(), first.hasBlockStatus());
        return b;
    }

    // ---------------------------------------------------------------- Backing

    @Override
    public String location() {
        return uri.toString();
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public int maxInFlight() {
        return Math.min(64, target * DEPTH_PER_CONNECTION);
    }

    /** Bytes per read request. */
    public int pieceSize() {
        return pieceSize;
    }

    /** Connections the pool keeps open (fewer than asked once the server refused more clients). */
    public int connections() {
        return target;
    }

    /** Connections open right now. */
    public int liveConnections() {
        int n = 0;
        for (int i = 0; i < slots.length(); i++) {
            NbdConnection c = slots.get(i);
            n += c != null && c.isOpen() ? 1 : 0;
        }
        return n;
    }

    /**
     * Size and a SHA-256 over the sampled blocks as they read now: the first and the last
     * {@value #SAMPLE_BYTES} bytes and as many at each eighth of the export. It tells a different disk
     * from the one recorded (another image behind the same address), not a change confined to blocks
     * that were not sampled: NBD has nothing like an ETag. The token is {@code nbd:SIZE:HEX}; the
     * description names the export (its URI holds no secret: corfs refuses user names in it, and TLS
     * material is given as options).
     */
    @Override
    public BackingIdentity identity() throws IOException {
        checkUsable();
        byte[][] now = new byte[samples.size()][];
        List<Piece> pieces = new ArrayList<>();
        for (int i = 0; i < now.length; i++) {
            Sample s = samples.get(i);
            now[i] = new byte[s.length];
            pieces.add(new Piece(s.offset, ByteBuffer.wrap(now[i]))); // a sample is far below a piece
        }
        complete(pieces, System.nanoTime() + timeoutNanos); // all in flight at once: one round trip
        return identityOf(fingerprint(now));
    }

    private BackingIdentity identityOf(String hex) {
        String tail = " size=" + size + " sampled-sha256=" + hex.substring(0, 16);
        String name = "nbd " + uri;
        int room = BackingIdentity.MAX_DESCRIPTION_BYTES - tail.length();
        if (name.length() > room) {
            name = name.substring(0, room - 3) + "...";
        }
        return BackingIdentity.of("nbd:" + size + ":" + hex, name + tail, size);
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        int length = dst.remaining();
        if (offset < 0 || offset > size || length > size - offset) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, uri + ": read at " + offset + "+" + length
                    + " is outside the export (" + size + " bytes)");
        }
        read(dst, offset, System.nanoTime() + timeoutNanos);
    }

    /** Reads {@code dst.remaining()} bytes at {@code offset} in pieces, advancing the position. */
    private void read(ByteBuffer dst, long offset, long deadline) throws IOException {
        checkUsable();
        int length = dst.remaining();
        if (length == 0) {
            return;
        }
        int base = dst.position();
        List<Piece> pieces = new ArrayList<>((length + pieceSize - 1) / pieceSize);
        for (int done = 0; done < length; done += pieceSize) {
            int n = Math.min(pieceSize, length - done);
            pieces.add(new Piece(offset + done, dst.slice(base + done, n)));
        }
        complete(pieces, deadline);
        dst.position(base + length);
    }

    /**
     * Sends every piece, then waits for all of them. Throws the first failure only once no piece can
     * write into its buffer any more, except a {@link BackingTimeoutException} (the caller drops the buffers).
     */
    private void complete(List<Piece> all, long deadline) throws IOException {
        List<Piece> pieces = new ArrayList<>(all.size());
        IOException first = null;
        for (Piece p : all) {
            try {
                send(p, deadline);
            } catch (IOException e) {
                first = e; // no connection: wait for the pieces already sent, then fail
                break;
            }
            pieces.add(p);
        }
        for (Piece p : pieces) {
            IOException e = await(p, deadline);
            if (e instanceof BackingTimeoutException) {
                throw e; // pieces may still land in dst: the caller drops it
            }
            if (e != null && first == null) {
                first = e; // keep waiting for the others: dst must be quiet when we throw
            }
        }
        if (first != null) {
            throw first;
        }
    }

    /** One read request: its range, its slice of the caller's buffer, the connection it went over. */
    private static final class Piece {
        final long offset;
        final ByteBuffer target;
        NbdConnection connection;
        CompletableFuture<Void> future;
        int attempts;

        Piece(long offset, ByteBuffer target) {
            this.offset = offset;
            this.target = target;
        }
    }

    private void send(Piece p, long deadline) throws IOException {
        p.connection = connection(deadline);
        p.attempts++;
        p.future = p.connection.read(p.offset, p.target);
    }

    /**
     * Waits for a piece, sending it again over another connection when its own died under it. Returns
     * its failure (a {@link BackingTimeoutException} when it may still write into its buffer), or null.
     */
    private IOException await(Piece p, long deadline) throws IOException {
        while (true) {
            Throwable cause;
            try {
                p.future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                return null;
            } catch (TimeoutException e) {
                return timedOut("read at " + p.offset);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return new BackingTimeoutException(uri + ": interrupted while reading at " + p.offset, e);
            } catch (ExecutionException e) {
                cause = e.getCause();
            }
            if (cause instanceof NbdTimeoutException) {
                return new BackingTimeoutException(cause.getMessage(), cause);
            }
            NbdConnection c = p.connection;
            if (c.isOpen()) {
                return asIo(cause); // the server refused this request; the connection is fine
            }
            // The connection died. Its reader may be copying a last chunk into our slice: wait for it
            // to stop before anyone else writes there, or before the caller gets the buffer back.
            connectionLost(c);
            if (!c.awaitReaderStopped(STOP_WAIT_MILLIS)) {
                return new BackingTimeoutException(uri + ": connection failed and its reader did not stop", cause);
            }
            if (p.attempts >= MAX_ATTEMPTS || System.nanoTime() >= deadline) {
                return asIo(cause);
            }
            try {
                send(p, deadline);
            } catch (IOException e) {
                return e;
            }
        }
    }

    /**
     * What lies at {@code offset}, from {@code base:allocation} block status: hole and zero is
     * {@link Allocation.Kind#HOLE}, zero alone {@link Allocation.Kind#ZERO}, anything else (a hole that
     * may not read as zeros included) {@link Allocation.Kind#DATA}. A connection without block status
     * answers {@link Allocation.Kind#UNKNOWN} for the whole range. Never past the size.
     */
    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        if (offset < 0 || offset >= size || max <= 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, uri + ": allocation at " + offset + " (max " + max
                    + ") is outside the export (" + size + " bytes)");
        }
        long length = Math.min(max, size - offset);
        long deadline = System.nanoTime() + timeoutNanos;
        for (int attempt = 1; ; attempt++) {
            checkUsable();
            NbdConnection c = connection(deadline);
            if (!c.hasBlockStatus()) {
                return new Allocation(Allocation.Kind.UNKNOWN, length);
            }
            try {
                List<NbdExtent> extents = c.blockStatus(offset, length)
                        .get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                return merge(extents, offset, length);
            } catch (TimeoutException e) {
                throw timedOut("block status at " + offset);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CorfsException(Reason.IO, uri + ": interrupted while asking block status at " + offset);
            } catch (ExecutionException e) {
                if (c.isOpen() || e.getCause() instanceof NbdTimeoutException || attempt >= MAX_ATTEMPTS
                        || System.nanoTime() >= deadline) {
                    throw asIo(e.getCause());
                }
                connectionLost(c);
            }
        }
    }

    /** The first extent's kind and how far consecutive extents of that kind go, within [offset, +length). */
    private Allocation merge(List<NbdExtent> extents, long offset, long length) throws CorfsException {
        if (extents.isEmpty() || extents.get(0).offset() != offset) {
            throw new CorfsException(Reason.IO, uri + ": block status at " + offset + " answered " + extents);
        }
        Allocation.Kind kind = kindOf(extents.get(0));
        long end = offset;
        for (NbdExtent e : extents) {
            if (e.offset() != end || kindOf(e) != kind) {
                break;
            }
            end = e.end();
        }
        return new Allocation(kind, Math.min(end, offset + length) - offset);
    }

    private static Allocation.Kind kindOf(NbdExtent e) {
        if (e.zero()) {
            return e.hole() ? Allocation.Kind.HOLE : Allocation.Kind.ZERO;
        }
        return Allocation.Kind.DATA;
    }

    /**
     * A writer over one connection (so that its FLUSH covers its writes whatever the server advertises).
     * READ_ONLY when the export is; NOT_SUPPORTED when the server offers no FLUSH: its writes could not
     * be made durable before the commit clears dirty bits, and corfs does not pretend (QEMU would treat
     * such a server as write-through; a silently lost write is worse than a refused commit).
     */
    @Override
    public Writer openWriter() throws IOException {
        checkUsable();
        if (readOnly) {
            throw new CorfsException(Reason.READ_ONLY, uri + ": the export is read-only");
        }
        if (!canFlush) {
            throw new CorfsException(Reason.NOT_SUPPORTED, uri + ": the server offers no flush, so a commit could"
                    + " not make its writes durable");
        }
        return new NbdWriter(connection(System.nanoTime() + timeoutNanos));
    }

    /** Stops the keeper (bounded wait) and closes every connection. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        wake();
        if (keeper.getState() != Thread.State.NEW && keeper != Thread.currentThread()) {
            try {
                keeper.join(STOP_WAIT_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (keeper.isAlive()) {
                // it is inside a connect, bounded by the connect timeout; it closes what it opens
                LOG.warn("{}: {} still connecting at close; it will close its connection itself", uri, keeper.getName());
            }
        }
        for (int i = 0; i < slots.length(); i++) {
            NbdConnection c = slots.getAndSet(i, null);
            if (c != null) {
                c.close();
            }
        }
    }

    @Override
    public String toString() {
        return "NbdBacking[" + uri + ", " + liveConnections() + "/" + slots.length() + " connections]";
    }

    // ---------------------------------------------------------------- the pool

    private void checkUsable() throws CorfsException {
        CorfsException c = changed;
        if (c != null) {
            throw new CorfsException(c.reason(), c.getMessage());
        }
        if (closed.get()) {
            throw new CorfsException(Reason.IO, uri + ": backing closed");
        }
    }

    /** A live connection, the next one round-robin; waits (until {@code deadline}) while none is up. */
    private NbdConnection connection(long deadline) throws IOException {
        while (true) {
            checkUsable();
            long seen;
            synchronized (signal) {
                seen = installs;
            }
            int n = slots.length();
            long start = nextSlot.getAndIncrement();
            boolean dead = false;
            for (int i = 0; i < n; i++) {
                NbdConnection c = slots.get((int) ((start + i) % n));
                if (c != null && c.isOpen()) {
                    if (dead) {
                        kick();
                    }
                    return c;
                }
                dead |= c != null;
            }
            if (dead) {
                kick();
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new CorfsException(Reason.IO, uri + ": no connection to the server within "
                        + seconds(timeoutNanos) + " (" + lastFailure + ")");
            }
            synchronized (signal) {
                if (installs == seen && changed == null && !closed.get()) {
                    try {
                        signal.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 100)));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new CorfsException(Reason.IO, uri + ": interrupted while waiting for a connection");
                    }
                }
            }
        }
    }

    private void connectionLost(NbdConnection c) {
        IOException f = c.failure();
        if (f != null) {
            lastFailure = "connection failed: " + (f.getMessage() == null ? f.toString() : f.getMessage());
        }
        kick();
    }

    /** Wakes callers waiting for a connection (one was installed, or the backing changed or closed). */
    private void wake() {
        synchronized (signal) {
            installs++;
            signal.notifyAll();
        }
        synchronized (keeperSignal) {
            keeperSignal.notifyAll(); // only close() and the keeper itself call wake(): lets a closing keeper out
        }
    }

    /** Tells the keeper a connection died, ending its idle poll early (not its backoff). */
    private void kick() {
        synchronized (keeperSignal) {
            if (!kicked) {
                kicked = true;
                keeperSignal.notifyAll();
            }
        }
    }

    /** The keeper: opens missing connections, checks each, installs it; backs off while the server is away. */
    private void keeperMain() {
        long backoff = BACKOFF_MIN_MILLIS;
        boolean outage = false;
        while (!closed.get() && changed == null) {
            int missing = -1;
            for (int i = 0; i < target && missing < 0; i++) {
                NbdConnection c = slots.get(i);
                if (c == null || !c.isOpen()) {
                    missing = i;
                }
            }
            if (missing < 0) {
                pause(200, true);
                continue;
            }
            NbdConnection old = slots.get(missing);
            if (old != null) {
                if (!outage) {
                    LOG.warn("{}: connection lost ({}); reconnecting in the background", uri,
                            old.failure() == null ? "closed" : old.failure().getMessage());
                }
                outage = true;
                old.close();
            }
            boolean othersLive = liveConnections() > 0;
            try {
                // an extra connection while others serve: a short deadline, since a server that takes
                // fewer clients (qemu-nbd without -e) leaves it hanging before the handshake
                NbdOptions attempt = othersLive
                        ? options.withConnectTimeout(min(options.connectTimeout(), EXTRA_CONNECT_TIMEOUT)) : options;
                NbdConnection c = NbdClient.connect(uri, attempt);
                // the check gets the connect's bound too, not the call timeout (a day with backing_timeout=0):
                // a server that completed the handshake and then stalls must not hold the keeper, which
                // retries with backoff so that a server that comes back is used
                if (!admit(c, attempt.connectTimeout().toNanos())) {
                    return;
                }
                if (!slots.compareAndSet(missing, old, c) || closed.get()) {
                    c.close();
                    continue;
                }
                if (outage) {
                    LOG.info("{}: reconnected", uri);
                    outage = false;
                }
                backoff = BACKOFF_MIN_MILLIS;
                wake();
            } catch (IOException | RuntimeException e) {
                if (othersLive && old == null && missing > 0 && changed == null && !closed.get()) {
                    target = missing;
                    LOG.info("{}: the server takes no more connections ({}); using {}", uri, e.getMessage(), missing);
                    continue;
                }
                lastFailure = e.getMessage();
                LOG.debug("{}: connecting failed: {}; next attempt in {} ms", uri, e.getMessage(), backoff);
                pause(backoff, false);
                backoff = Math.min(BACKOFF_MAX_MILLIS, backoff * 2);
            }
        }
    }

    /**
     * Checks a new connection serves the same disk: same size, same sampled blocks (samples that a write
     * of this backing's writer may have changed are adopted instead of compared). False (and the
     * connection closed) when the backing is closed or changed; throws when the check could not be made.
     */
    private boolean admit(NbdConnection c, long boundNanos) throws IOException {
        try {
            if (closed.get()) {
                c.close();
                return false;
            }
            if (c.size() != size) {
                return changed(c, "its size is " + c.size() + " bytes, was " + size);
            }
            BlockSizes bs = c.blockSizes();
            if (bs.maximum() < pieceSize || pieceSize % bs.minimum() != 0 || blockSizes.minimum() % bs.minimum() != 0) {
                // our pieces would be split or widened differently: refuse rather than reason about it
                throw new NbdException(Reason.IO, uri + ": the server's block sizes changed (" + bs + ", were "
                        + blockSizes + ")");
            }
            long[] versions = new long[samples.size()];
            for (int i = 0; i < versions.length; i++) {
                versions[i] = samples.get(i).version();
            }
            byte[][] now = readSamples(c, System.nanoTime() + boundNanos, boundNanos);
            for (int i = 0; i < now.length; i++) {
                Sample s = samples.get(i);
                synchronized (s) {
                    if (s.writing > 0 || s.version != versions[i]) {
                        continue; // our own writer moved it while we read: no verdict either way
                    }
                    if (s.doubt) {
                        s.expected = now[i]; // a write of ours failed: what the server holds stands
                        s.doubt = false;
                    } else if (!Arrays.equals(s.expected, now[i])) {
                        return changed(c, "the block at " + s.offset + " differs");
                    }
                }
            }
            return true;
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private boolean changed(NbdConnection c, String why) {
        c.close();
        changed = new CorfsException(Reason.IO, uri + ": backing changed: the server now serves another disk ("
                + why + "); refusing to mix two disks");
        LOG.error("{}", changed.getMessage());
        wake();
        return false;
    }

    /** The keeper's sleep: until {@code millis} passed or the backing closed (or, if kickable, a kick). */
    private void pause(long millis, boolean kickable) {
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        synchronized (keeperSignal) {
            long left;
            while (!closed.get() && !(kickable && kicked) && (left = until - System.nanoTime()) > 0) {
                try {
                    keeperSignal.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
            kicked = false;
        }
    }

    // ---------------------------------------------------------------- identity samples

    /**
     * One sampled block of the identity. {@code expected} is what the server held at open, kept in step
     * with our own writer's acknowledged writes; {@code writing} counts our writes to it in flight,
     * {@code version} moves when one starts or ends, and {@code doubt} says a write of ours failed so its
     * outcome is unknown. A reconnect compares only samples no write touched meanwhile and adopts the
     * doubtful ones, so our own commit is never taken for another disk. Guarded by the sample's monitor.
     */
    static final class Sample {
        final long offset;
        final int length;
        byte[] expected;
        int writing;
        long version;
        boolean doubt;

        Sample(long offset, int length) {
            this.offset = offset;
            this.length = length;
        }

        synchronized long version() {
            return version;
        }

        boolean overlaps(long from, long n) {
            return from < offset + length && offset < from + n;
        }
    }

    /** First and last blocks and one at each eighth, aligned to the minimum block size, without repeats. */
    static List<Sample> sampleLayout(long size, int minimum) {
        List<Sample> out = new ArrayList<>();
        if (size == 0) {
            return out;
        }
        long block = Math.max(SAMPLE_BYTES, minimum);
        TreeSet<Long> offsets = new TreeSet<>();
        offsets.add(0L);
        for (int k = 1; k < SPREAD; k++) {
            offsets.add(size / SPREAD * k / block * block);
        }
        offsets.add(Math.max(0, (size - block) / minimum * minimum));
        for (long o : offsets) {
            if (o < size) {
                out.add(new Sample(o, (int) Math.min(block, size - o)));
            }
        }
        return out;
    }

    /** Reads the samples over {@code c} by {@code deadline} ({@code boundNanos} after the start, for the message). */
    private byte[][] readSamples(NbdConnection c, long deadline, long boundNanos) throws IOException {
        List<CompletableFuture<Void>> reads = new ArrayList<>();
        byte[][] out = new byte[samples.size()][];
        for (int i = 0; i < out.length; i++) {
            Sample s = samples.get(i);
            out[i] = new byte[s.length];
            reads.add(c.read(s.offset, ByteBuffer.wrap(out[i])));
        }
        try {
            CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0]))
                    .get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new CorfsException(Reason.IO, uri + ": reading the identity samples took over "
                    + seconds(boundNanos));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, uri + ": interrupted while reading the identity samples");
        } catch (ExecutionException e) {
            throw asIo(e.getCause());
        }
        return out;
    }

    private String fingerprint(byte[][] blocks) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(ByteBuffer.allocate(8).putLong(size).array());
            for (int i = 0; i < blocks.length; i++) {
                sha.update(ByteBuffer.allocate(8).putLong(samples.get(i).offset).array());
                sha.update(blocks[i]);
            }
            return HexFormat.of().formatHex(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 missing from the JVM", e);
        }
    }

    // ---------------------------------------------------------------- the writer

    /**
     * Commit's access: writes, zeroes and FLUSH over one connection. After that connection dies or a
     * call times out, the writer refuses everything but {@link #close}: acknowledged writes not yet
     * flushed may be lost, so the commit must fail and run again with a new writer. Writes are copied
     * first (into 256 KiB pieces at most), so a request still queued after its call gave up never reads
     * the caller's buffer.
     */
    /** Sends a request; what {@link NbdWriter#effect} runs once the samples it touches are marked. */
    @FunctionalInterface
    private interface IoSupplier {
        CompletableFuture<Void> get() throws IOException;
    }

    private final class NbdWriter implements Writer {
        private final NbdConnection c;
        private volatile String broken;
        private final AtomicBoolean writerClosed = new AtomicBoolean();

        NbdWriter(NbdConnection c) {
            this.c = c;
        }

        private void checkWritable(String what, long offset, long length) throws IOException {
            checkUsable();
            if (writerClosed.get()) {
                throw new CorfsException(Reason.IO, uri + ": writer closed");
            }
            if (broken != null) {
                throw new CorfsException(Reason.IO, uri + ": writer unusable: " + broken);
            }
            if (offset < 0 || length < 0 || offset > size || length > size - offset) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, uri + ": " + what + " at " + offset + "+" + length
                        + " is outside the export (" + size + " bytes)");
            }
            int min = blockSizes.minimum();
            if (offset % min != 0 || length % min != 0) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, uri + ": " + what + " at " + offset + "+" + length
                        + " is not aligned to the server's minimum block size " + min);
            }
        }

        @Override
        public void writeFully(ByteBuffer src, long offset) throws IOException {
            int length = src.remaining();
            checkWritable("write", offset, length);
            ByteBuffer copy = ByteBuffer.allocate(length);
            copy.put(src.duplicate()).flip();
            int step = Math.max(blockSizes.minimum(), Math.min(pieceSize, MIN_PIECE));
            effect("write", offset, length, () -> {
                List<CompletableFuture<Void>> parts = new ArrayList<>();
                for (int done = 0; done < length; done += step) {
                    int n = Math.min(step, length - done);
                    parts.add(c.write(offset + done, copy.slice(done, n)));
                }
                return CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]));
            }, copy);
            src.position(src.limit());
        }

        /**
         * WRITE_ZEROES when the server offers it (it may punch a hole: reads as zeros either way). Else a
         * buffer of zeros, never TRIM: after TRIM the protocol leaves the content undefined, and nothing in
         * the handshake says whether this server's trimmed blocks read back as zeros.
         */
        @Override
        public void writeZeroes(long offset, long length) throws IOException {
            if (!c.canWriteZeroes()) {
                Writer.super.writeZeroes(offset, length);
                return;
            }
            checkWritable("write of zeroes", offset, length);
            effect("write of zeroes", offset, length, () -> c.writeZeroes(offset, length, false), null);
        }

        @Override
        public void flush() throws IOException {
            checkWritable("flush", 0, 0);
            effect("flush", 0, 0, c::flush, null);
        }

        /**
         * Sends a write-like request ({@code issue}) and waits for it; keeps the identity samples it touches
         * in step (our own change is not another disk); breaks the writer on a lost connection or a timeout.
         * The samples are marked as being written <em>before</em> the request leaves: a reconnect's check
         * that read a sample after the write landed but before the mark took the write for another disk.
         */
        private void effect(String what, long offset, long length, IoSupplier issue, ByteBuffer data)
                throws IOException {
            List<Sample> touched = new ArrayList<>();
            for (Sample s : samples) {
                if (length > 0 && s.overlaps(offset, length)) {
                    synchronized (s) {
                        s.writing++;
                        s.version++;
                    }
                    touched.add(s);
                }
            }
            Throwable failure = null;
            try {
                issue.get().get(timeoutNanos, TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                failure = timedOut(what + " at " + offset);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = new CorfsException(Reason.IO, uri + ": interrupted during " + what);
            } catch (ExecutionException e) {
                failure = e.getCause();
            } catch (IOException | RuntimeException e) {
                failure = e; // not sent, or not all of it: its effect is unknown
            }
            for (Sample s : touched) {
                synchronized (s) {
                    s.writing--;
                    s.version++;
                    s.doubt |= failure != null;
                    if (failure == null) {
                        byte[] next = s.expected.clone();
                        long from = Math.max(offset, s.offset);
                        long to = Math.min(offset + length, s.offset + s.length);
                        for (long i = from; i < to; i++) {
                            next[(int) (i - s.offset)] = data == null ? 0 : data.get((int) (i - offset));
                        }
                        s.expected = next;
                    }
                }
            }
            if (failure == null) {
                return;
            }
            if (failure instanceof NbdTimeoutException || failure instanceof BackingTimeoutException || !c.isOpen()) {
                broken = what + " at " + offset + " failed (" + failure.getMessage() + "); writes not yet flushed may"
                        + " be lost";
            }
            throw asIo(failure);
        }

        /** Leaves the pooled connection open. Idempotent. */
        @Override
        public void close() {
            writerClosed.set(true);
        }
    }

    // ---------------------------------------------------------------- helpers

    private BackingTimeoutException timedOut(String what) {
        return new BackingTimeoutException(uri + ": " + what + ": no answer within " + seconds(timeoutNanos), null);
    }

    private static java.time.Duration min(java.time.Duration a, java.time.Duration b) {
        return a.compareTo(b) <= 0 ? a : b;
    }

    private static String seconds(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(nanos) / 1000.0 + " s";
    }

    private IOException asIo(Throwable t) {
        if (t instanceof IOException io) {
            return io;
        }
        return new CorfsException(Reason.IO, uri + ": " + t, t);
    }
}
