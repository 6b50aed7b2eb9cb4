package corfs.backing.http;

import corfs.backing.http.HeaderFile.Header;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpHeaders;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * One blocking HTTP/1.1 connection (a {@link Socket}, or an {@link SSLSocket} layered over one for https),
 * used by one exchange at a time: {@link #send} a request, {@link #readHead} the reply's status and
 * headers, then read its body with {@link #body} (a 206) or {@link #errorBody}. No pipelining.
 *
 * <p><b>A hostile server.</b> The head is parsed with bounds: a line at most {@value #MAX_LINE} bytes,
 * at most {@value #MAX_HEADERS} fields and {@value #MAX_HEAD_BYTES} bytes in all, CRLF line ends, no
 * folded lines, field names tokens, values without control characters, one Content-Length (digits only),
 * no Content-Length together with Transfer-Encoding, no transfer coding but chunked. A violation is a
 * {@link MalformedReplyException}. Every socket read has the timeout given ({@link #deadline}); connect
 * has its own.
 *
 * <p><b>Reuse.</b> The caller returns a connection to the pool only after a reply whose body it read to
 * exactly its Content-Length, with {@link #reusable()} true; any doubt about the framing (an error
 * status, a failure, bytes past the body, {@code Connection: close}, HTTP/1.0) closes it.
 *
 * <p><b>Threads.</b> Owned by the thread running its exchange; {@link #abort} may be called from any
 * thread (it closes the plain socket, which wakes a blocked read with an exception, and sends no TLS
 * close_notify that could block). No allocation per body read: the body is read into a per-connection
 * buffer and handed out as a reused view.
 */
final class HttpConnection implements AutoCloseable {
    static final int MAX_LINE = 8192;
    static final int MAX_HEADERS = 100;
    static final int MAX_HEAD_BYTES = 64 * 1024;
    private static final int MAX_INTERIM = 8;
    private static final int BUFFER_BYTES = 64 * 1024;

    /** The reply's status line and fields, and how its body is framed. */
    record Head(int status, HttpHeaders headers, long contentLength, boolean chunked, boolean keepAlive) {
    }

    /** The server sent something that is not HTTP/1.1 as this client reads it. Not retried. */
    static final class MalformedReplyException extends IOException {
        private static final long serialVersionUID = 1L;

        MalformedReplyException(String message) {
            super(message);
        }
    }

    /** The connection ended (or failed) before the first byte of a reply: a kept-alive one the server dropped. */
    static final class NoReplyException extends IOException {
        private static final long serialVersionUID = 1L;

        NoReplyException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final String origin;
    private final Socket raw;
    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;
    private final byte[] buf = new byte[BUFFER_BYTES];
    private final ByteBuffer view = ByteBuffer.wrap(buf);
    private final AtomicBoolean closed = new AtomicBoolean();
    private int pos;
    private int lim;
    private boolean keepAlive;
    // the framing of the current reply's body
    private boolean framed;
    private boolean chunked;
    private boolean ended;
    private long bodyLeft;
    private long chunkLeft;
    private int chunks;
    private long lastUsed = System.nanoTime();

    private HttpConnection(String origin, Socket raw, Socket socket) throws IOException {
        this.origin = origin;
        this.raw = raw;
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
    }

    /** {@code scheme://host:port} of {@code uri}: connections are pooled per origin. */
    static String origin(URI uri) {
        return uri.getScheme().toLowerCase(Locale.ROOT) + "://" + uri.getHost().toLowerCase(Locale.ROOT) + ":"
                + port(uri);
    }

    private static int port(URI uri) {
        return uri.getPort() != -1 ? uri.getPort() : "https".equalsIgnoreCase(uri.getScheme()) ? 443 : 80;
    }

    /**
     * Connects to {@code uri}'s origin within {@code connectMillis}, with TLS from {@code tls} (server
     * certificate and host name checked) for https. Socket reads time out after {@code readMillis}.
     */
    static HttpConnection connect(URI uri, SSLContext tls, int connectMillis, int readMillis) throws IOException {
        String host = uri.getHost();
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = port(uri);
        Socket raw = new Socket();
        try {
            raw.setTcpNoDelay(true);
            raw.connect(new InetSocketAddress(host, port), Math.max(1, connectMillis));
            raw.setSoTimeout(Math.max(1, readMillis));
            Socket s = raw;
            if ("https".equalsIgnoreCase(uri.getScheme())) {
                SSLSocket ssl = (SSLSocket) tls.getSocketFactory().createSocket(raw, host, port, true);
                SSLParameters p = ssl.getSSLParameters();
                p.setEndpointIdentificationAlgorithm("HTTPS");
                p.setApplicationProtocols(new String[] {"http/1.1"});
                ssl.setSSLParameters(p);
                try {
                    ssl.startHandshake();
                } catch (javax.net.ssl.SSLHandshakeException e) {
                    throw e;
                } catch (javax.net.ssl.SSLException e) {
                    // not TLS at the other end, or a refused certificate: a failure of the handshake, not a reset
                    javax.net.ssl.SSLHandshakeException h = new javax.net.ssl.SSLHandshakeException(e.getMessage());
                    h.initCause(e);
                    throw h;
                }
                s = ssl;
            }
            return new HttpConnection(origin(uri), raw, s);
        } catch (IOException | RuntimeException e) {
            raw.close();
            throw e;
        }
    }

    String origin() {
        return origin;
    }

    /** Nanoseconds since this connection last finished an exchange (or was made). */
    long idleNanos() {
        return System.nanoTime() - lastUsed;
    }

    /** Sets the timeout of every later socket read to the time left until {@code deadlineNanos} (1 ms at least). */
    void deadline(long deadlineNanos) throws IOException {
        long ms = TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime());
        raw.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, ms)));
    }

    /** Writes one request without a body: the request line, Host, {@code headers}, in one write. */
    void send(String method, URI uri, List<Header> headers) throws IOException {
        StringBuilder b = new StringBuilder(512);
        String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
        b.append(method).append(' ').append(path);
        if (uri.getRawQuery() != null) {
            b.append('?').append(uri.getRawQuery());
        }
        b.append(" HTTP/1.1\r\nHost: ").append(hostHeader(uri)).append("\r\n");
        for (Header h : headers) {
            b.append(h.name()).append(": ").append(h.value()).append("\r\n");
        }
        b.append("\r\n");
        for (int i = 0; i < b.length(); i++) {
            char c = b.charAt(i);
            if (c > 0xff || c == '\n' && (i == 0 || b.charAt(i - 1) != '\r') || c == '\r' && (i + 1 == b.length()
                    || b.charAt(i + 1) != '\n')) {
                throw new IllegalArgumentException("a request header holds a line break or a non-Latin-1 character");
            }
        }
        out.write(b.toString().getBytes(StandardCharsets.ISO_8859_1));
        out.flush();
    }

    /** The Host header for {@code uri}: the host, and the port when the URL names one (as S3 signs it). */
    static String hostHeader(URI uri) {
        String host = uri.getHost();
        if (host.contains(":") && !host.startsWith("[")) {
            host = "[" + host + "]";
        }
        return uri.getPort() == -1 ? host : host + ":" + uri.getPort();
    }

    /**
     * Reads the reply's head, skipping 1xx interim replies. Throws {@link NoReplyException} when the
     * connection ends before the reply's first byte, {@link MalformedReplyException} for a head outside
     * the bounds, other {@link IOException}s for transport failures.
     */
    Head readHead() throws IOException {
        int total = 0;
        for (int interim = 0; ; interim++) {
            String statusLine;
            if (interim == 0) {
                try {
                    if (!fill()) {
                        throw new NoReplyException("the connection closed before a reply", null);
                    }
                } catch (java.net.SocketTimeoutException e) {
                    throw e;
                } catch (IOException e) {
                    throw new NoReplyException("the connection failed before a reply: " + e.getClass().getSimpleName(),
                            e);
                }
            }
            statusLine = line();
            total += statusLine.length() + 2;
            if (statusLine.length() < 12 || !statusLine.startsWith("HTTP/1.") || statusLine.charAt(8) != ' '
                    || statusLine.length() > 12 && statusLine.charAt(12) != ' ') {
                throw new MalformedReplyException("a malformed status line");
            }
            char minor = statusLine.charAt(7);
            int status = 0;
            for (int i = 9; i < 12; i++) {
                char c = statusLine.charAt(i);
                if (c < '0' || c > '9') {
                    throw new MalformedReplyException("a malformed status code");
                }
                status = status * 10 + (c - '0');
            }
            if (minor != '0' && minor != '1' || status < 100) {
                throw new MalformedReplyException("a malformed status line");
            }
            Map<String, List<String>> fields = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            int count = 0;
            while (true) {
                String l = line();
                total += l.length() + 2;
                if (total > MAX_HEAD_BYTES) {
                    throw new MalformedReplyException("a reply head over " + MAX_HEAD_BYTES + " bytes");
                }
                if (l.isEmpty()) {
                    break;
                }
                if (++count > MAX_HEADERS) {
                    throw new MalformedReplyException("more than " + MAX_HEADERS + " header fields");
                }
                int colon = l.indexOf(':');
                if (colon <= 0) {
                    throw new MalformedReplyException("a header line without a field name");
                }
                String name = l.substring(0, colon);
                for (int i = 0; i < name.length(); i++) {
                    if (!isToken(name.charAt(i))) {
                        throw new MalformedReplyException("a malformed header field name");
                    }
                }
                String value = l.substring(colon + 1).strip();
                for (int i = 0; i < value.length(); i++) {
                    char c = value.charAt(i);
                    if (c < 0x20 && c != '\t' || c == 0x7f) {
                        throw new MalformedReplyException("a control character in a header field value");
                    }
                }
                fields.computeIfAbsent(name, k -> new ArrayList<>(1)).add(value);
            }
            if (status < 200) {
                if (status == 101 || interim >= MAX_INTERIM) {
                    throw new MalformedReplyException("an unexpected " + status + " reply");
                }
                continue;
            }
            long length = -1;
            List<String> lengths = fields.get("content-length");
            if (lengths != null) {
                for (String v : lengths) {
                    for (String part : v.split(",", -1)) {
                        String p = part.strip();
                        if (p.isEmpty() || p.length() > 18 || !p.chars().allMatch(c -> c >= '0' && c <= '9')) {
                            throw new MalformedReplyException("a malformed Content-Length");
                        }
                        long n = Long.parseLong(p);
                        if (length != -1 && n != length) {
                            throw new MalformedReplyException("two different Content-Lengths");
                        }
                        length = n;
                    }
                }
            }
            boolean chunked = false;
            List<String> codings = fields.get("transfer-encoding");
            if (codings != null) {
                if (lengths != null) {
                    throw new MalformedReplyException("both Content-Length and Transfer-Encoding");
                }
                String all = String.join(",", codings).toLowerCase(Locale.ROOT).replace(" ", "");
                if (!all.equals("chunked")) {
                    throw new MalformedReplyException("a transfer coding other than chunked");
                }
                chunked = true;
            }
            boolean close = fields.getOrDefault("connection", List.of()).stream()
                    .anyMatch(v -> v.toLowerCase(Locale.ROOT).contains("close"));
            keepAlive = minor == '1' && !close;
            this.chunked = chunked;
            this.framed = chunked || length >= 0;
            this.bodyLeft = length;
            this.chunkLeft = 0;
            this.chunks = 0;
            this.ended = length == 0 || status == 204 || status == 304;
            return new Head(status, HttpHeaders.of(fields, (a, b) -> true), length, chunked, keepAlive);
        }
    }

    /**
     * Up to {@code max} bytes of the reply's body, as a view of this connection's buffer valid until the
     * next call (position to limit), or null at the end of the body as its framing says: Content-Length
     * reached, the last chunk (and trailers) read, or for a reply framed by neither the end of the
     * stream. The connection closing before the framing's end is an {@link EOFException}. Blocks at most
     * the read timeout.
     */
    ByteBuffer body(int max) throws IOException {
        if (ended) {
            return null;
        }
        if (chunked && chunkLeft == 0) {
            if (!nextChunk()) {
                return null;
            }
        }
        if (pos == lim && !fill()) {
            if (framed) {
                throw new EOFException("the connection closed in the middle of a body");
            }
            ended = true;
            return null;
        }
        long left = chunked ? chunkLeft : framed ? bodyLeft : Long.MAX_VALUE;
        int n = (int) Math.min(Math.min(max, lim - pos), left);
        view.clear().position(pos).limit(pos + n);
        pos += n;
        if (chunked) {
            chunkLeft -= n;
        } else if (framed && (bodyLeft -= n) == 0) {
            ended = true;
        }
        return view;
    }

    /** Reads the next chunk's size line (after the previous chunk's CRLF); false after the last chunk and trailers. */
    private boolean nextChunk() throws IOException {
        if (chunks++ > 0 && !line().isEmpty()) {
            throw new MalformedReplyException("a chunk not followed by CRLF");
        }
        String size = line();
        int semi = size.indexOf(';');
        String hex = (semi >= 0 ? size.substring(0, semi) : size).strip();
        if (hex.isEmpty() || hex.length() > 7 || !hex.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
            throw new MalformedReplyException("a malformed chunk size");
        }
        chunkLeft = Integer.parseInt(hex, 16);
        if (chunkLeft > 0) {
            return true;
        }
        int total = 0;
        for (int i = 0; ; i++) {
            String trailer = line();
            total += trailer.length() + 2;
            if (trailer.isEmpty()) {
                break;
            }
            if (i >= MAX_HEADERS || total > MAX_HEAD_BYTES) {
                throw new MalformedReplyException("too many trailer fields");
            }
        }
        ended = true;
        return false;
    }

    /**
     * At most {@code max} bytes of an error reply's body, for the message (an S3 error code). Failures end
     * it early. The connection is not reusable afterwards.
     */
    byte[] errorBody(int max) {
        keepAlive = false;
        byte[] out = new byte[max];
        int got = 0;
        try {
            while (got < max) {
                ByteBuffer b = body(max - got);
                if (b == null) {
                    break;
                }
                int k = b.remaining();
                b.get(out, got, k);
                got += k;
            }
        } catch (IOException | RuntimeException e) {
            // the status is what matters; an unreadable body just has no detail
        }
        return java.util.Arrays.copyOf(out, got);
    }

    /** True when the last reply's body was read to its framed end, the reply allows another request, and nothing came past it. */
    boolean reusable() {
        return ended && framed && keepAlive && pos == lim && !closed.get();
    }

    /** Marks the end of a complete exchange (for the idle age). */
    void idle() {
        lastUsed = System.nanoTime();
    }

    /** Closes the plain socket from any thread: a read blocked on it fails at once. Idempotent. */
    void abort() {
        close();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                raw.close();
            } catch (IOException e) {
                // nothing to do: it is gone either way
            }
        }
    }

    private boolean fill() throws IOException {
        int n = in.read(buf, 0, buf.length);
        if (n < 0) {
            return false;
        }
        pos = 0;
        lim = n;
        return true;
    }

    /** One CRLF-terminated line of at most {@value #MAX_LINE} bytes, without the CRLF. */
    private String line() throws IOException {
        StringBuilder b = null;
        while (true) {
            if (pos == lim && !fill()) {
                throw new EOFException("the connection closed in the middle of a reply head");
            }
            int start = pos;
            while (pos < lim && buf[pos] != '\n') {
                pos++;
            }
            int len = pos - start + (b == null ? 0 : b.length());
            if (len > MAX_LINE) {
                throw new MalformedReplyException("a reply line over " + MAX_LINE + " bytes");
            }
            String part = new String(buf, start, pos - start, StandardCharsets.ISO_8859_1);
            if (pos < lim) {
                pos++; // the LF
                String l = b == null ? part : b.append(part).toString();
                if (l.isEmpty() || l.charAt(l.length() - 1) != '\r' || l.indexOf('\r') != l.length() - 1) {
                    throw new MalformedReplyException("a reply line not ended by CRLF");
                }
                return l.substring(0, l.length() - 1);
            }
            if (b == null) {
                b = new StringBuilder();
            }
            b.append(part);
        }
    }

    private static boolean isToken(char c) {
        return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
    }
}
