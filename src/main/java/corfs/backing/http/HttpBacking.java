package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A read-only {@link Backing} over one remote object read by an {@link HttpRangeReader}: an http(s) URL
 * ({@link HttpTransport}) or an S3 object ({@code corfs.backing.s3.S3Transport}), whose bytes are the raw
 * image.
 *
 * <h2>Invariants</h2>
 * <ul>
 * <li><b>One version.</b> Every range request is conditional on the validator learnt at open (the reader's
 * {@code If-Match}/{@code If-Unmodified-Since}); once the server says the object changed, every call
 * ({@link #readFully}, {@link #allocation}, {@link #identity}) fails with the same sticky
 * {@link BackingChangedException}, so a leaf never mixes two versions.</li>
 * <li><b>Parallel.</b> A read longer than {@link #PIECE_BYTES} is split into pieces of about that size,
 * all started at once: the reader keeps {@code connections} of them on the wire (the rest wait in its
 * FIFO, without a thread), so one 1 MiB fill does not wait for one round trip after another.
 * {@link #maxInFlight()} is {@code connections}.</li>
 * <li><b>Buffer.</b> When {@link #readFully} returns or throws, nothing writes into the caller's buffer
 * any more: on the first failing piece the others are cancelled, and a cancelled piece stops writing
 * before {@code cancel} returns ({@link HttpRangeReader#read}). (A {@code TimeoutBacking} above may still
 * give up earlier; its caller drops the buffer, as always.)</li>
 * <li><b>Secrets.</b> {@link #location()} is the SPEC as {@code BackingSpec.redact} shows it; messages
 * are the reader's (no user info, no query); the identity holds the size and validator only.</li>
 * </ul>
 *
 * <p>Threads: none of its own; callers block in {@link #readFully} (bounded by the reader's deadline),
 * the reader's threads copy the bytes. Thread-safe. {@link #close()} closes the reader (idempotent).
 */
public final class HttpBacking implements Backing {
    /**
     * Pieces a long read is split into: a 1 MiB fill goes out as 4 requests at once, so over a link with
     * round trip R it costs about one R, not four. On loopback (nginx, 2 busy cores) 128 KiB to 1 MiB
     * pieces measured the same within the noise (the JDK client's CPU per byte bounds it there), so the
     * size is the smallest that keeps the per-request cost (headers, one more exchange) a small share.
     */
    public static final int PIECE_BYTES = 256 * 1024;
    private static final int ALIGN = 4096;
    /** Past the reader's own deadline: a guard against a reader that never completes a piece. */
    private static final long GUARD_MILLIS = 10_000;

    private final HttpRangeReader reader;
    private final String location;
    private final String readOnlyReason;
    private final BackingIdentity identity;
    private final int pieceBytes;

    /**
     * A backing over {@code reader}, which it owns from now on (closes it).
     *
     * @param location       the redacted SPEC, for {@link #location()}
     * @param readOnlyReason why {@link #openWriter()} refuses, e.g. {@code an HTTP(S) backing is read-only:
     *                       commit needs a writable file or NBD backing}
     */
    public HttpBacking(HttpRangeReader reader, String location, String readOnlyReason) {
        this(reader, location, readOnlyReason, PIECE_BYTES);
    }

    HttpBacking(HttpRangeReader reader, String location, String readOnlyReason, int pieceBytes) {
        if (pieceBytes < ALIGN || pieceBytes % ALIGN != 0) {
            throw new IllegalArgumentException("piece of " + pieceBytes + " bytes");
        }
        this.reader = reader;
        this.location = location;
        this.readOnlyReason = readOnlyReason;
        this.identity = identityOf(reader.object());
        this.pieceBytes = pieceBytes;
    }

    /**
     * The identity of a remote object: size and validator. The token is {@code http:size=N:etag="..."}
     * (or {@code :last-modified=...}), bytes outside printable ASCII, spaces and {@code %} percent-encoded;
     * past {@link BackingIdentity#MAX_TOKEN_BYTES} it ends in the SHA-256 of the validator instead. No
     * URL: the same object moved to another address (a mirror, a presigned URL of the same S3 object)
     * keeps its identity where its server keeps the ETag.
     */
    static BackingIdentity identityOf(RemoteObject o) {
        String kind = o.etag() != null ? "etag" : "last-modified";
        String validator = o.etag() != null ? o.etag() : o.lastModified();
        String token = "http:size=" + o.size() + ":" + kind + "=" + escape(validator, false);
        if (token.length() > BackingIdentity.MAX_TOKEN_BYTES) {
            token = "http:size=" + o.size() + ":" + kind + "-sha256=" + sha256(validator);
        }
        String shown = escape(validator, true);
        String description = "size=" + o.size() + " " + kind + " " + shown;
        if (description.length() > BackingIdentity.MAX_DESCRIPTION_BYTES) {
            description = "size=" + o.size() + " " + kind + "-sha256 " + sha256(validator);
        }
        return BackingIdentity.of(token, description, o.size());
    }

    @Override
    public String location() {
        return location;
    }

    @Override
    public long size() {
        return reader.size();
    }

    /** The identity seen at open; the sticky "backing changed" once the server said it changed. */
    @Override
    public BackingIdentity identity() throws IOException {
        throwIfChanged();
        return identity;
    }

    @Override
    public int maxInFlight() {
        return reader.connections();
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        int length = dst.remaining();
        if (offset < 0 || offset > size() - length) {
            throw new CorfsException(Reason.IO, "read of " + length + " bytes at " + offset + " is outside "
                    + location + " (" + size() + " bytes)");
        }
        if (length <= pieceBytes) {
            reader.readFully(dst, offset);
            return;
        }
        long count = ((long) length + pieceBytes - 1) / pieceBytes;
        int piece = (int) Math.min(length, ((length + count - 1) / count + ALIGN - 1) / ALIGN * ALIGN);
        List<CompletableFuture<Void>> parts = new ArrayList<>((int) count);
        CompletableFuture<Void> firstFailure = new CompletableFuture<>();
        int start = dst.position();
        for (int at = 0; at < length; at += Math.min(piece, length - at)) {
            ByteBuffer slice = dst.duplicate();
            slice.position(start + at).limit(start + at + Math.min(piece, length - at));
            CompletableFuture<Void> part = reader.read(slice.slice(), offset + at);
            part.whenComplete((v, e) -> {
                if (e != null) {
                    firstFailure.completeExceptionally(e);
                }
            });
            parts.add(part);
        }
        CompletableFuture<Void> all = CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new));
        try {
            CompletableFuture.anyOf(all, firstFailure)
                    .get(reader.timeout().toMillis() + GUARD_MILLIS, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            cancel(parts);
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, "interrupted while reading " + location, e);
        } catch (TimeoutException e) {
            cancel(parts);
            throw new CorfsException(Reason.IO, location + " read of " + length + " bytes at " + offset
                    + " did not complete", e);
        } catch (ExecutionException e) {
            cancel(parts);
            throw asIo(e.getCause());
        }
        dst.position(dst.limit());
    }

    /** Stops every piece still running: once this returns, none writes into the caller's buffer. */
    private static void cancel(List<CompletableFuture<Void>> parts) {
        for (CompletableFuture<Void> p : parts) {
            p.cancel(false);
        }
    }

    private IOException asIo(Throwable t) {
        Throwable c = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
        if (c instanceof IOException e) {
            return e;
        }
        return new CorfsException(Reason.IO, location + ": " + c, c);
    }

    /** HTTP cannot tell holes from data: the rest of the object is one UNKNOWN extent. */
    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        if (offset < 0 || offset >= size()) {
            throw new CorfsException(Reason.IO, "allocation at " + offset + " is outside " + location + " ("
                    + size() + " bytes)");
        }
        throwIfChanged();
        return new Allocation(Allocation.Kind.UNKNOWN, Math.min(max, size() - offset));
    }

    @Override
    public Writer openWriter() throws IOException {
        throw new CorfsException(Reason.READ_ONLY, location + ": " + readOnlyReason);
    }

    @Override
    public void close() {
        reader.close();
    }

    @Override
    public String toString() {
        return location;
    }

    private void throwIfChanged() throws CorfsException {
        CorfsException changed = reader.changed();
        if (changed != null) {
            throw changed;
        }
    }

    /**
     * {@code s} with every char outside printable ASCII (and {@code %}; and space unless {@code keepSpace})
     * as {@code %XX} of its UTF-8 bytes: fit for a token or a description whatever a server sent.
     */
    private static String escape(String s, boolean keepSpace) {
        StringBuilder out = new StringBuilder(s.length());
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if (c > 0x20 && c < 0x7f && c != '%' || c == ' ' && keepSpace) {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return out.toString();
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no SHA-256 in this JVM", e);
        }
    }
}
