package corfs.backing.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * NBD inside TLS, driven by an {@link SSLEngine} over a blocking socket channel, so the same code runs
 * over TCP and Unix sockets.
 *
 * <p>Threads and locks: the {@link #handshake} runs on the connecting thread before anyone else has the
 * wire. Afterwards one thread reads (it alone touches {@code netIn}/{@code appIn}) and one writes; the
 * engine allows {@code wrap} and {@code unwrap} to run at the same time. {@code writeLock} guards
 * {@code netOut} and every {@code wrap}: the writer holds it per {@link #write}, and the reader takes it
 * to answer a post-handshake message (a TLS 1.3 KeyUpdate). It is the only lock here, so there is no
 * order to keep.
 */
final class TlsWire extends NbdWire {
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);

    private final SSLEngine engine;
    private ByteBuffer netIn;
    private ByteBuffer appIn;
    private final ByteBuffer netOut;
    private final ReentrantLock writeLock = new ReentrantLock();

    private TlsWire(SocketChannel channel, SSLEngine engine) {
        super(channel);
        this.engine = engine;
        int packet = engine.getSession().getPacketBufferSize();
        this.netIn = ByteBuffer.allocate(packet).flip();
        this.appIn = ByteBuffer.allocate(engine.getSession().getApplicationBufferSize()).flip();
        this.netOut = ByteBuffer.allocate(packet);
    }

    /** Runs the TLS handshake on {@code channel} (the server has just acknowledged STARTTLS). */
    static TlsWire handshake(SocketChannel channel, SSLEngine engine) throws IOException {
        TlsWire w = new TlsWire(channel, engine);
        engine.beginHandshake();
        HandshakeStatus hs = engine.getHandshakeStatus();
        while (hs != HandshakeStatus.FINISHED && hs != HandshakeStatus.NOT_HANDSHAKING) {
            switch (hs) {
                case NEED_WRAP -> hs = w.wrapAndSend(EMPTY).getHandshakeStatus();
                case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                    w.appIn.compact();
                    SSLEngineResult r = w.unwrap();
                    w.appIn.flip();
                    if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                        throw new SSLException("server closed the TLS session during the handshake");
                    }
                    hs = r.getHandshakeStatus();
                }
                case NEED_TASK -> {
                    runTasks(engine);
                    hs = engine.getHandshakeStatus();
                }
                default -> throw new SSLException("unexpected TLS handshake state " + hs);
            }
        }
        return w;
    }

    private static void runTasks(SSLEngine engine) {
        Runnable task;
        while ((task = engine.getDelegatedTask()) != null) {
            task.run();
        }
    }

    /** One unwrap into {@code appIn} (in write mode), reading from the socket until a record is whole. */
    private SSLEngineResult unwrap() throws IOException {
        while (true) {
            SSLEngineResult r = engine.unwrap(netIn, appIn);
            switch (r.getStatus()) {
                case OK, CLOSED -> {
                    return r;
                }
                case BUFFER_OVERFLOW -> {
                    ByteBuffer bigger = ByteBuffer.allocate(appIn.position() + engine.getSession().getApplicationBufferSize());
                    appIn.flip();
                    bigger.put(appIn);
                    appIn = bigger;
                }
                case BUFFER_UNDERFLOW -> {
                    netIn.compact();
                    if (!netIn.hasRemaining()) {
                        ByteBuffer bigger = ByteBuffer.allocate(netIn.capacity() + engine.getSession().getPacketBufferSize());
                        netIn.flip();
                        bigger.put(netIn);
                        netIn = bigger;
                    }
                    int n = channel.read(netIn);
                    netIn.flip();
                    if (n < 0) {
                        throw new EOFException("server closed the connection inside a TLS record");
                    }
                }
            }
        }
    }

    private SSLEngineResult wrapAndSend(ByteBuffer... srcs) throws IOException {
        writeLock.lock();
        try {
            netOut.clear();
            SSLEngineResult r = engine.wrap(srcs, netOut);
            if (r.getStatus() != SSLEngineResult.Status.OK && r.getStatus() != SSLEngineResult.Status.CLOSED) {
                throw new SSLException("TLS wrap failed: " + r.getStatus());
            }
            netOut.flip();
            while (netOut.hasRemaining()) {
                channel.write(netOut);
            }
            if (r.getHandshakeStatus() == HandshakeStatus.NEED_TASK) {
                runTasks(engine);
            }
            return r;
        } finally {
            writeLock.unlock();
        }
    }

    @Override
    int read(ByteBuffer dst) throws IOException {
        while (!appIn.hasRemaining()) {
            appIn.clear();
            SSLEngineResult r;
            try {
                r = unwrap();
            } finally {
                appIn.flip();
            }
            HandshakeStatus hs = r.getHandshakeStatus();
            if (hs == HandshakeStatus.NEED_TASK) {
                runTasks(engine);
                hs = engine.getHandshakeStatus();
            }
            if (hs == HandshakeStatus.NEED_WRAP) {
                wrapAndSend(EMPTY);
            }
            if (r.getStatus() == SSLEngineResult.Status.CLOSED && !appIn.hasRemaining()) {
                return -1;
            }
        }
        int n = Math.min(appIn.remaining(), dst.remaining());
        dst.put(appIn.slice(appIn.position(), n));
        appIn.position(appIn.position() + n);
        return n;
    }

    @Override
    void write(ByteBuffer... srcs) throws IOException {
        writeLock.lock();
        try {
            while (hasRemaining(srcs)) {
                SSLEngineResult r = wrapAndSend(srcs);
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                    throw new SSLException("TLS session closed");
                }
            }
        } finally {
            writeLock.unlock();
        }
    }

    private static boolean hasRemaining(ByteBuffer[] srcs) {
        for (ByteBuffer b : srcs) {
            if (b.hasRemaining()) {
                return true;
            }
        }
        return false;
    }

    @Override
    void shutdownOutput() throws IOException {
        writeLock.lock();
        try {
            engine.closeOutbound();
            while (!engine.isOutboundDone()) {
                wrapAndSend(EMPTY);
            }
        } finally {
            writeLock.unlock();
        }
    }
}
