package corfs.backing.http;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A hostile HTTP/1.1 server on 127.0.0.1 made of a plain {@link ServerSocket}: every reply is the bytes a
 * script returns for the request, so it can send what nginx and the JDK's server never would (oversized
 * or malformed heads, a wrong Content-Range, a body cut short, a kept-alive connection closed without
 * notice). Records every request with the connection it came on.
 */
final class ScriptedServer implements AutoCloseable {
    private static final Pattern RANGE = Pattern.compile("(?i)\r\nrange: bytes=(\\d+)-(\\d+)\r\n");

    /** One request: the connection's number (from 1), the request's number on it (from 1), its head. */
    record Request(int connection, int index, String head, long first, long last) {
        boolean conditional() {
            return head.toLowerCase().contains("\r\nif-match: ");
        }
    }

    /** The bytes to send back and whether to close the connection after them. */
    record Reply(byte[] bytes, boolean close) {
    }

    final byte[] content;
    final String etag = "\"s1\"";
    final List<Request> requests = new CopyOnWriteArrayList<>();
    volatile Function<Request, Reply> script;
    private final ServerSocket socket;
    private final AtomicInteger connections = new AtomicInteger();
    private final List<Socket> open = new CopyOnWriteArrayList<>();
    private final Thread acceptor;

    ScriptedServer(byte[] content) throws IOException {
        this.content = content;
        this.script = this::good;
        socket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        acceptor = new Thread(this::accept, "scripted-server");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    URI uri() {
        return URI.create("http://127.0.0.1:" + socket.getLocalPort() + "/data");
    }

    /** The right reply to {@code r}: a 206 with its range, Content-Length, Content-Range and the ETag. */
    Reply good(Request r) {
        return new Reply(reply(r, head206(r, r.first, r.last, r.last - r.first + 1, ""), r.first,
                (int) (r.last - r.first + 1)), false);
    }

    String head206(Request r, long first, long last, long contentLength, String extra) {
        return "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + first + "-" + last + "/" + content.length
                + "\r\nContent-Length: " + contentLength + "\r\nETag: " + etag + "\r\n" + extra + "\r\n";
    }

    byte[] reply(Request r, String head, long from, int length) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(head.getBytes(StandardCharsets.ISO_8859_1));
        out.write(content, (int) from, length);
        return out.toByteArray();
    }

    /** Connections whose first request was a conditional range read (the data path, not the probe). */
    long dataConnections() {
        return requests.stream().filter(r -> r.index() == 1 && r.conditional()).count();
    }

    private void accept() {
        while (!socket.isClosed()) {
            try {
                Socket s = socket.accept();
                open.add(s);
                int n = connections.incrementAndGet();
                Thread t = new Thread(() -> serve(s, n), "scripted-server-conn-" + n);
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket s, int connection) {
        try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
            s.setSoTimeout(30_000);
            for (int index = 1; ; index++) {
                String head = readHead(in);
                if (head == null) {
                    return;
                }
                Matcher m = RANGE.matcher(head);
                boolean ranged = m.find();
                long first = ranged ? Long.parseLong(m.group(1)) : 0;
                long last = ranged ? Long.parseLong(m.group(2)) : content.length - 1;
                Request r = new Request(connection, index, head, first, last);
                requests.add(r);
                Reply reply = script.apply(r);
                out.write(reply.bytes());
                out.flush();
                if (reply.close()) {
                    return;
                }
            }
        } catch (IOException e) {
            // the client went away
        }
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) >= 0) {
            b.write(c);
            byte[] a = b.toByteArray();
            int n = a.length;
            if (n >= 4 && a[n - 4] == '\r' && a[n - 3] == '\n' && a[n - 2] == '\r' && a[n - 1] == '\n') {
                return new String(a, StandardCharsets.ISO_8859_1);
            }
            if (n > 65536) {
                return null;
            }
        }
        return null;
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException e) {
            // closing anyway
        }
        for (Socket s : open) {
            try {
                s.close();
            } catch (IOException e) {
                // closing anyway
            }
        }
    }
}
