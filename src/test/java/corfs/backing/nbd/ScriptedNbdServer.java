package corfs.backing.nbd;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * An NBD server on loopback whose every reply the test writes by hand, to produce what real servers never
 * send: replies for unknown cookies, chunks outside their request, overlapping chunks, absurd lengths,
 * connections dropped mid-reply. It negotiates the fixed newstyle handshake (structured replies and
 * {@code base:allocation} with context id {@value #CONTEXT} when {@code structured}), then hands the
 * client's requests to the test one by one.
 *
 * <p>Its one thread accepts and negotiates; afterwards only the test thread uses it. Closing it closes
 * the sockets.
 */
final class ScriptedNbdServer implements AutoCloseable {
    static final int CONTEXT = 7;

    /** A request as the client sent it. */
    record Request(int flags, int type, long cookie, long offset, int length, byte[] payload) {
    }

    private final ServerSocket listener;
    private final CompletableFuture<Socket> accepted = new CompletableFuture<>();
    /** With {@link #refusingExports}: the option the client sent after GO was refused. */
    final CompletableFuture<Integer> optionAfterRefusal = new CompletableFuture<>();
    private boolean refuseExport;
    private Socket socket;
    private DataInputStream in;
    private DataOutputStream out;

    ScriptedNbdServer(boolean structured, long size, int transmissionFlags, int[] blockSizes) throws IOException {
        listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread t = new Thread(() -> {
            try {
                Socket s = listener.accept();
                negotiate(s, structured, size, transmissionFlags, blockSizes);
                accepted.complete(s);
            } catch (IOException | RuntimeException e) {
                accepted.completeExceptionally(e);
            }
        }, "scripted-nbd-server");
        t.setDaemon(true);
        t.start();
    }

    /** A server that answers GO with NBD_REP_ERR_UNKNOWN and records the client's next option. */
    static ScriptedNbdServer refusingExports() throws IOException {
        return new ScriptedNbdServer(true);
    }

    private ScriptedNbdServer(boolean refuse) throws IOException {
        this.refuseExport = refuse;
        listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread t = new Thread(() -> {
            try {
                Socket s = listener.accept();
                negotiate(s, true, 1 << 20, 0, null);
                accepted.complete(s);
            } catch (IOException | RuntimeException e) {
                accepted.completeExceptionally(e);
                optionAfterRefusal.completeExceptionally(e);
            }
        }, "scripted-nbd-server");
        t.setDaemon(true);
        t.start();
    }

    /** A server that sends {@code preamble} as its first bytes and then closes. */
    static ScriptedNbdServer raw(byte[] preamble) throws IOException {
        return new ScriptedNbdServer(preamble);
    }

    private ScriptedNbdServer(byte[] preamble) throws IOException {
        listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Thread t = new Thread(() -> {
            try (Socket s = listener.accept()) {
                s.getOutputStream().write(preamble);
                s.getOutputStream().flush();
                s.getInputStream().read(new byte[64]);
                Thread.sleep(200);
            } catch (IOException | InterruptedException e) {
                // the client went away
            }
        }, "scripted-nbd-raw");
        t.setDaemon(true);
        t.start();
    }

    String uri() {
        return "nbd://127.0.0.1:" + listener.getLocalPort() + "/disk";
    }

    private void negotiate(Socket s, boolean structured, long size, int tflags, int[] blockSizes) throws IOException {
        DataInputStream i = new DataInputStream(s.getInputStream());
        DataOutputStream o = new DataOutputStream(s.getOutputStream());
        o.writeLong(NbdProtocol.INIT_MAGIC);
        o.writeLong(NbdProtocol.OPTS_MAGIC);
        o.writeShort(NbdProtocol.FLAG_FIXED_NEWSTYLE | NbdProtocol.FLAG_NO_ZEROES);
        o.flush();
        i.readInt();
        while (true) {
            if (i.readLong() != NbdProtocol.OPTS_MAGIC) {
                throw new IOException("bad option magic");
            }
            int opt = i.readInt();
            byte[] data = new byte[i.readInt()];
            i.readFully(data);
            if (opt == NbdProtocol.OPT_STRUCTURED_REPLY && structured) {
                optionReply(o, opt, NbdProtocol.REP_ACK, new byte[0]);
            } else if (opt == NbdProtocol.OPT_SET_META_CONTEXT && structured) {
                byte[] name = NbdProtocol.BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
                optionReply(o, opt, NbdProtocol.REP_META_CONTEXT, ByteBuffer.allocate(4 + name.length).putInt(CONTEXT).put(name).array());
                optionReply(o, opt, NbdProtocol.REP_ACK, new byte[0]);
            } else if (opt == NbdProtocol.OPT_GO && refuseExport) {
                optionReply(o, opt, NbdProtocol.REP_ERR_UNKNOWN, "no such export".getBytes(StandardCharsets.UTF_8));
                o.flush();
                i.readLong();
                optionAfterRefusal.complete(i.readInt());
                return;
            } else if (opt == NbdProtocol.OPT_GO) {
                optionReply(o, opt, NbdProtocol.REP_INFO, ByteBuffer.allocate(12).putShort((short) 0).putLong(size)
                        .putShort((short) (NbdProtocol.FLAG_HAS_FLAGS | tflags)).array());
                if (blockSizes != null) {
                    optionReply(o, opt, NbdProtocol.REP_INFO, ByteBuffer.allocate(14).putShort((short) 3)
                            .putInt(blockSizes[0]).putInt(blockSizes[1]).putInt(blockSizes[2]).array());
                }
                optionReply(o, opt, NbdProtocol.REP_ACK, new byte[0]);
                o.flush();
                return;
            } else {
                optionReply(o, opt, NbdProtocol.REP_ERR_UNSUP, new byte[0]);
            }
            o.flush();
        }
    }

    private static void optionReply(DataOutputStream o, int opt, int type, byte[] data) throws IOException {
        o.writeLong(NbdProtocol.OPTION_REPLY_MAGIC);
        o.writeInt(opt);
        o.writeInt(type);
        o.writeInt(data.length);
        o.write(data);
    }

    private void attach() throws IOException {
        if (socket == null) {
            try {
                socket = accepted.get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new IOException("no client negotiated", e);
            }
            in = new DataInputStream(socket.getInputStream());
            // buffered: each reply leaves in one write, so a client that hangs up on a bad header cannot
            // make the rest of our write fail (a test of the client, not of our own socket)
            out = new DataOutputStream(new java.io.BufferedOutputStream(socket.getOutputStream(), 1 << 17));
        }
    }

    /** The next request from the client (blocks up to the socket timeout of 10 s). */
    Request nextRequest() throws IOException {
        attach();
        socket.setSoTimeout(10_000);
        if (in.readInt() != NbdProtocol.REQUEST_MAGIC) {
            throw new IOException("bad request magic");
        }
        int flags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long cookie = in.readLong();
        long offset = in.readLong();
        int length = in.readInt();
        byte[] payload = null;
        if (type == NbdProtocol.CMD_WRITE) {
            payload = new byte[length];
            in.readFully(payload);
        }
        return new Request(flags, type, cookie, offset, length, payload);
    }

    OutputStream out() throws IOException {
        attach();
        return out;
    }

    void simpleReply(long cookie, int error, byte[] data) throws IOException {
        attach();
        out.writeInt(NbdProtocol.SIMPLE_REPLY_MAGIC);
        out.writeInt(error);
        out.writeLong(cookie);
        if (data != null) {
            out.write(data);
        }
        out.flush();
    }

    void chunkHeader(long cookie, int flags, int type, long length) throws IOException {
        attach();
        out.writeInt(NbdProtocol.STRUCTURED_REPLY_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeInt((int) length);
    }

    void data(long cookie, boolean done, long offset, byte[] data) throws IOException {
        chunkHeader(cookie, done ? NbdProtocol.REPLY_FLAG_DONE : 0, NbdProtocol.REPLY_TYPE_OFFSET_DATA, 8 + data.length);
        out.writeLong(offset);
        out.write(data);
        out.flush();
    }

    void hole(long cookie, boolean done, long offset, int length) throws IOException {
        chunkHeader(cookie, done ? NbdProtocol.REPLY_FLAG_DONE : 0, NbdProtocol.REPLY_TYPE_OFFSET_HOLE, 12);
        out.writeLong(offset);
        out.writeInt(length);
        out.flush();
    }

    void none(long cookie) throws IOException {
        chunkHeader(cookie, NbdProtocol.REPLY_FLAG_DONE, NbdProtocol.REPLY_TYPE_NONE, 0);
        out.flush();
    }

    void error(long cookie, boolean done, int error, String message) throws IOException {
        byte[] m = message.getBytes(StandardCharsets.UTF_8);
        chunkHeader(cookie, done ? NbdProtocol.REPLY_FLAG_DONE : 0, NbdProtocol.REPLY_TYPE_ERROR, 6 + m.length);
        out.writeInt(error);
        out.writeShort(m.length);
        out.write(m);
        out.flush();
    }

    void blockStatus(long cookie, int context, int... lengthAndFlags) throws IOException {
        chunkHeader(cookie, NbdProtocol.REPLY_FLAG_DONE, NbdProtocol.REPLY_TYPE_BLOCK_STATUS, 4 + 4L * lengthAndFlags.length);
        out.writeInt(context);
        for (int v : lengthAndFlags) {
            out.writeInt(v);
        }
        out.flush();
    }

    /** Drops the connection (as a crashed server would). */
    void drop() throws IOException {
        attach();
        socket.close();
    }

    @Override
    public void close() throws IOException {
        listener.close();
        if (socket != null) {
            socket.close();
        }
        accepted.thenAccept(s -> {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        });
    }
}
