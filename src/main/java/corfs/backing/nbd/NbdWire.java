package corfs.backing.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * The byte stream under an NBD connection: a socket (TCP or Unix), plain or inside TLS.
 *
 * <p>Threads: one thread reads ({@link #read}) while another writes ({@link #write}); {@link #close}
 * may come from any thread and unblocks both (closing a blocking channel from another thread wakes
 * the threads blocked on it with {@link java.nio.channels.AsynchronousCloseException}: nobody is
 * interrupted). Writes are serialised by the caller (the connection's writer thread), except that the
 * TLS reader may answer a post-handshake message under {@link TlsWire}'s write lock.
 */
abstract class NbdWire implements AutoCloseable {
    protected final SocketChannel channel;

    NbdWire(SocketChannel channel) {
        this.channel = channel;
    }

    /** Reads at least one byte into {@code dst} (which has room), or returns -1 at end of stream. */
    abstract int read(ByteBuffer dst) throws IOException;

    /** Writes every remaining byte of each buffer, in order. */
    abstract void write(ByteBuffer... srcs) throws IOException;

    /** Ends the session politely where the wire has a way to (TLS close_notify); bounded by the socket. */
    void shutdownOutput() throws IOException {
    }

    /** Closes the socket; idempotent, never blocks for long. */
    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            // nothing left to do with a socket that fails to close
        }
    }

    /** Plain NBD straight on the socket. */
    static final class Plain extends NbdWire {
        Plain(SocketChannel channel) {
            super(channel);
        }

        /**
         * NIO reads into a heap buffer through a temporary direct buffer that it caches per thread at the
         * largest size ever asked; slicing heap reads keeps that cache small whatever the request size.
         */
        private static final int MAX_HEAP_READ = 256 * 1024;

        @Override
        int read(ByteBuffer dst) throws IOException {
            ByteBuffer target = !dst.isDirect() && dst.remaining() > MAX_HEAP_READ
                    ? dst.slice(dst.position(), MAX_HEAP_READ) : dst;
            int n;
            do {
                n = channel.read(target);
            } while (n == 0);
            if (target != dst && n > 0) {
                dst.position(dst.position() + n);
            }
            return n;
        }

        @Override
        void write(ByteBuffer... srcs) throws IOException {
            long left = 0;
            for (ByteBuffer b : srcs) {
                left += b.remaining();
            }
            while (left > 0) {
                left -= channel.write(srcs);
            }
        }
    }
}
