package corfs.backing.nbd;

import static corfs.backing.nbd.NbdProtocol.*;

import corfs.CorfsException.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One connection to an NBD export, in the transmission phase: many requests in flight at once, replies
 * matched to requests by cookie, in any order, with the chunks of structured replies interleaved.
 *
 * <h2>Threads</h2>
 * <ul>
 * <li>{@code corfs-nbd-reader-N} owns the socket's input: it connects, runs the {@link Handshake}, then
 *     parses every reply, copies read data straight into the caller's buffer and completes the futures.
 *     Futures therefore complete on this thread: a dependent action must not block (chain with the
 *     {@code *Async} variants and your own executor if it might).</li>
 * <li>{@code corfs-nbd-writer-N} owns the socket's output: it takes requests from {@code outbox} and
 *     sends them (several headers per write); a caller never touches the socket, so a caller never
 *     blocks on a stalled network and is never exposed to NIO's close-on-interrupt.</li>
 * <li>{@code corfs-nbd-deadline-N} fails requests whose deadline ({@link NbdOptions#timeout()}) passed.</li>
 * </ul>
 * No thread is ever interrupted: {@link #close()} and failures close the socket, which wakes both I/O
 * threads.
 *
 * <h2>Invariants</h2>
 * <ul>
 * <li>Every request is in {@code pending} from before it is sent until its final reply has been read
 *     (or the connection failed): a reply for a cookie that is not there is a protocol violation.
 *     Cookies are never reused. A request whose deadline passed stays in {@code pending}, marked
 *     {@code abandoned}, so its late reply is read and dropped instead of breaking the framing; its
 *     data go to a sink, not to the caller's buffer.</li>
 * <li>Framing lost (a bad magic, an unknown cookie, a chunk outside its request, overlapping or
 *     oversized chunks, a short read, an I/O error, end of stream) fails the whole connection: state
 *     {@code FAILED}, the socket closed, every pending request completed exceptionally, every later
 *     request refused. An error reply fails only its request. No failure ever completes a read
 *     normally: a read succeeds only when chunks without overlap covered every byte asked.</li>
 * <li>Memory is bounded whatever the server claims: data chunks land in the caller's buffer only after
 *     their offset and length were checked against the request; block status descriptors are parsed
 *     one by one; error messages over 4 KiB and option replies over 64 KiB are refused.</li>
 * <li>Requests obey the server: lengths and offsets multiples of the minimum block size (reads that are
 *     not are widened through a bounce buffer; writes, trims and zeroing that are not are refused),
 *     READ/WRITE split at the maximum payload, writes refused on a read-only export, FLUSH, TRIM and
 *     WRITE_ZEROES only when the transmission flags offer them.</li>
 * </ul>
 *
 * <h2>Locks</h2>
 * None on the request path: {@code pending} is a concurrent map, {@code outbox} a concurrent queue,
 * the state an atomic. {@link TlsWire} has one internal write lock. A request is registered before
 * the state is re-checked, and {@link #fail} sets the state before draining {@code pending}, so no
 * request is ever left pending on a dead connection.
 */
public final class NbdConnection implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NbdConnection.class);
    private static final AtomicInteger IDS = new AtomicInteger();
    /** Bound on waiting for in-flight requests and for each thread at close. */
    private static final Duration CLOSE_WAIT = Duration.ofSeconds(2);
    /** Largest block status reply the protocol lets a server send (2^20 descriptors). */
    private static final long MAX_BLOCK_STATUS_CHUNK = 4 + 8L * (1 << 20);
    /** One block status query covers at most this much. */
    private static final long MAX_BLOCK_STATUS_LENGTH = 1L << 30;
    /** One TRIM or WRITE_ZEROES covers at most this much. */
    private static final long MAX_EFFECT_LENGTH = 1L << 30;
    private static final int MAX_ERROR_CHUNK = 6 + MAX_STRING + 8;
    private static final int MAX_UNKNOWN_ERROR_CHUNK = 64 * 1024;

    private enum State { CONNECTING, OPEN, CLOSING, FAILED, CLOSED }

    private final NbdUri uri;
    private final NbdOptions options;
    private final int id;
    private final AtomicReference<State> state = new AtomicReference<>(State.CONNECTING);
    private volatile IOException failure;
    private final ConcurrentHashMap<Long, Pending> pending = new ConcurrentHashMap<>();
    private final LinkedBlockingQueue<Pending> outbox = new LinkedBlockingQueue<>();
    private final AtomicLong cookies = new AtomicLong();
    private final CompletableFuture<Handshake.Result> ready = new CompletableFuture<>();
    private final Thread reader;
    private final Thread writer;
    private final ScheduledThreadPoolExecutor deadlines;
    private volatile SocketChannel channel;
    private volatile NbdWire wire;
    /** Set once by the reader before {@code ready} completes; read only after. */
    private volatile Handshake.Result info;

    /** The marker the writer sends last: NBD_CMD_DISC. */
    private final Pending disconnect;

    private NbdConnection(NbdUri uri, NbdOptions options) {
        this.uri = uri;
        this.options = options;
        this.id = IDS.incrementAndGet();
        this.reader = new Thread(this::readerMain, "corfs-nbd-reader-" + id);
        this.writer = new Thread(this::writerMain, "corfs-nbd-writer-" + id);
        this.reader.setDaemon(true);
        this.writer.setDaemon(true);
        this.deadlines = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "corfs-nbd-deadline-" + id);
            t.setDaemon(true);
            return t;
        });
        this.deadlines.setRemoveOnCancelPolicy(true);
        this.deadlines.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        this.disconnect = new Pending(0, CMD_DISC, 0, 0, null, null);
    }

    /** Connects, negotiates and returns an open connection; see {@link NbdClient#connect}. */
    static NbdConnection open(NbdUri uri, NbdOptions options) throws NbdException {
        NbdConnection c = new NbdConnection(uri, options);
        c.reader.start();
        try {
            c.info = c.ready.get(options.connectTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            c.close();
            throw new NbdException(Reason.IO, uri + ": no answer within " + options.connectTimeout().toSeconds()
                    + " s while connecting");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            c.close();
            throw new NbdException(Reason.IO, uri + ": interrupted while connecting");
        } catch (ExecutionException e) {
            c.close();
            if (e.getCause() instanceof NbdException ne) {
                throw ne;
            }
            throw new NbdException(Reason.IO, uri + ": " + describe(e.getCause()), e.getCause());
        }
        if (!c.state.compareAndSet(State.CONNECTING, State.OPEN)) {
            c.close();
            throw new NbdException(Reason.IO, uri + ": connection closed during the handshake");
        }
        c.writer.start();
        LOG.debug("{}: connected, size {}, flags 0x{}, {}, structured replies {}, block status {}", uri,
                c.info.size(), Integer.toHexString(c.info.flags()), c.info.blockSizes(), c.info.structured(),
                c.info.blockStatus());
        return c;
    }

    // ---------------------------------------------------------------- what the handshake settled

    public NbdUri uri() {
        return uri;
    }

    /** The export's size in bytes. */
    public long size() {
        return info.size();
    }

    /** The transmission flags (NBD_FLAG_*). */
    public int flags() {
        return info.flags();
    }

    public BlockSizes blockSizes() {
        return info.blockSizes();
    }

    public boolean readOnly() {
        return (info.flags() & FLAG_READ_ONLY) != 0;
    }

    public boolean canFlush() {
        return (info.flags() & FLAG_SEND_FLUSH) != 0;
    }

    public boolean canTrim() {
        return (info.flags() & FLAG_SEND_TRIM) != 0;
    }

    public boolean canWriteZeroes() {
        return (info.flags() & FLAG_SEND_WRITE_ZEROES) != 0;
    }

    /** Whether the server allows several connections to this export with a shared cache. */
    public boolean canMultiConn() {
        return (info.flags() & FLAG_CAN_MULTI_CONN) != 0;
    }

    /** Whether structured replies were negotiated. */
    public boolean structuredReplies() {
        return info.structured();
    }

    /** Whether {@code base:allocation} block status was negotiated ({@link #blockStatus} then asks the server). */
    public boolean hasBlockStatus() {
        return info.blockStatus();
    }

    /** Whether the connection can still take requests (not failed, not closed). */
    public boolean isOpen() {
        return state.get() == State.OPEN;
    }

    /** Why the connection failed, or null. */
    public IOException failure() {
        return failure;
    }

    /**
     * Waits (at most {@code millis}) until the reader thread has stopped, so that no chunk of any request
     * of this connection can be copied into a caller's buffer any more. Only meaningful once the connection
     * failed or was closed (a live reader runs until then); true when the reader has stopped.
     */
    public boolean awaitReaderStopped(long millis) {
        if (reader == Thread.currentThread()) {
            return false;
        }
        if (reader.getState() == Thread.State.NEW) {
            return true;
        }
        try {
            reader.join(Math.max(1, millis));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return !reader.isAlive();
    }

    // ---------------------------------------------------------------- requests

    /**
     * Reads {@code dst.remaining()} bytes at {@code offset} into {@code dst[position, limit)}; neither the
     * position nor the limit changes. Split into requests of at most the server's maximum payload, all
     * in flight at once. On failure the buffer's content is undefined; after a timeout or a close, a
     * chunk already being received may still land in it, so it must be dropped, not reused.
     */
    public CompletableFuture<Void> read(long offset, ByteBuffer dst) {
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("read into a read-only buffer");
        }
        int length = dst.remaining();
        NbdException bad = checkRange("read", offset, length);
        if (bad != null) {
            return CompletableFuture.failedFuture(bad);
        }
        if (length == 0) {
            return CompletableFuture.completedFuture(null);
        }
        int min = info.blockSizes().minimum();
        if (offset % min != 0 || length % min != 0) {
            return readUnaligned(offset, dst, min);
        }
        ByteBuffer target = dst.slice(dst.position(), length);
        int max = info.blockSizes().maximum();
        List<CompletableFuture<?>> parts = new ArrayList<>();
        for (int done = 0; done < length; done += max) {
            int n = Math.min(max, length - done);
            parts.add(submit(CMD_READ, 0, offset + done, n, target.slice(done, n), null));
        }
        return all(parts);
    }

    /** Widens an unaligned read to the minimum block size through a bounce buffer. */
    private CompletableFuture<Void> readUnaligned(long offset, ByteBuffer dst, int min) {
        long start = offset - offset % min;
        long end = Math.min(size(), ceil(offset + dst.remaining(), min));
        if ((end - start) % min != 0 || end - start > Integer.MAX_VALUE) {
            return CompletableFuture.failedFuture(new NbdException(Reason.INVALID_ARGUMENT, uri + ": read at "
                    + offset + "+" + dst.remaining() + " cannot be aligned to the server's minimum block size " + min));
        }
        ByteBuffer bounce = ByteBuffer.allocate((int) (end - start));
        ByteBuffer target = dst.slice(dst.position(), dst.remaining());
        return read(start, bounce).thenRun(() -> target.put(bounce.slice((int) (offset - start), target.remaining())));
    }

    /**
     * Writes {@code src[position, limit)} at {@code offset}; the buffer must not change until the future
     * completes. Offset and length must be multiples of the minimum block size. A write that failed or
     * timed out may or may not have reached the server.
     */
    public CompletableFuture<Void> write(long offset, ByteBuffer src) {
        int length = src.remaining();
        NbdException bad = checkWrite("write", offset, length, true);
        if (bad != null) {
            return CompletableFuture.failedFuture(bad);
        }
        ByteBuffer source = src.slice(src.position(), length);
        int max = info.blockSizes().maximum();
        List<CompletableFuture<?>> parts = new ArrayList<>();
        for (int done = 0; done < length; done += max) {
            int n = Math.min(max, length - done);
            parts.add(submit(CMD_WRITE, 0, offset + done, n, null, source.slice(done, n)));
        }
        return all(parts);
    }

    /**
     * Makes every write already completed durable on the server (NBD_CMD_FLUSH covers only writes whose
     * reply was received: wait for them first). NOT_SUPPORTED if the server does not offer flush.
     */
    public CompletableFuture<Void> flush() {
        NbdException bad = checkOpen();
        if (bad == null && !canFlush()) {
            bad = new NbdException(Reason.NOT_SUPPORTED, uri + ": the server does not offer flush");
        }
        return bad != null ? CompletableFuture.failedFuture(bad) : submit(CMD_FLUSH, 0, 0, 0, null, null);
    }

    /** Tells the server the range is no longer needed (its content becomes undefined). */
    public CompletableFuture<Void> trim(long offset, long length) {
        return effect(CMD_TRIM, 0, offset, length, canTrim());
    }

    /** Makes the range read as zeros; with {@code noHole}, the server must keep it allocated. */
    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean noHole) {
        return effect(CMD_WRITE_ZEROES, noHole ? CMD_FLAG_NO_HOLE : 0, offset, length, canWriteZeroes());
    }

    private CompletableFuture<Void> effect(int command, int flags, long offset, long length, boolean offered) {
        NbdException bad = checkWrite(commandName(command), offset, length, false);
        if (bad == null && !offered) {
            bad = new NbdException(Reason.NOT_SUPPORTED, uri + ": the server does not offer " + commandName(command));
        }
        if (bad != null) {
            return CompletableFuture.failedFuture(bad);
        }
        long step = MAX_EFFECT_LENGTH - MAX_EFFECT_LENGTH % info.blockSizes().minimum();
        List<CompletableFuture<?>> parts = new ArrayList<>();
        for (long done = 0; done < length; done += step) {
            parts.add(submit(command, flags, offset + done, (int) Math.min(step, length - done), null, null));
        }
        return all(parts);
    }

    /**
     * The allocation of the export from {@code offset}: consecutive extents starting at {@code offset},
     * covering at least one byte and at most {@code length} (the server may answer for less: ask again
     * from the end of the last extent). Without {@code base:allocation} (see {@link #hasBlockStatus}),
     * answers at once with the whole range as one extent of unknown content (neither hole nor zero).
     */
    public CompletableFuture<List<NbdExtent>> blockStatus(long offset, long length) {
        NbdException bad = checkRange("block status", offset, length);
        if (bad == null && length == 0) {
            bad = new NbdException(Reason.INVALID_ARGUMENT, uri + ": block status of an empty range");
        }
        if (bad != null) {
            return CompletableFuture.failedFuture(bad);
        }
        if (!hasBlockStatus()) {
            return CompletableFuture.completedFuture(List.of(new NbdExtent(offset, length, false, false)));
        }
        int min = info.blockSizes().minimum();
        long start = offset - offset % min;
        long end = Math.min(size(), ceil(Math.min(offset + length, start + MAX_BLOCK_STATUS_LENGTH), min));
        long askedEnd = Math.min(offset + length, end);
        Pending p = new Pending(0, CMD_BLOCK_STATUS, start, (int) (end - start), null, null);
        CompletableFuture<Void> done = send(p);
        return done.thenApply(v -> clip(p.extents, offset, askedEnd));
    }

    private static List<NbdExtent> clip(List<NbdExtent> extents, long from, long to) {
        List<NbdExtent> out = new ArrayList<>(extents.size());
        for (NbdExtent e : extents) {
            long s = Math.max(e.offset(), from);
            long t = Math.min(e.end(), to);
            if (s < t) {
                out.add(new NbdExtent(s, t - s, e.hole(), e.zero()));
            }
        }
        return out;
    }

    private NbdException checkOpen() {
        State s = state.get();
        if (s == State.OPEN) {
            return null;
        }
        IOException f = failure;
        return new NbdException(Reason.IO, uri + ": connection " + (f != null ? "failed: " + f.getMessage() : "closed"), f);
    }

    private NbdException checkRange(String what, long offset, long length) {
        NbdException closed = checkOpen();
        if (closed != null) {
            return closed;
        }
        if (offset < 0 || length < 0 || offset > size() || length > size() - offset) {
            return new NbdException(Reason.INVALID_ARGUMENT, uri + ": " + what + " at " + offset + "+" + length
                    + " is outside the export (" + size() + " bytes)");
        }
        return null;
    }

    private NbdException checkWrite(String what, long offset, long length, boolean payload) {
        NbdException bad = checkRange(what, offset, length);
        if (bad != null) {
            return bad;
        }
        if (readOnly()) {
            return new NbdException(Reason.READ_ONLY, uri + ": the export is read-only");
        }
        int min = info.blockSizes().minimum();
        if (offset % min != 0 || length % min != 0) {
            return new NbdException(Reason.INVALID_ARGUMENT, uri + ": " + what + " at " + offset + "+" + length
                    + " is not aligned to the server's minimum block size " + min);
        }
        return null;
    }

    private static long ceil(long v, int align) {
        long r = v % align;
        return r == 0 ? v : v + (align - r);
    }

    /** One future for several parts: fails as soon as one fails, and then abandons the others. */
    private static CompletableFuture<Void> all(List<CompletableFuture<?>> parts) {
        if (parts.isEmpty()) {
            return CompletableFuture.completedFuture(null);
        }
        if (parts.size() == 1) {
            @SuppressWarnings("unchecked")
            CompletableFuture<Void> only = (CompletableFuture<Void>) parts.get(0);
            return only;
        }
        CompletableFuture<Void> whole = new CompletableFuture<>();
        AtomicInteger left = new AtomicInteger(parts.size());
        for (CompletableFuture<?> part : parts) {
            part.whenComplete((v, e) -> {
                if (e != null) {
                    if (whole.completeExceptionally(e)) {
                        for (CompletableFuture<?> other : parts) {
                            other.completeExceptionally(e); // their late data then goes to the sink
                        }
                    }
                } else if (left.decrementAndGet() == 0) {
                    whole.complete(null);
                }
            });
        }
        return whole;
    }

    private CompletableFuture<Void> submit(int command, int flags, long offset, int length, ByteBuffer dst,
            ByteBuffer payload) {
        return send(new Pending(flags, command, offset, length, dst, payload));
    }

    private CompletableFuture<Void> send(Pending p) {
        p.cookie = cookies.incrementAndGet();
        pending.put(p.cookie, p);
        if (state.get() != State.OPEN) {
            // fail() or close() may have drained the map before our put: never leave a request behind
            pending.remove(p.cookie);
            p.future.completeExceptionally(checkOpenOrClosed());
            return p.future;
        }
        long timeout = options.timeout().toMillis();
        if (timeout > 0) {
            try {
                ScheduledFuture<?> deadline = deadlines.schedule(() -> expire(p, timeout), timeout, TimeUnit.MILLISECONDS);
                p.future.whenComplete((v, e) -> deadline.cancel(false));
            } catch (RejectedExecutionException closing) {
                pending.remove(p.cookie);
                p.future.completeExceptionally(checkOpenOrClosed());
                return p.future;
            }
        }
        outbox.add(p);
        return p.future;
    }

    private NbdException checkOpenOrClosed() {
        NbdException e = checkOpen();
        return e != null ? e : new NbdException(Reason.IO, uri + ": connection closed");
    }

    private void expire(Pending p, long timeoutMillis) {
        p.abandoned = true;
        if (p.future.completeExceptionally(new NbdTimeoutException(uri + ": " + commandName(p.command) + " at "
                + p.offset + "+" + p.length + ": no reply within " + timeoutMillis / 1000.0 + " s"))) {
            LOG.debug("{}: request {} timed out", uri, p.cookie);
        }
    }

    // ---------------------------------------------------------------- the writer thread

    private void writerMain() {
        ByteBuffer headers = ByteBuffer.allocateDirect(REQUEST_HEADER_SIZE * 256);
        List<Pending> batch = new ArrayList<>(256);
        try {
            while (true) {
                Pending first = outbox.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    State s = state.get();
                    if ((s == State.FAILED || s == State.CLOSED) && outbox.isEmpty()) {
                        return;
                    }
                    continue;
                }
                batch.clear();
                batch.add(first);
                outbox.drainTo(batch, 255);
                headers.clear();
                for (Pending p : batch) {
                    if (p == disconnect) {
                        flushHeaders(headers);
                        sendDisconnect();
                        return;
                    }
                    if (p.abandoned && !p.sent) {
                        pending.remove(p.cookie); // never sent: no reply will come
                        continue;
                    }
                    p.sent = true;
                    headers.putInt(REQUEST_MAGIC).putShort((short) p.flags).putShort((short) p.command)
                            .putLong(p.cookie).putLong(p.offset).putInt(p.length);
                    if (p.payload != null) {
                        headers.flip();
                        wire.write(headers, p.payload.duplicate());
                        headers.clear();
                    }
                }
                flushHeaders(headers);
            }
        } catch (IOException e) {
            fail(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(new IOException("writer interrupted"));
        } catch (RuntimeException | Error e) {
            LOG.warn("{}: writer failed", uri, e);
            fail(new IOException("writer failed: " + e, e));
        }
    }

    private void flushHeaders(ByteBuffer headers) throws IOException {
        if (headers.position() > 0) {
            headers.flip();
            wire.write(headers);
            headers.clear();
        }
    }

    private void sendDisconnect() throws IOException {
        ByteBuffer b = ByteBuffer.allocate(REQUEST_HEADER_SIZE);
        b.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_DISC).putLong(0).putLong(0).putInt(0).flip();
        wire.write(b);
        wire.shutdownOutput();
    }

    // ---------------------------------------------------------------- the reader thread

    private void readerMain() {
        WireReader in;
        try {
            in = connectAndNegotiate();
        } catch (IOException | RuntimeException e) {
            ready.completeExceptionally(e);
            closeSocket();
            return;
        }
        try {
            while (true) {
                int magic = in.peekInt();
                if (magic == SIMPLE_REPLY_MAGIC) {
                    simpleReply(in);
                } else if (magic == STRUCTURED_REPLY_MAGIC) {
                    structuredChunk(in);
                } else {
                    throw new ProtocolException("bad reply magic 0x" + Integer.toHexString(magic));
                }
            }
        } catch (IOException e) {
            fail(e);
        } catch (RuntimeException | Error e) {
            LOG.warn("{}: reader failed", uri, e);
            fail(new IOException("reader failed: " + e, e));
        }
    }

    private WireReader connectAndNegotiate() throws IOException {
        SocketAddress address = uri.address();
        if (address instanceof InetSocketAddress inet && inet.isUnresolved()) {
            throw new NbdException(Reason.IO, uri + ": unknown host " + uri.host());
        }
        SocketChannel ch = SocketChannel.open(uri.unix() ? StandardProtocolFamily.UNIX
                : ((InetSocketAddress) address).getAddress() instanceof java.net.Inet6Address
                        ? StandardProtocolFamily.INET6 : StandardProtocolFamily.INET);
        channel = ch;
        if (state.get() != State.CONNECTING) {
            ch.close();
            throw new NbdException(Reason.IO, uri + ": closed while connecting");
        }
        try {
            ch.connect(address);
        } catch (IOException e) {
            throw new NbdException(Reason.IO, uri + ": cannot connect: " + describe(e), e);
        }
        if (!uri.unix()) {
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
        }
        NbdWire plain = new NbdWire.Plain(ch);
        wire = plain;
        WireReader in = new WireReader(plain);
        Handshake.Result result;
        try {
            result = new Handshake(uri, options, ch, plain, in).run();
        } catch (NbdException e) {
            throw e;
        } catch (IOException e) {
            String hint = uri.tls() && options.tlsCert() == null
                    ? " (if this happened right after TLS was set up: does the server require a client certificate?"
                            + " give tls-cert and tls-key)" : "";
            throw new NbdException(Reason.IO, uri + ": handshake failed: " + describe(e) + hint, e);
        }
        wire = result.wire();
        info = result;
        ready.complete(result);
        return in;
    }

    private void simpleReply(WireReader in) throws IOException {
        in.getInt();
        int error = in.getInt();
        long cookie = in.getLong();
        Pending p = pending.get(cookie);
        if (p == null) {
            throw new ProtocolException("simple reply for unknown cookie " + cookie);
        }
        if (info.structured() && p.command == CMD_READ) {
            throw new ProtocolException("simple reply to a read after structured replies were negotiated");
        }
        if (error == 0 && p.command == CMD_BLOCK_STATUS) {
            throw new ProtocolException("simple success reply to a block status query");
        }
        if (error == 0 && p.command == CMD_READ) {
            receive(in, p, 0, p.length);
        }
        pending.remove(cookie);
        if (error != 0) {
            p.future.completeExceptionally(serverError(p, error, ""));
            if (error == NBD_ESHUTDOWN) {
                serverShuttingDown();
            }
        } else {
            p.future.complete(null);
        }
    }

    private void structuredChunk(WireReader in) throws IOException {
        in.getInt();
        int flags = in.getShort();
        int type = in.getShort();
        long cookie = in.getLong();
        long length = in.getInt() & 0xffffffffL;
        Pending p = pending.get(cookie);
        if (p == null) {
            throw new ProtocolException("reply chunk for unknown cookie " + cookie);
        }
        if (!info.structured()) {
            throw new ProtocolException("structured reply chunk without structured replies negotiated");
        }
        switch (type) {
            case REPLY_TYPE_NONE -> {
                if (length != 0 || (flags & REPLY_FLAG_DONE) == 0) {
                    throw new ProtocolException("NBD_REPLY_TYPE_NONE with length " + length + " or without DONE");
                }
            }
            case REPLY_TYPE_OFFSET_DATA -> {
                if (p.command != CMD_READ || length < 9) {
                    throw new ProtocolException("data chunk of length " + length + " for a " + commandName(p.command));
                }
                long offset = in.getLong();
                long n = length - 8;
                claim(p, offset, n, "data");
                receive(in, p, (int) (offset - p.offset), (int) n);
            }
            case REPLY_TYPE_OFFSET_HOLE -> {
                if (p.command != CMD_READ || length != 12) {
                    throw new ProtocolException("hole chunk of length " + length + " for a " + commandName(p.command));
                }
                long offset = in.getLong();
                long n = in.getInt() & 0xffffffffL;
                if (n == 0) {
                    throw new ProtocolException("hole chunk of length 0");
                }
                claim(p, offset, n, "hole");
                if (!p.abandoned && !p.future.isDone()) {
                    ByteBuffer target = p.dst.slice((int) (offset - p.offset), (int) n);
                    while (target.hasRemaining()) {
                        target.put((byte) 0);
                    }
                }
            }
            case REPLY_TYPE_BLOCK_STATUS -> blockStatusChunk(in, p, length);
            default -> {
                if ((type & REPLY_TYPE_FLAG_ERROR) == 0) {
                    throw new ProtocolException("unknown reply chunk type " + type);
                }
                errorChunk(in, p, type, length);
            }
        }
        if ((flags & REPLY_FLAG_DONE) != 0) {
            finish(p);
        }
    }

    /** Checks a content chunk lies inside its request and overlaps no earlier one, and records it. */
    private void claim(Pending p, long offset, long n, String what) throws ProtocolException {
        if (offset < p.offset || n > p.length || offset - p.offset > p.length - n) {
            throw new ProtocolException(what + " chunk " + offset + "+" + n + " outside its request " + p.offset
                    + "+" + p.length);
        }
        if (p.received == null) {
            p.received = new TreeMap<>();
        }
        Map.Entry<Long, Long> before = p.received.floorEntry(offset);
        Map.Entry<Long, Long> after = p.received.ceilingEntry(offset);
        if (before != null && before.getValue() > offset || after != null && after.getKey() < offset + n) {
            throw new ProtocolException(what + " chunk " + offset + "+" + n + " overlaps an earlier chunk");
        }
        p.received.put(offset, offset + n);
        p.covered += n;
    }

    /** Reads {@code n} payload bytes into the request's buffer at {@code at}, or drops them if abandoned. */
    private void receive(WireReader in, Pending p, int at, int n) throws IOException {
        if (p.abandoned || p.future.isDone()) {
            in.skip(n);
        } else {
            in.readFully(p.dst.slice(at, n));
        }
    }

    private void blockStatusChunk(WireReader in, Pending p, long length) throws IOException {
        if (p.command != CMD_BLOCK_STATUS || length < 12 || (length - 4) % 8 != 0 || length > MAX_BLOCK_STATUS_CHUNK) {
            throw new ProtocolException("block status chunk of length " + length + " for a " + commandName(p.command));
        }
        int context = in.getInt();
        if (context != info.metaContextId()) {
            throw new ProtocolException("block status for meta context " + context + ", not the one negotiated");
        }
        if (p.extents != null) {
            throw new ProtocolException("two block status chunks in one reply");
        }
        List<NbdExtent> extents = new ArrayList<>();
        long cursor = p.offset;
        long end = p.offset + p.length;
        for (long left = (length - 4) / 8; left > 0; left--) {
            long n = in.getInt() & 0xffffffffL;
            int status = in.getInt();
            if (n == 0) {
                throw new ProtocolException("block status extent of length 0");
            }
            if (cursor >= end) {
                throw new ProtocolException("block status extents beyond the requested range");
            }
            long clipped = Math.min(n, end - cursor);
            boolean hole = (status & STATE_HOLE) != 0;
            boolean zero = (status & STATE_ZERO) != 0;
            NbdExtent last = extents.isEmpty() ? null : extents.get(extents.size() - 1);
            if (last != null && last.hole() == hole && last.zero() == zero) {
                // merged: a server splitting one state into many extents cannot make us hold many
                extents.set(extents.size() - 1, new NbdExtent(last.offset(), last.length() + clipped, hole, zero));
            } else {
                extents.add(new NbdExtent(cursor, clipped, hole, zero));
            }
            cursor += n;
        }
        p.extents = extents;
    }

    private void errorChunk(WireReader in, Pending p, int type, long length) throws IOException {
        long max = type == REPLY_TYPE_ERROR || type == REPLY_TYPE_ERROR_OFFSET ? MAX_ERROR_CHUNK : MAX_UNKNOWN_ERROR_CHUNK;
        if (length < 6 || length > max) {
            throw new ProtocolException("error chunk of length " + length);
        }
        int error = in.getInt();
        int messageLength = in.getShort();
        long fixedTail = type == REPLY_TYPE_ERROR_OFFSET ? 8 : 0;
        if (error == 0 || messageLength > MAX_STRING || messageLength + 6 + fixedTail > length) {
            throw new ProtocolException("malformed error chunk (error " + error + ", message length " + messageLength
                    + ", chunk length " + length + ")");
        }
        String message = new String(in.getBytes(messageLength), StandardCharsets.UTF_8).replaceAll("\\p{Cntrl}", "?");
        long rest = length - 6 - messageLength;
        if (type == REPLY_TYPE_ERROR_OFFSET) {
            long offset = in.getLong();
            rest -= 8;
            if (offset < p.offset || offset - p.offset >= Math.max(1, p.length)) {
                throw new ProtocolException("error offset " + offset + " outside its request " + p.offset + "+" + p.length);
            }
            message = message.isEmpty() ? "at offset " + offset : message + " (at offset " + offset + ")";
        }
        in.skip(rest);
        if (p.error == null) {
            p.error = serverError(p, error, message);
        }
    }

    private void finish(Pending p) {
        pending.remove(p.cookie);
        if (p.error != null) {
            p.future.completeExceptionally(p.error);
            if (p.error.nbdError() == NBD_ESHUTDOWN) {
                serverShuttingDown();
            }
        } else if (p.command == CMD_READ && p.covered != p.length) {
            p.future.completeExceptionally(new NbdException(Reason.IO, uri + ": short read at " + p.offset + "+"
                    + p.length + ": the server sent " + p.covered + " bytes"));
        } else if (p.command == CMD_BLOCK_STATUS && p.extents == null) {
            p.future.completeExceptionally(new NbdException(Reason.IO, uri + ": block status reply without extents"));
        } else {
            p.future.complete(null);
        }
    }

    private NbdException serverError(Pending p, int error, String message) {
        return new NbdException(Reason.IO, uri + ": " + commandName(p.command) + " at " + p.offset + "+" + p.length
                + " failed on the server: " + errorName(error) + (message.isEmpty() ? "" : ": " + message), error, null);
    }

    // ---------------------------------------------------------------- failure and close

    /**
     * The server said ESHUTDOWN: the protocol asks for a soft disconnect. No new request is taken (state
     * FAILED), the writer sends NBD_CMD_DISC after what it already queued, and requests in flight get
     * their replies or fail when the server closes the connection.
     */
    private void serverShuttingDown() {
        if (state.compareAndSet(State.OPEN, State.FAILED)) {
            failure = new IOException("the server is shutting down (ESHUTDOWN)");
            LOG.warn("{}: the server is shutting down; disconnecting", uri);
            outbox.add(disconnect);
        }
    }

    /** Framing lost or the socket failed: the connection is done, and so is every request on it. */
    private void fail(IOException cause) {
        State s = state.get();
        while (s == State.OPEN || s == State.CONNECTING || s == State.CLOSING) {
            State to = s == State.CLOSING ? State.CLOSED : State.FAILED;
            if (state.compareAndSet(s, to)) {
                if (to == State.FAILED) {
                    failure = cause;
                    LOG.warn("{}: connection failed: {}", uri, describe(cause));
                }
                break;
            }
            s = state.get();
        }
        closeSocket();
        failAll();
    }

    private void failAll() {
        IOException f = failure;
        NbdException e = new NbdException(Reason.IO, uri + ": connection " + (f != null ? "failed: " + describe(f)
                : "closed"), f);
        for (Long cookie : pending.keySet()) {
            Pending p = pending.remove(cookie);
            if (p != null) {
                p.future.completeExceptionally(e);
            }
        }
        ready.completeExceptionally(e);
    }

    private void closeSocket() {
        NbdWire w = wire;
        if (w != null) {
            w.close();
        }
        SocketChannel ch = channel;
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // closing is all we can do
            }
        }
    }

    /**
     * Waits (up to 2 s) for requests in flight, sends NBD_CMD_DISC (and TLS close_notify), closes the
     * socket and stops the threads, each wait bounded; requests still pending then fail. Idempotent.
     */
    @Override
    public void close() {
        State s = state.get();
        while (true) {
            if (s == State.CLOSING || s == State.CLOSED) {
                return;
            }
            if (s == State.FAILED) {
                if (state.compareAndSet(s, State.CLOSED)) {
                    break;
                }
            } else if (state.compareAndSet(s, State.CLOSING)) {
                break;
            }
            s = state.get();
        }
        if (s == State.OPEN) {
            long until = System.nanoTime() + CLOSE_WAIT.toNanos();
            while (!pending.isEmpty() && System.nanoTime() < until && state.get() == State.CLOSING) {
                sleepQuietly(5);
            }
            outbox.add(disconnect);
            join(writer);
        }
        state.set(State.CLOSED);
        closeSocket();
        join(reader);
        join(writer);
        failAll();
        deadlines.shutdown();
    }

    private void join(Thread t) {
        if (t == Thread.currentThread() || t.getState() == Thread.State.NEW) {
            return;
        }
        try {
            t.join(CLOSE_WAIT.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (t.isAlive()) {
            LOG.warn("{}: {} did not stop within {} s", uri, t.getName(), CLOSE_WAIT.toSeconds());
        }
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String describe(Throwable e) {
        if (e instanceof EOFException) {
            return "the server closed the connection";
        }
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m;
    }

    @Override
    public String toString() {
        return "NbdConnection[" + uri + ", " + state.get() + "]";
    }

    /** The server broke the protocol: the framing can no longer be trusted. */
    private static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super("protocol violation: " + message);
        }
    }

    /**
     * One request from registration to its final reply. The immutable fields are set before it is
     * published; {@code cookie} before it enters {@code pending}; {@code sent} by the writer only;
     * {@code received}, {@code covered}, {@code extents}, {@code error} by the reader only;
     * {@code abandoned} by any thread, only ever from false to true.
     */
    private static final class Pending {
        final int flags;
        final int command;
        final long offset;
        final int length;
        final ByteBuffer dst;
        final ByteBuffer payload;
        final CompletableFuture<Void> future = new CompletableFuture<>();
        long cookie;
        volatile boolean abandoned;
        boolean sent;
        TreeMap<Long, Long> received;
        long covered;
        List<NbdExtent> extents;
        NbdException error;

        Pending(int flags, int command, long offset, int length, ByteBuffer dst, ByteBuffer payload) {
            this.flags = flags;
            this.command = command;
            this.offset = offset;
            this.length = length;
            this.dst = dst;
            this.payload = payload;
        }
    }
}
