package corfs.backing.nbd;

import static corfs.backing.nbd.NbdProtocol.*;

import corfs.CorfsException.Reason;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;

/**
 * The fixed newstyle handshake, one option at a time (the client never sends an option before the final
 * reply to the previous one): [STARTTLS and the TLS handshake], STRUCTURED_REPLY, SET_META_CONTEXT
 * {@code base:allocation}, then GO asking for {@code NBD_INFO_BLOCK_SIZE}. Falls back to simple replies
 * when the server has no structured replies, to no block status when it has no {@code base:allocation},
 * and to EXPORT_NAME when it does not know GO.
 *
 * <p>Refused, each with a message naming the server: oldstyle and non-fixed newstyle servers, a server
 * that requires TLS when the URI is plain ({@code nbd://}), a server without TLS when the URI asks for
 * it ({@code nbds://}), certificates that do not verify, an unknown export, option replies longer than
 * 64 KiB or for another option, transmission flags without {@code HAS_FLAGS}, an export size of 2^63 or
 * more, and block sizes that break the protocol's rules.
 *
 * <p>A refusal during option haggling ends with {@code NBD_OPT_ABORT} (the soft disconnect the protocol
 * asks for); a failed TLS handshake ends with a hard one.
 *
 * <p>Runs on the connection's reader thread before the connection is handed out; not thread-safe.
 */
final class Handshake {
    private static final int MAX_OPTION_REPLY = 64 * 1024;

    /** What the handshake settled. */
    record Result(NbdWire wire, long size, int flags, BlockSizes blockSizes, boolean structured, int metaContextId) {
        boolean blockStatus() {
            return metaContextId >= 0;
        }
    }

    private final NbdUri uri;
    private final NbdOptions options;
    private final SocketChannel channel;
    private final WireReader in;
    private NbdWire wire;
    private boolean noZeroes;
    /** Whether a refusal should end with NBD_OPT_ABORT (option haggling in progress, wire in a known state). */
    private boolean haggling;

    Handshake(NbdUri uri, NbdOptions options, SocketChannel channel, NbdWire wire, WireReader in) {
        this.uri = uri;
        this.options = options;
        this.channel = channel;
        this.wire = wire;
        this.in = in;
    }

    Result run() throws IOException {
        long magic = in.getLong();
        if (magic != INIT_MAGIC) {
            throw refused(Reason.IO, "not an NBD server (first 8 bytes are not NBDMAGIC)");
        }
        long style = in.getLong();
        if (style == OLDSTYLE_MAGIC) {
            throw refused(Reason.IO, "the server speaks the oldstyle NBD handshake, which corfs does not support");
        }
        if (style != OPTS_MAGIC) {
            throw refused(Reason.IO, "not an NBD server (no IHAVEOPT after NBDMAGIC)");
        }
        int serverFlags = in.getShort();
        if ((serverFlags & FLAG_FIXED_NEWSTYLE) == 0) {
            throw refused(Reason.IO, "the server does not support fixed newstyle negotiation");
        }
        noZeroes = (serverFlags & FLAG_NO_ZEROES) != 0;
        sendInt(FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0));
        haggling = true;
        try {
            return negotiate();
        } catch (NbdException e) {
            if (haggling) {
                abort();
            }
            throw e;
        }
    }

    /** The soft disconnect the protocol asks of a client that gives up during option haggling. */
    private void abort() {
        try {
            sendOption(OPT_ABORT, new byte[0]);
        } catch (IOException ignored) {
            // the connection is being dropped anyway
        }
    }

    private Result negotiate() throws IOException {
        if (uri.tls()) {
            startTls();
        }
        boolean structured = false;
        if (options.structuredReplies()) {
            Reply r = option(OPT_STRUCTURED_REPLY, new byte[0]);
            structured = r.type == REP_ACK;
            if (!structured) {
                checkNotFatal(r, "structured replies");
            }
        }
        int metaContextId = -1;
        if (structured && options.blockStatus()) {
            metaContextId = setMetaContext();
        }
        return go(structured, metaContextId);
    }

    private void startTls() throws IOException {
        Reply r = option(OPT_STARTTLS, new byte[0]);
        if (r.type != REP_ACK) {
            throw refused(Reason.IO, "the server does not offer TLS (" + replyName(r.type) + r.message()
                    + "); nbds:// needs a TLS server, use nbd:// for a plain one");
        }
        haggling = false; // the server now waits for a TLS ClientHello: no plain option may follow
        String hostname = options.tlsHostname() != null ? options.tlsHostname() : uri.certificateHostname();
        if (hostname == null) {
            throw refused(Reason.INVALID_ARGUMENT, "nbds+unix:// needs tls-hostname (the name on the server's certificate)");
        }
        SSLEngine engine = TlsContexts.clientEngine(options, hostname, uri.port());
        try {
            NbdWire tls = TlsWire.handshake(channel, engine);
            in.switchTo(tls);
            wire = tls;
            haggling = true;
        } catch (SSLException e) {
            throw refused(Reason.IO, "TLS handshake failed (is the server's certificate signed by tls-ca and issued to '"
                    + hostname + "'?): " + e.getMessage(), e);
        }
    }

    private int setMetaContext() throws IOException {
        byte[] name = uri.exportName().getBytes(StandardCharsets.UTF_8);
        byte[] query = BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
        ByteBuffer data = ByteBuffer.allocate(4 + name.length + 4 + 4 + query.length);
        data.putInt(name.length).put(name).putInt(1).putInt(query.length).put(query);
        sendOption(OPT_SET_META_CONTEXT, data.array());
        int id = -1;
        while (true) {
            Reply r = reply(OPT_SET_META_CONTEXT);
            if (r.type == REP_META_CONTEXT) {
                if (r.data.length < 4) {
                    throw refused(Reason.IO, "malformed NBD_REP_META_CONTEXT");
                }
                ByteBuffer b = ByteBuffer.wrap(r.data);
                int ctx = b.getInt();
                String ctxName = new String(r.data, 4, r.data.length - 4, StandardCharsets.UTF_8);
                if (ctxName.equals(BASE_ALLOCATION)) {
                    id = ctx;
                }
                continue;
            }
            if (r.type == REP_ACK) {
                return id;
            }
            checkNotFatal(r, "block status");
            return -1;
        }
    }

    private Result go(boolean structured, int metaContextId) throws IOException {
        byte[] name = uri.exportName().getBytes(StandardCharsets.UTF_8);
        ByteBuffer data = ByteBuffer.allocate(4 + name.length + 2 + 2);
        data.putInt(name.length).put(name).putShort((short) 1).putShort((short) INFO_BLOCK_SIZE);
        sendOption(OPT_GO, data.array());
        long size = -1;
        int flags = 0;
        boolean gotExport = false;
        BlockSizes sizes = BlockSizes.DEFAULT;
        while (true) {
            Reply r = reply(OPT_GO);
            if (r.type == REP_INFO) {
                if (r.data.length < 2) {
                    throw refused(Reason.IO, "malformed NBD_REP_INFO");
                }
                ByteBuffer b = ByteBuffer.wrap(r.data);
                int info = b.getShort() & 0xffff;
                if (info == INFO_EXPORT) {
                    if (r.data.length != 12) {
                        throw refused(Reason.IO, "malformed NBD_INFO_EXPORT");
                    }
                    size = b.getLong();
                    flags = b.getShort() & 0xffff;
                    gotExport = true;
                } else if (info == INFO_BLOCK_SIZE) {
                    if (r.data.length != 14) {
                        throw refused(Reason.IO, "malformed NBD_INFO_BLOCK_SIZE");
                    }
                    long min = b.getInt() & 0xffffffffL;
                    long pref = b.getInt() & 0xffffffffL;
                    long max = b.getInt() & 0xffffffffL;
                    sizes = BlockSizes.of(min, pref, max);
                    if (sizes == null) {
                        throw refused(Reason.IO, "the server sent invalid block sizes (minimum " + min + ", preferred "
                                + pref + ", maximum " + max + ")");
                    }
                }
                continue; // other information is ignored, as the protocol says
            }
            if (r.type == REP_ACK) {
                haggling = false; // in transmission now, whatever we think of the answer
                if (!gotExport) {
                    throw refused(Reason.IO, "the server accepted GO without NBD_INFO_EXPORT");
                }
                return result(size, flags, sizes, structured, metaContextId);
            }
            if (r.type == REP_ERR_UNSUP) {
                return exportName(structured, metaContextId);
            }
            if (r.type == REP_ERR_UNKNOWN) {
                throw refused(Reason.IO, "the server has no export named '" + uri.exportName() + "'" + r.message());
            }
            checkNotFatal(r, "the export");
            throw refused(Reason.IO, "the server refused the export: " + replyName(r.type) + r.message());
        }
    }

    /** The old way in, for servers without GO: no error reply, no block sizes. */
    private Result exportName(boolean structured, int metaContextId) throws IOException {
        sendOption(OPT_EXPORT_NAME, uri.exportName().getBytes(StandardCharsets.UTF_8));
        haggling = false;
        long size = in.getLong();
        int flags = in.getShort();
        if (!noZeroes) {
            in.skip(124);
        }
        return result(size, flags, BlockSizes.DEFAULT, structured, metaContextId);
    }

    private Result result(long size, int flags, BlockSizes sizes, boolean structured, int metaContextId)
            throws NbdException {
        if (size < 0) {
            throw refused(Reason.IO, "the server claims an export of 2^63 bytes or more");
        }
        if ((flags & FLAG_HAS_FLAGS) == 0) {
            throw refused(Reason.IO, "the server's transmission flags lack NBD_FLAG_HAS_FLAGS");
        }
        return new Result(wire, size, flags, sizes, structured, metaContextId);
    }

    /** Errors that end the handshake whatever option was asked: TLS required, shutting down. */
    private void checkNotFatal(Reply r, String what) throws NbdException {
        if (r.type == REP_ERR_TLS_REQD) {
            throw refused(Reason.IO, "the server requires TLS: use an nbds:// or nbds+unix:// URI" + r.message());
        }
        if (r.type == REP_ERR_SHUTDOWN) {
            throw refused(Reason.IO, "the server is shutting down" + r.message());
        }
        if ((r.type & REP_FLAG_ERROR) == 0) {
            throw refused(Reason.IO, "unexpected " + replyName(r.type) + " while negotiating " + what);
        }
    }

    private record Reply(int type, byte[] data) {
        String message() {
            if ((type & REP_FLAG_ERROR) == 0 || data.length == 0) {
                return "";
            }
            return ": " + new String(data, StandardCharsets.UTF_8).replaceAll("[\\p{Cntrl}]", "?");
        }
    }

    private Reply option(int option, byte[] data) throws IOException {
        sendOption(option, data);
        return reply(option);
    }

    private void sendOption(int option, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16 + data.length);
        b.putLong(OPTS_MAGIC).putInt(option).putInt(data.length).put(data).flip();
        wire.write(b);
    }

    private void sendInt(int v) throws IOException {
        wire.write(ByteBuffer.allocate(4).putInt(v).flip());
    }

    private Reply reply(int option) throws IOException {
        long magic = in.getLong();
        if (magic != OPTION_REPLY_MAGIC) {
            throw refused(Reason.IO, "bad option reply magic 0x" + Long.toHexString(magic));
        }
        int opt = in.getInt();
        int type = in.getInt();
        long length = in.getInt() & 0xffffffffL;
        if (opt != option) {
            throw refused(Reason.IO, "option reply for option " + opt + " while waiting for option " + option);
        }
        if (length > MAX_OPTION_REPLY) {
            throw refused(Reason.IO, "option reply of " + length + " bytes (more than 64 KiB)");
        }
        return new Reply(type, in.getBytes((int) length));
    }

    private NbdException refused(Reason reason, String message) {
        return new NbdException(reason, uri + ": " + message);
    }

    private NbdException refused(Reason reason, String message, Throwable cause) {
        return new NbdException(reason, uri + ": " + message, cause);
    }
}
