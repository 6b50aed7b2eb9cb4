package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.http.HeaderFile.Header;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;

import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;

/**
 * Reads byte ranges of one remote object over HTTP(S), never a mix of two versions of it and never wrong
 * data. The open-time probe goes through the JDK client (java.net.http); range reads through a lean
 * HTTP/1.1 client of this package ({@link HttpConnection}, {@link ConnectionPool}), which costs a fraction
 * of the JDK client's CPU per byte: blocking sockets, one reused buffer per connection, no thread hand-off
 * per chunk.
 *
 * <p><b>Open.</b> {@link #open} sends one probe, {@code GET} with {@code Range: bytes=0-0}, and learns the
 * size (from {@code Content-Range}), the validator (a strong {@code ETag}, else {@code Last-Modified}; a
 * server giving neither is refused) and that ranges are honoured: only a 206 whose Content-Range is
 * exactly {@code bytes 0-0/SIZE} counts; a 200 (the whole object) is refused with that reason and its body
 * is not downloaded. A refused connection or an unknown host fails the open at once; 5xx, 429 and resets
 * are retried within {@code timeout}. Redirects (301/302/303/307/308) are followed up to {@value #MAX_REDIRECTS} hops;
 * https to http is refused. Later reads start at the URL reached through permanent redirects only; a
 * temporary redirect is followed again by every request. Header-file headers and URL credentials are sent
 * only to the origin of the URL given; a signer ({@link RequestSigner}, S3) signs every hop.
 *
 * <p><b>Reads.</b> {@link #read} starts a range read and returns at once; its future completes when the
 * bytes are in the caller's buffer or with an exception, at the latest at the read's deadline
 * ({@code timeout}). Every range request carries {@code If-Match: ETAG} (or {@code If-Unmodified-Since});
 * a 412, or a 206 naming another ETag, Last-Modified or total size, is {@link BackingChangedException},
 * sticky for every later read. 404/403/410 and other 4xx fail at once with the status in the message; 429, 5xx (but 501
 * and 505) and transport failures (reset, refused, stalled) are retried with jittered exponential backoff
 * (or {@code Retry-After}) within the deadline, a retry resuming after the bytes already received. A 206
 * whose Content-Range is not exactly the range asked, a body longer or shorter than it, a
 * {@code Content-Encoding}, or a 200 answering a range request fail at once (EIO), never return data.
 *
 * <p><b>Threads.</b> Thread-safe; any number of reads may be pending. At most {@code connections}
 * requests are on the wire at once (the rest wait in a FIFO without a thread). Each attempt runs one
 * blocking exchange on a {@code corfs-http-N-io-*} thread (made on demand, idle ones retire after 30 s, at
 * most {@value #IO_THREADS}, past which the submitter runs the task) over an idle kept-alive HTTP/1.1
 * connection of the pool or a new one (at most {@code connections} idle per origin; https too, HTTP/1.1
 * only, trusting {@code ca=} as the probe does). A kept-alive connection that the server closed before
 * answering is replaced by a new one once, at once; a connection with any doubt about its framing is
 * closed, never reused. Every socket read times out at the read's deadline, connect after at most
 * {@value #CONNECT_MILLIS} ms. Deadlines and retry delays run on one {@code corfs-http-N-timer} thread;
 * a deadline, a cancel or close closes the socket of a read's exchange, which wakes its thread (nothing is
 * interrupted). No caller ever blocks except in {@link #open} (the probe, bounded by {@code timeout}) and
 * in {@link #readFully}.
 *
 * <p><b>Buffer invariant.</b> Body bytes are read into the connection's own buffer and copied into the
 * caller's buffer piece by piece under the read's lock; completion (success, failure or deadline)
 * happens under the same lock and stops every later copy. So once a read's future has completed, nothing
 * writes into its buffer again, and the memory held per read is one connection buffer, not the range.
 * Lock order: a read's lock is the only lock; nothing blocking runs under it.
 *
 * <p>Nothing secret is logged: the location is {@link SafeUri#redact redacted}, header values never
 * appear in messages. Closing fails pending reads and stops the threads; it is idempotent. (The JDK 17
 * client has no close of its own: its selector thread and idle connections go when it is collected.)
 */
public final class HttpRangeReader implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HttpRangeReader.class);
    static final int MAX_REDIRECTS = 5;
    private static final int ERROR_BODY_BYTES = 2048;
    private static final long MIN_BACKOFF_MILLIS = 50;
    private static final long MAX_BACKOFF_MILLIS = 2000;
    private static final AtomicInteger IDS = new AtomicInteger();
    // connections are at most 64 (Backings.parseConnections), each exchange holding one thread; the rest
    // is room for the probe's JDK client, so a blocking exchange never falls back onto a caller's thread
    private static final int IO_THREADS = 80;
    private static final long CONNECT_MILLIS = 10_000;
    private static final Pattern S3_CODE = Pattern.compile("<Code>([A-Za-z0-9.]{1,64})</Code>");

    private final String name;
    private final URI origin;
    private final URI readUri;
    private final HttpOptions options;
    private final List<Header> headers;
    private final RequestSigner signer;
    private final ThreadPoolExecutor io;
    private final ScheduledThreadPoolExecutor timer;
    private final HttpClient client;
    private final SSLContext tls;
    private final ConnectionPool pool;
    private final RemoteObject object;
    private final HttpClient.Version version;
    private final AtomicReference<CorfsException> changed = new AtomicReference<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** A conditional range was answered with data at least once: a 412 after that means a change. */
    private final AtomicBoolean rangeServed = new AtomicBoolean();
    private final Set<Read> pending = ConcurrentHashMap.newKeySet();
    private final AtomicInteger onTheWire = new AtomicInteger();
    private final ConcurrentLinkedQueue<Read> waiting = new ConcurrentLinkedQueue<>();

    /** Opens {@code uri} (http or https) anonymously, or with the URL's user info and the header file. */
    public static HttpRangeReader open(URI uri, HttpOptions options) throws IOException {
        return open(uri, options, RequestSigner.NONE, SafeUri.redact(uri));
    }

    /**
     * Opens {@code uri} with {@code signer} signing every request; {@code name} is how it is shown
     * (for S3, the {@code s3://} spec). Fails with a one-line reason naming {@code name}.
     */
    public static HttpRangeReader open(URI uri, HttpOptions options, RequestSigner signer, String name)
            throws IOException {
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https") || uri.getHost() == null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, name + " is not an http:// or https:// URL with a host");
        }
        List<Header> headers = new ArrayList<>();
        if (options.headerFile() != null) {
            headers.addAll(HeaderFile.read(options.headerFile()));
        }
        boolean hasAuthorization = headers.stream().anyMatch(h -> h.name().equalsIgnoreCase("authorization"));
        if (uri.getRawUserInfo() != null && !hasAuthorization) {
            String basic = Base64.getEncoder().encodeToString(uri.getUserInfo().getBytes(StandardCharsets.UTF_8));
            headers.add(new Header("Authorization", "Basic " + basic));
        }
        if (headers.stream().noneMatch(h -> h.name().equalsIgnoreCase("user-agent"))) {
            headers.add(new Header("User-Agent", "corfs"));
        }
        SSLContext tls;
        try {
            tls = options.ca() != null ? TrustBundle.load(options.ca()) : SSLContext.getDefault();
        } catch (NoSuchAlgorithmException e) {
            throw new CorfsException(Reason.IO, "no TLS in this JVM", e);
        }
        return new HttpRangeReader(SafeUri.withoutUserInfo(uri), options, List.copyOf(headers), signer, name, tls);
    }

    private HttpRangeReader(URI origin, HttpOptions options, List<Header> headers, RequestSigner signer, String name,
            SSLContext tls) throws IOException {
        this.name = name;
        this.origin = origin;
        this.options = options;
        this.headers = headers;
        this.signer = signer;
        this.tls = tls;
        this.pool = new ConnectionPool(options.connections());
        int id = IDS.incrementAndGet();
        AtomicInteger n = new AtomicInteger();
        // A cached pool, like the client's default one: a hand-off queue and threads made on demand (a
        // fixed pool with a queue serialised body delivery and cost about half the throughput). Bounded;
        // past the bound the submitting thread runs the task itself rather than losing it.
        this.io = new ThreadPoolExecutor(0, IO_THREADS, 30, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "corfs-http-" + id + "-io-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, new ThreadPoolExecutor.CallerRunsPolicy());
        this.timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "corfs-http-" + id + "-timer");
            t.setDaemon(true);
            return t;
        });
        timer.setRemoveOnCancelPolicy(true);
        this.client = HttpClient.newBuilder()
                .executor(io)
                .followRedirects(HttpClient.Redirect.NEVER)
                .connectTimeout(options.timeout().compareTo(Duration.ofSeconds(10)) < 0 ? options.timeout()
                        : Duration.ofSeconds(10))
                .sslContext(tls)
                .version(HttpClient.Version.HTTP_2)
                .build();
        try {
            Probe p = probe();
            this.object = p.object;
            this.readUri = p.readUri;
            this.version = p.version;
        } catch (IOException | RuntimeException e) {
            timer.shutdownNow();
            io.shutdownNow();
            throw e;
        }
        LOG.info("opened {}: {} bytes, {}, {}", name, object.size(), object.etag() != null ? "etag" : "last-modified",
                version);
    }

    /** How the object is shown in messages and the status: no credentials, no query values. */
    public String location() {
        return name;
    }

    public long size() {
        return object.size();
    }

    /** Size and validator as seen at open; every read is conditional on them. */
    public RemoteObject object() {
        return object;
    }

    /** Requests on the wire at once at most ({@code connections=N}). */
    public int connections() {
        return options.connections();
    }

    /** The deadline of one read, retries included ({@code timeout=SECONDS}). */
    public Duration timeout() {
        return options.timeout();
    }

    /** The HTTP version the probe's answer came in (HTTP_2 when an https server offered it). */
    public HttpClient.Version httpVersion() {
        return version;
    }

    /** The sticky "backing changed" failure, or null while the object is the one opened. */
    public CorfsException changed() {
        return changed.get();
    }

    /**
     * Starts reading {@code dst.remaining()} bytes at {@code offset} into {@code dst}. On success the
     * future completes with {@code dst}'s position advanced to its limit; on failure ({@link CorfsException},
     * EIO) the content between position and limit is undefined and the position unchanged. Either way,
     * nothing touches {@code dst} after completion. The caller leaves {@code dst} alone until then.
     * Completing the future from outside ({@code cancel}) stops the read: once {@code cancel} returns,
     * nothing writes into {@code dst} again (it runs the read's finish on the cancelling thread).
     */
    public CompletableFuture<Void> read(ByteBuffer dst, long offset) {
        CompletableFuture<Void> result = new CompletableFuture<>();
        int length = dst.remaining();
        if (closed.get()) {
            result.completeExceptionally(new CorfsException(Reason.IO, name + " is closed"));
        } else if (changed.get() != null) {
            result.completeExceptionally(changed.get());
        } else if (offset < 0 || offset > object.size() - length) {
            result.completeExceptionally(new CorfsException(Reason.IO, "read of " + length + " bytes at " + offset
                    + " is outside " + name + " (" + object.size() + " bytes)"));
        } else if (length == 0) {
            result.complete(null);
        } else {
            Read r = new Read(dst, offset, length, result);
            pending.add(r);
            result.whenComplete((v, e) -> {
                pending.remove(r);
                // Completed from outside (cancel): stop the read here, on the cancelling thread, so that
                // nothing writes into the buffer once cancel() has returned. A no-op after finish().
                r.finish(new CorfsException(Reason.IO, name + " read at " + offset + " cancelled"));
            });
            r.arm();
            waiting.add(r);
            drain();
        }
        return result;
    }

    /** Blocking {@link #read}: returns when {@code dst} is full, or throws (at the latest at the deadline). */
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        CompletableFuture<Void> f = read(dst, offset);
        try {
            f.get(options.timeout().toMillis() + 10_000, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, "interrupted while reading " + name, e);
        } catch (TimeoutException e) {
            // The deadline timer completes every read; this is a guard against a broken timer only.
            throw new CorfsException(Reason.IO, name + " read at " + offset + " did not complete", e);
        } catch (ExecutionException e) {
            throw asIo(e.getCause());
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        for (Read r : pending) {
            r.finish(new CorfsException(Reason.IO, name + " was closed"));
        }
        timer.shutdownNow();
        pool.close();
        io.shutdown();
        try {
            if (!io.awaitTermination(5, TimeUnit.SECONDS)) {
                LOG.warn("{}: HTTP client threads still busy 5 s after close", name);
                io.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- the connection limit: a FIFO of reads waiting for one of `connections` slots ----

    private void drain() {
        while (true) {
            int n = onTheWire.get();
            if (n >= options.connections() || waiting.isEmpty()) {
                return;
            }
            if (!onTheWire.compareAndSet(n, n + 1)) {
                continue;
            }
            Read r = waiting.poll();
            if (r == null) {
                onTheWire.decrementAndGet();
                continue;
            }
            try {
                io.execute(r::start); // never on the caller's thread: signing may refresh credentials
            } catch (java.util.concurrent.RejectedExecutionException e) {
                r.finish(new CorfsException(Reason.IO, name + " is closed"));
                onTheWire.decrementAndGet();
            }
        }
    }

    private void release() {
        onTheWire.decrementAndGet();
        drain();
    }

    // ---- the probe ----

    private record Probe(RemoteObject object, URI readUri, HttpClient.Version version) {
    }

    private Probe probe() throws IOException {
        long deadline = System.nanoTime() + options.timeout().toNanos();
        URI uri = origin;
        URI readFrom = origin;
        boolean permanent = true;
        int redirects = 0;
        int attempts = 0;
        Throwable last = null;
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new CorfsException(Reason.IO, name + " did not answer within " + options.timeout().toSeconds()
                        + " s" + (last == null ? "" : ": " + describe(last)));
            }
            HttpResponse<byte[]> resp;
            attempts++;
            try {
                resp = client.send(request(uri, "bytes=0-0", false, left), info -> new BoundedBody(
                        info.statusCode() == 206 ? 2 : info.statusCode() >= 400 ? ERROR_BODY_BYTES : 0));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CorfsException(Reason.IO, "interrupted while opening " + name, e);
            } catch (SSLException e) {
                throw new CorfsException(Reason.IO, "TLS with " + name + " failed: " + e.getMessage(), e);
            } catch (ConnectException e) {
                // Nothing listens there, or the name does not resolve: an answer, not a stall. Open is
                // create, mount or set-backing, where the operator wants it now (reads do retry it).
                throw new CorfsException(Reason.IO, name + ": " + describe(e), e);
            } catch (IOException e) {
                last = e;
                sleep(backoff(attempts, 0), deadline);
                continue;
            }
            int s = resp.statusCode();
            if (isRedirect(s)) {
                uri = follow(uri, resp.headers(), ++redirects);
                permanent &= s == 301 || s == 308;
                if (permanent) {
                    readFrom = uri;
                }
                continue;
            }
            if (isRetryable(s)) {
                last = new CorfsException(Reason.IO, statusText(s));
                sleep(backoff(attempts, retryAfterMillis(resp.headers())), deadline);
                continue;
            }
            if (s == 200) {
                throw new CorfsException(Reason.IO, name + " does not honour range requests (it answered 200 with the"
                        + " whole object to Range: bytes=0-0)");
            }
            String cr = resp.headers().firstValue("content-range").orElse(null);
            ContentRange range = ContentRange.parse(cr);
            long size;
            if (s == 416 && range != null && range.first() < 0 && range.total() == 0) {
                size = 0; // an empty object: nothing to read, but its validator still counts
            } else if (s != 206) {
                throw statusError(s, resp.body());
            } else if (range == null || range.first() != 0 || range.last() != 0 || range.total() < 0
                    || resp.body().length != 1) {
                throw new CorfsException(Reason.IO, name + " does not honour range requests correctly (it answered 206"
                        + " with Content-Range " + (cr == null ? "missing" : "'" + clip(cr) + "'") + " and "
                        + resp.body().length + " bytes to Range: bytes=0-0)");
            } else {
                size = range.total();
            }
            String etag = resp.headers().firstValue("etag").map(String::strip).orElse(null);
            String lastModified = resp.headers().firstValue("last-modified").map(String::strip).orElse(null);
            boolean strong = etag != null && etag.length() >= 2 && etag.startsWith("\"") && etag.endsWith("\"")
                    && etag.length() <= 256;
            if (!strong && lastModified == null) {
                throw new CorfsException(Reason.IO, name + " gives neither a strong ETag nor Last-Modified, so a"
                        + " replaced object could not be noticed");
            }
            RemoteObject o = strong ? new RemoteObject(size, etag, null) : new RemoteObject(size, null, lastModified);
            return new Probe(o, readFrom, resp.version());
        }
    }

    private static void sleep(long millis, long deadline) throws CorfsException {
        long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        try {
            Thread.sleep(Math.max(0, Math.min(millis, left)));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, "interrupted", e);
        }
    }

    // ---- requests and answers ----

    /** The probe's request (the JDK client): the same headers as every range request. */
    private HttpRequest request(URI uri, String range, boolean conditional, long leftNanos) throws IOException {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri).GET()
                .timeout(Duration.ofNanos(Math.max(leftNanos, TimeUnit.MILLISECONDS.toNanos(1))))
                .version("https".equalsIgnoreCase(uri.getScheme()) ? HttpClient.Version.HTTP_2
                        : HttpClient.Version.HTTP_1_1);
        for (Header h : requestHeaders(uri, range, conditional)) {
            b.header(h.name(), h.value());
        }
        return b.build();
    }

    /**
     * The headers of a GET of {@code range} from {@code uri} (Host aside): the header file's and the URL
     * credentials (to the origin only), Range, the condition on the object opened, and the signer's.
     */
    private List<Header> requestHeaders(URI uri, String range, boolean conditional) throws IOException {
        List<Header> out = new ArrayList<>(headers.size() + 8);
        if (SafeUri.sameOrigin(uri, origin)) {
            out.addAll(headers);
        }
        Map<String, String> controlled = new TreeMap<>();
        controlled.put("range", range);
        if (conditional && object.etag() != null) {
            controlled.put("if-match", object.etag());
        } else if (conditional) {
            controlled.put("if-unmodified-since", object.lastModified());
        }
        controlled.forEach((k, v) -> out.add(new Header(k, v)));
        signer.sign("GET", uri, controlled).forEach((k, v) -> out.add(new Header(k, v)));
        return out;
    }

    private URI follow(URI from, HttpHeaders h, int hop) throws CorfsException {
        if (hop > MAX_REDIRECTS) {
            throw new CorfsException(Reason.IO, name + " redirected more than " + MAX_REDIRECTS + " times");
        }
        String location = h.firstValue("location").orElse(null);
        if (location == null) {
            throw new CorfsException(Reason.IO, name + " answered a redirect without a Location");
        }
        URI to;
        try {
            to = from.resolve(new URI(location.strip()));
        } catch (java.net.URISyntaxException | IllegalArgumentException e) {
            throw new CorfsException(Reason.IO, name + " redirected to a malformed Location");
        }
        String scheme = to.getScheme() == null ? "" : to.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https") || to.getHost() == null) {
            throw new CorfsException(Reason.IO, name + " redirected to a non-HTTP location");
        }
        if (from.getScheme().equalsIgnoreCase("https") && scheme.equals("http")) {
            throw new CorfsException(Reason.IO, name + " redirected from https to plain http (" + SafeUri.redact(to)
                    + "): refused");
        }
        LOG.debug("{} redirected to {}", name, SafeUri.redact(to));
        return SafeUri.withoutUserInfo(to);
    }

    private static boolean isRedirect(int s) {
        return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
    }

    private static boolean isRetryable(int s) {
        return s == 429 || s == 408 || (s >= 500 && s != 501 && s != 505);
    }

    private static long retryAfterMillis(HttpHeaders h) {
        String v = h.firstValue("retry-after").orElse("").strip();
        if (v.matches("\\d{1,5}")) {
            return Long.parseLong(v) * 1000;
        }
        return 0;
    }

    private static long backoff(int attempt, long atLeast) {
        long base = Math.min(MAX_BACKOFF_MILLIS, MIN_BACKOFF_MILLIS << Math.min(attempt - 1, 10));
        long jittered = base / 2 + ThreadLocalRandom.current().nextLong(base / 2 + 1);
        return Math.max(jittered, atLeast);
    }

    private CorfsException statusError(int s, byte[] body) {
        String text = new String(body, StandardCharsets.ISO_8859_1);
        Matcher m = S3_CODE.matcher(text);
        String code = m.find() ? " " + m.group(1) : "";
        return new CorfsException(Reason.IO, name + ": " + statusText(s) + code);
    }

    private static String statusText(int s) {
        String reason = switch (s) {
            case 400 -> "Bad Request";
            case 401 -> "Unauthorized";
            case 403 -> "Forbidden";
            case 404 -> "Not Found";
            case 410 -> "Gone";
            case 412 -> "Precondition Failed";
            case 416 -> "Range Not Satisfiable";
            case 429 -> "Too Many Requests";
            case 500 -> "Internal Server Error";
            case 502 -> "Bad Gateway";
            case 503 -> "Service Unavailable";
            case 504 -> "Gateway Timeout";
            default -> "";
        };
        return "HTTP " + s + (reason.isEmpty() ? "" : " " + reason);
    }

    private static String clip(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "..." : s;
    }

    private static String describe(Throwable t) {
        Throwable c = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
        if (c instanceof ConnectException) {
            return c.getCause() instanceof java.nio.channels.UnresolvedAddressException ? "host name not found"
                    : "connection refused";
        }
        if (c instanceof java.net.http.HttpTimeoutException) {
            return "no answer";
        }
        String m = c.getMessage();
        return c.getClass().getSimpleName() + (m == null ? "" : ": " + clip(m));
    }

    private IOException asIo(Throwable t) {
        Throwable c = t instanceof CompletionException && t.getCause() != null ? t.getCause() : t;
        if (c instanceof IOException e) {
            return e;
        }
        return new CorfsException(Reason.IO, name + ": " + describe(c), c);
    }

    private void markChanged(String why) {
        markChanged(new BackingChangedException("backing changed: " + name + " " + why
                + "; it is no longer the object opened (" + object.identity() + ")"));
    }

    private void markChanged(CorfsException e) {
        if (changed.compareAndSet(null, e)) {
            LOG.warn("{}", e.getMessage());
        }
    }

    /** What a response turned out to be, decided from its status and headers before its body. */
    private record Outcome(Kind kind, CorfsException error, URI location, long retryAfterMillis, int want) {
        /** DATA: read {@code want} body bytes (then: all in the buffer); STATUS: an error status, its body names it. */
        enum Kind { DATA, REDIRECT, RETRY, FAIL, CHANGED, STATUS }

        static final Outcome DATA = new Outcome(Kind.DATA, null, null, 0, 0);

        static Outcome fail(CorfsException e) {
            return new Outcome(Kind.FAIL, e, null, 0, 0);
        }
    }

    private final Outcome abandoned = Outcome.fail(new CorfsException(Reason.IO, "read abandoned"));

    /** One range read: its buffer, its deadline, its attempts. Guarded by its own monitor. */
    private final class Read {
        private final ByteBuffer caller;
        private final ByteBuffer target;
        private final long offset;
        private final int length;
        private final CompletableFuture<Void> result;
        private final long deadline;
        // guarded by this
        private int done;
        private boolean finished;
        private int attempts;
        private int redirects;
        private URI uri = readUri;
        private Throwable lastError;
        private HttpConnection conn;
        private ScheduledFuture<?> timeout;

        Read(ByteBuffer dst, long offset, int length, CompletableFuture<Void> result) {
            this.caller = dst;
            this.target = dst.duplicate();
            this.offset = offset;
            this.length = length;
            this.result = result;
            this.deadline = System.nanoTime() + options.timeout().toNanos();
        }

        void arm() {
            ScheduledFuture<?> t;
            try {
                t = timer.schedule(this::expire, options.timeout().toNanos(), TimeUnit.NANOSECONDS);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                finish(new CorfsException(Reason.IO, name + " is closed"));
                return;
            }
            synchronized (this) {
                timeout = t;
            }
        }

        private void expire() {
            Throwable last;
            synchronized (this) {
                last = lastError;
            }
            finish(new CorfsException(Reason.IO, name + " did not deliver " + length + " bytes at " + offset
                    + " within " + options.timeout().toSeconds() + " s"
                    + (last == null ? "" : " (last error: " + describe(last) + ")")));
        }

        /**
         * Runs the next attempt on this (io) thread, holding a connection slot, which it releases before
         * acting on the answer.
         */
        void start() {
            URI to;
            int from;
            synchronized (this) {
                if (finished) {
                    release();
                    return;
                }
                attempts++;
                to = uri;
                from = done;
            }
            CorfsException ch = changed.get();
            if (ch != null) {
                finish(ch);
                release();
                return;
            }
            List<Header> request;
            try {
                request = requestHeaders(to, "bytes=" + (offset + from) + "-" + (offset + length - 1), true);
            } catch (IOException | RuntimeException e) {
                finish(asIo(e));
                release();
                return;
            }
            Outcome o = null;
            Throwable err = null;
            try {
                o = exchange(to, request);
            } catch (IOException | RuntimeException e) {
                err = e;
            }
            release();
            onAnswer(o, err);
        }

        /**
         * One request and its reply, on an idle pooled connection or a new one. A kept-alive connection
         * that fails or closes before the reply's first byte (the server dropped it) is replaced by a new
         * one, once and at once; any other failure is the caller's to retry. The connection goes back to
         * the pool only after a 206 whose body was read to exactly its Content-Length.
         */
        private Outcome exchange(URI to, List<Header> request) throws IOException {
            String key = HttpConnection.origin(to);
            for (int fresh = 0; ; fresh++) {
                synchronized (this) {
                    if (finished) {
                        return abandoned;
                    }
                }
                HttpConnection c = fresh == 0 ? pool.take(key) : null;
                boolean reused = c != null;
                long leftMillis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
                if (c == null) {
                    c = HttpConnection.connect(to, tls, (int) Math.min(leftMillis, CONNECT_MILLIS),
                            (int) Math.min(leftMillis, Integer.MAX_VALUE));
                } else {
                    c.deadline(deadline);
                }
                synchronized (this) {
                    if (finished) {
                        c.close();
                        return abandoned;
                    }
                    conn = c;
                }
                boolean keep = false;
                try {
                    HttpConnection.Head head;
                    try {
                        c.send("GET", to, request);
                        head = c.readHead();
                    } catch (HttpConnection.NoReplyException | java.net.SocketException e) {
                        if (reused && fresh == 0) {
                            LOG.debug("{}: a kept-alive connection failed before a reply ({}); once more on a new one",
                                    name, describe(e));
                            continue;
                        }
                        throw e;
                    }
                    Outcome o = decide(head.status(), head.headers());
                    if (o.kind() == Outcome.Kind.DATA) {
                        o = receive(c, o.want());
                        keep = o.kind() == Outcome.Kind.DATA;
                    } else if (o.kind() == Outcome.Kind.STATUS) {
                        o = Outcome.fail(statusError(head.status(), c.errorBody(ERROR_BODY_BYTES)));
                    }
                    return o;
                } catch (HttpConnection.MalformedReplyException e) {
                    throw new CorfsException(Reason.IO, name + " sent a malformed reply: " + e.getMessage());
                } finally {
                    synchronized (this) {
                        conn = null;
                    }
                    if (keep) {
                        pool.give(c);
                    } else {
                        c.close();
                    }
                }
            }
        }

        /**
         * Copies a 206's body of {@code want} bytes into the buffer, piece by piece under the read's lock,
         * stopping at once when the read has finished. A connection cut in the middle of the body is a
         * transport failure (retried after the bytes received); a body that ends (by its framing) short of
         * the range or goes past it is an error.
         */
        private Outcome receive(HttpConnection c, int want) throws IOException {
            int got = 0;
            while (got < want) {
                ByteBuffer b = c.body(want - got);
                if (b == null) {
                    return Outcome.fail(new CorfsException(Reason.IO, name + " sent " + got + " of the " + want
                            + " bytes asked at " + offset));
                }
                synchronized (this) {
                    if (finished) {
                        return abandoned;
                    }
                    int n = b.remaining();
                    target.put(target.position() + done, b, b.position(), n);
                    done += n;
                    got += n;
                }
            }
            if (c.body(1) != null) {
                return Outcome.fail(new CorfsException(Reason.IO, name + " sent more than the " + want
                        + " bytes asked at " + offset));
            }
            return Outcome.DATA;
        }

        /** What a reply is, from its status and headers, before its body: the rules for every range request. */
        private Outcome decide(int s, HttpHeaders h) {
            if (s == 206) {
                long first;
                int want;
                synchronized (this) {
                    first = offset + done;
                    want = length - done;
                }
                String crText = h.firstValue("content-range").orElse(null);
                ContentRange cr = ContentRange.parse(crText);
                String etag = h.firstValue("etag").map(String::strip).orElse(null);
                if (cr != null && cr.total() >= 0 && cr.total() != object.size()) {
                    markChanged("now has " + cr.total() + " bytes");
                    return new Outcome(Outcome.Kind.CHANGED, changed.get(), null, 0, 0);
                }
                if (object.etag() != null && etag != null && !etag.equals(object.etag())) {
                    markChanged("now has ETag " + clip(etag));
                    return new Outcome(Outcome.Kind.CHANGED, changed.get(), null, 0, 0);
                }
                String modified = h.firstValue("last-modified").map(String::strip).orElse(null);
                if (object.lastModified() != null && modified != null && !modified.equals(object.lastModified())) {
                    markChanged("now has Last-Modified " + clip(modified));
                    return new Outcome(Outcome.Kind.CHANGED, changed.get(), null, 0, 0);
                }
                if (cr == null || cr.first() != first || cr.length() != want) {
                    return Outcome.fail(new CorfsException(Reason.IO, name + " answered Content-Range "
                            + (crText == null ? "missing" : "'" + clip(crText) + "'") + " to a request for bytes "
                            + first + "-" + (offset + length - 1)));
                }
                String encoding = h.firstValue("content-encoding").orElse("identity").strip();
                if (!encoding.equalsIgnoreCase("identity")) {
                    return Outcome.fail(new CorfsException(Reason.IO, name + " sent the range with"
                            + " Content-Encoding " + clip(encoding)));
                }
                long declared = h.firstValueAsLong("content-length").orElse(want);
                if (declared != want) {
                    return Outcome.fail(new CorfsException(Reason.IO, name + " announced a body of " + declared
                            + " bytes for a range of " + want));
                }
                rangeServed.set(true);
                return new Outcome(Outcome.Kind.DATA, null, null, 0, want);
            }
            if (s == 412 && !rangeServed.get()) {
                // Before any conditional range succeeded, a 412 more likely says that the server does
                // not honour the validators it sent itself (s3proxy's filesystem store compares
                // whole-second Last-Modified with sub-second mtimes) than that the object changed.
                markChanged(new BackingChangedException("precondition failed: " + name + " answered the first"
                        + " conditional range read (If-Match/If-Unmodified-Since with the validators it sent)"
                        + " with HTTP 412 Precondition Failed: the server does not honour its own validators,"
                        + " or the object changed just after it was opened (" + object.identity() + ")"));
                return new Outcome(Outcome.Kind.CHANGED, changed.get(), null, 0, 0);
            }
            if (s == 412) {
                markChanged("(HTTP 412 Precondition Failed)");
                return new Outcome(Outcome.Kind.CHANGED, changed.get(), null, 0, 0);
            }
            if (isRedirect(s)) {
                try {
                    URI next;
                    synchronized (this) {
                        next = follow(uri, h, ++redirects);
                    }
                    return new Outcome(Outcome.Kind.REDIRECT, null, next, 0, 0);
                } catch (CorfsException e) {
                    return Outcome.fail(e);
                }
            }
            if (isRetryable(s)) {
                return new Outcome(Outcome.Kind.RETRY, new CorfsException(Reason.IO, statusText(s)), null,
                        retryAfterMillis(h), 0);
            }
            if (s == 200) {
                return Outcome.fail(new CorfsException(Reason.IO, name + " ignored the range and answered 200"
                        + " with the whole object"));
            }
            return new Outcome(Outcome.Kind.STATUS, null, null, 0, 0);
        }

        private void onAnswer(Outcome o, Throwable err) {
            if (err != null) {
                Throwable c = err instanceof CompletionException && err.getCause() != null ? err.getCause() : err;
                if (c instanceof javax.net.ssl.SSLHandshakeException) {
                    finish(new CorfsException(Reason.IO, "TLS with " + name + " failed: " + c.getMessage(), c));
                } else if (c instanceof CorfsException e) {
                    finish(e);
                } else if (c instanceof IOException) {
                    retry(c, 0);
                } else {
                    finish(asIo(c));
                }
                return;
            }
            switch (o.kind()) {
                case DATA -> finish(null);
                case CHANGED, FAIL, STATUS -> finish(o.error());
                case RETRY -> retry(o.error(), o.retryAfterMillis());
                case REDIRECT -> {
                    synchronized (this) {
                        uri = o.location();
                    }
                    again();
                }
            }
        }

        private void retry(Throwable cause, long atLeast) {
            long delay;
            synchronized (this) {
                lastError = cause;
                if (finished) {
                    return;
                }
                delay = backoff(attempts, atLeast);
            }
            if (System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(delay) >= deadline) {
                LOG.debug("{}: no time left to retry the read at {} after {}", name, offset, describe(cause));
                return; // the deadline timer fails the read, naming the last error
            }
            LOG.debug("{}: retrying the read at {} in {} ms after {}", name, offset, delay, describe(cause));
            try {
                timer.schedule(this::again, delay, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                finish(new CorfsException(Reason.IO, name + " was closed"));
            }
        }

        private void again() {
            synchronized (this) {
                if (finished) {
                    return;
                }
            }
            waiting.add(this);
            drain();
        }

        /** Completes the read once: success when {@code error} is null. After it, nothing writes into the buffer. */
        void finish(IOException error) {
            HttpConnection busy;
            synchronized (this) {
                if (finished) {
                    return;
                }
                finished = true;
                if (timeout != null) {
                    timeout.cancel(false);
                }
                busy = conn;
                if (error == null) {
                    caller.position(caller.limit());
                }
            }
            if (busy != null && error != null) {
                busy.abort(); // wakes the exchange blocked on it; it copies nothing more (finished is set)
            }
            if (error == null) {
                result.complete(null);
            } else {
                result.completeExceptionally(error);
            }
        }
    }
}
