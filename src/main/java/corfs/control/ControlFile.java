package corfs.control;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The logic of {@code MOUNTPOINT/control}, independent of FUSE: the adapter's callbacks delegate here.
 *
 * <h2>Writing</h2>
 * Bytes written through an open handle accumulate in that handle's pending line. Every complete line
 * ({@code \n}-terminated, a trailing {@code \r} stripped) is decoded as strict UTF-8, parsed by
 * {@link ControlParser} and executed on the {@link CommandTarget}, in order. One {@link #write} call is
 * handled in two passes:
 * <ol>
 *   <li>Every complete line of the call is checked and parsed, and the unterminated rest is checked to
 *       be at most {@value ControlParser#MAX_LINE_BYTES} bytes. If anything fails, <em>nothing</em> of the
 *       call is executed, the pending line is dropped, the error is recorded with
 *       {@link CommandTarget#recordError} (image null) and thrown ({@link Reason#INVALID_ARGUMENT}).</li>
 *   <li>The parsed commands are executed in order. If command k fails, commands before it <em>stay
 *       executed</em> (there is no undo), commands after it are not executed, the pending line is
 *       dropped, and the error is recorded (with the command's image) and thrown as the target threw
 *       it.</li>
 * </ol>
 * A write that fails is reported whole: the caller sees the errno, never a short count. Blank lines and
 * {@code #} comments are skipped. {@link #flush} executes a pending unterminated line, so that
 * {@code printf stream > control} works; the adapter calls it from its {@code flush} callback.
 *
 * <h2>Reading</h2>
 * A read at offset 0 takes a fresh status snapshot into the handle; reads at later offsets are served
 * from that snapshot, so a reader that reads in pieces sees one consistent status.
 *
 * <h2>Threads</h2>
 * All methods may be called from any number of threads at once. Each handle is guarded by its own
 * monitor (calls on one handle are serialized, including the target calls they make); calls on
 * different handles run in parallel, so the {@link CommandTarget} must be thread-safe. Lock order: the
 * handle's monitor, then whatever the target takes. The handle table is a concurrent map.
 */
public final class ControlFile {

    private static final Logger log = LoggerFactory.getLogger(ControlFile.class);

    private static final int MAX_LINE = ControlParser.MAX_LINE_BYTES;

    private final CommandTarget target;
    private final ConcurrentHashMap<Long, Handle> handles = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);

    public ControlFile(CommandTarget target) {
        this.target = java.util.Objects.requireNonNull(target, "target");
    }

    /**
     * One open of the control file: its pending partial line and its read snapshot. The fields are
     * guarded by the handle's monitor.
     */
    public static final class Handle {
        private final long id;
        private byte[] pending = new byte[0];
        private int pendingLength;
        private byte[] snapshot;

        private Handle(long id) {
            this.id = id;
        }

        /** The id to store in the FUSE file handle; never 0. */
        public long id() {
            return id;
        }

        /** Bytes written but not yet terminated by a newline. */
        public synchronized int pendingBytes() {
            return pendingLength;
        }

        private void dropPending() {
            pending = new byte[0];
            pendingLength = 0;
        }

        private void appendPending(ByteBuffer data, int from, int to) {
            int n = to - from;
            if (pendingLength + n > pending.length) {
                pending = Arrays.copyOf(pending, Math.max(pendingLength + n, Math.min(2 * pending.length, MAX_LINE)));
            }
            data.get(from, pending, pendingLength, n);
            pendingLength += n;
        }
    }

    /** Opens a new handle; the adapter stores {@link Handle#id()} in the FUSE file handle. */
    public Handle openHandle() {
        Handle h = new Handle(nextId.getAndIncrement());
        handles.put(h.id(), h);
        return h;
    }

    /** The open handle with this id, or null if there is none (never opened, or released). */
    public Handle handle(long id) {
        return handles.get(id);
    }

    /** Forgets a handle, dropping any pending unterminated line (call {@link #flush} first). Idempotent. */
    public void release(long id) {
        Handle h = handles.remove(id);
        if (h != null) {
            synchronized (h) {
                if (h.pendingLength > 0) {
                    log.debug("control handle {} released with {} unflushed bytes", id, h.pendingLength);
                }
                h.dropPending();
                h.snapshot = null;
            }
        }
    }

    /** How many handles are open (for tests and leak checks). */
    public int openHandles() {
        return handles.size();
    }

    /**
     * Takes the bytes of {@code data} (position to limit; the buffer's position is not moved), executing
     * every line they complete, as the class comment describes.
     *
     * @return the number of bytes taken: all of them
     * @throws CorfsException {@link Reason#INVALID_ARGUMENT} when a line is malformed or too long, or
     *         whatever the target threw for a command it could not carry out
     * @throws IOException as the target threw it
     */
    public int write(long handleId, ByteBuffer data) throws IOException {
        Handle h = require(handleId);
        int start = data.position();
        int end = data.limit();
        List<ControlCommand> commands = new ArrayList<>();
        synchronized (h) {
            try {
                int lineStart = start;
                for (int i = start; i < end; i++) {
                    if (data.get(i) != '\n') {
                        continue;
                    }
                    String line;
                    if (h.pendingLength > 0) {
                        checkLineLength(h.pendingLength + (i - lineStart));
                        h.appendPending(data, lineStart, i);
                        line = decode(ByteBuffer.wrap(h.pending, 0, h.pendingLength));
                        h.dropPending();
                    } else {
                        checkLineLength(i - lineStart);
                        line = decode(data.duplicate().limit(i).position(lineStart));
                    }
                    ControlParser.parse(stripCr(line)).ifPresent(commands::add);
                    lineStart = i + 1;
                }
                if (end > lineStart) {
                    if (h.pendingLength + (end - lineStart) > MAX_LINE + 1) { // + 1: room for a trailing '\r'
                        throw new CorfsException(Reason.INVALID_ARGUMENT,
                                "command line longer than " + MAX_LINE + " bytes");
                    }
                    h.appendPending(data, lineStart, end);
                }
            } catch (CorfsException e) {
                h.dropPending();
                reject(null, e);
                throw e;
            }
            executeAll(h, commands);
        }
        return end - start;
    }

    /**
     * Executes the handle's pending unterminated line, if any, and empties it.
     *
     * @throws CorfsException as {@link #write} would for that line
     * @throws IOException as the target threw it
     */
    public void flush(long handleId) throws IOException {
        Handle h = require(handleId);
        synchronized (h) {
            if (h.pendingLength == 0) {
                return;
            }
            Optional<ControlCommand> command;
            try {
                checkLineLength(h.pendingLength);
                String line = decode(ByteBuffer.wrap(h.pending, 0, h.pendingLength));
                command = ControlParser.parse(stripCr(line));
            } catch (CorfsException e) {
                reject(null, e);
                throw e;
            } finally {
                h.dropPending();
            }
            if (command.isPresent()) {
                executeAll(h, List.of(command.get()));
            }
        }
    }

    /**
     * Copies status bytes into {@code dst} (from its position, at most its remaining), taking a fresh
     * snapshot when {@code offset} is 0 (or when the handle has none yet).
     *
     * @return the number of bytes copied, 0 at the end of the snapshot
     */
    public int read(long handleId, ByteBuffer dst, long offset) throws CorfsException {
        Handle h = require(handleId);
        if (offset < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "negative offset " + offset);
        }
        synchronized (h) {
            if (offset == 0 || h.snapshot == null) {
                h.snapshot = statusSnapshot();
            }
            byte[] s = h.snapshot;
            if (offset >= s.length) {
                return 0;
            }
            int n = (int) Math.min(dst.remaining(), s.length - offset);
            dst.put(s, (int) offset, n);
            return n;
        }
    }

    /** The current status, rendered by {@link StatusFormat#render}, in UTF-8. */
    public byte[] statusSnapshot() {
        return StatusFormat.render(target.status()).getBytes(StandardCharsets.UTF_8);
    }

    /** Runs already-parsed commands in order; called with the handle's monitor held. */
    private void executeAll(Handle h, List<ControlCommand> commands) throws IOException {
        for (ControlCommand command : commands) {
            try {
                target.execute(command);
                log.debug("control: executed {}", command);
            } catch (IOException | RuntimeException e) {
                h.dropPending();
                reject(command.image(), e);
                throw e;
            }
        }
    }

    private void reject(String image, Exception e) {
        String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        log.debug("control: rejected command: {}", message);
        target.recordError(image, message);
    }

    private Handle require(long handleId) throws CorfsException {
        Handle h = handles.get(handleId);
        if (h == null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "no open control handle " + handleId);
        }
        return h;
    }

    private static void checkLineLength(long bytes) throws CorfsException {
        // One byte of slack for the '\r' that stripCr removes; the parser checks the exact limit.
        if (bytes > MAX_LINE + 1) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "command line longer than " + MAX_LINE + " bytes");
        }
    }

    private static String stripCr(String line) {
        return line.endsWith("\r") ? line.substring(0, line.length() - 1) : line;
    }

    /** Strict UTF-8: malformed or unmappable input is an error, never a replacement character. */
    private static String decode(ByteBuffer bytes) throws CorfsException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        try {
            CharBuffer chars = decoder.decode(bytes);
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "command line is not valid UTF-8");
        }
    }
}
