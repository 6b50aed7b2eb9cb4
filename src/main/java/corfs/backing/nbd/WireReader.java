package corfs.backing.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Buffered, big-endian reading of the server's side of a connection. Headers are parsed out of a small
 * buffer; payloads go straight from the wire into the destination once the buffer is drained.
 *
 * <p>Owned by one thread at a time (the connecting thread during the handshake, then the reader
 * thread); not thread-safe.
 */
final class WireReader {
    private static final int BUFFER = 64 * 1024;

    private NbdWire wire;
    private final ByteBuffer buf = ByteBuffer.allocate(BUFFER);
    private final ByteBuffer sink = ByteBuffer.allocate(BUFFER);

    WireReader(NbdWire wire) {
        this.wire = wire;
        buf.flip();
    }

    /** Continues on another wire (after STARTTLS); nothing may be left unread on the old one. */
    void switchTo(NbdWire next) throws IOException {
        if (buf.hasRemaining()) {
            throw new IOException("server sent " + buf.remaining() + " bytes before the TLS handshake");
        }
        wire = next;
    }

    /** Makes at least {@code n} (≤ 64 KiB) bytes available to the get methods. */
    void need(int n) throws IOException {
        assert n <= BUFFER;
        if (buf.remaining() >= n) {
            return;
        }
        buf.compact();
        try {
            while (buf.position() < n) {
                if (wire.read(buf) < 0) {
                    throw new EOFException("server closed the connection");
                }
            }
        } finally {
            buf.flip();
        }
    }

    int getInt() throws IOException {
        need(4);
        return buf.getInt();
    }

    long getLong() throws IOException {
        need(8);
        return buf.getLong();
    }

    int getShort() throws IOException {
        need(2);
        return buf.getShort() & 0xffff;
    }

    /** The next int without consuming it. */
    int peekInt() throws IOException {
        need(4);
        return buf.getInt(buf.position());
    }

    /** Fills {@code dst} completely. */
    void readFully(ByteBuffer dst) throws IOException {
        if (buf.hasRemaining()) {
            int n = Math.min(buf.remaining(), dst.remaining());
            ByteBuffer part = buf.slice(buf.position(), n);
            dst.put(part);
            buf.position(buf.position() + n);
        }
        while (dst.hasRemaining()) {
            if (dst.remaining() < 4096) {
                // small tails go through the buffer so the next header comes with them
                need(Math.min(dst.remaining(), BUFFER));
                int n = Math.min(buf.remaining(), dst.remaining());
                dst.put(buf.slice(buf.position(), n));
                buf.position(buf.position() + n);
            } else if (wire.read(dst) < 0) {
                throw new EOFException("server closed the connection");
            }
        }
    }

    /** Reads {@code n} bytes into a new array (n is bounded by the caller). */
    byte[] getBytes(int n) throws IOException {
        byte[] b = new byte[n];
        readFully(ByteBuffer.wrap(b));
        return b;
    }

    /** Reads and drops {@code n} bytes, through a fixed buffer. */
    void skip(long n) throws IOException {
        while (n > 0) {
            sink.clear().limit((int) Math.min(n, BUFFER));
            n -= sink.limit();
            readFully(sink);
        }
    }
}
