package corfs.backing.http;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real HTTP server (the JDK's, on 127.0.0.1) serving one object at {@code /data} with the faults nginx
 * cannot be made to produce on demand: a wrong Content-Range, a body longer or shorter than announced,
 * 5xx for a while, a stall in the middle of a body. Also {@code /moved} (301 to /data), {@code /loop}
 * (a redirect loop) and {@code /away} (302 to {@link #redirectTarget}). Records the concurrency it saw and
 * the Authorization headers it got.
 */
final class FaultServer implements AutoCloseable {
    enum Fault { NONE, IGNORE_RANGE, NO_VALIDATOR, WRONG_RANGE, LONG_BODY, SHORT_BODY, STALL_MID_BODY, CUT_ONCE, LAST_MODIFIED_ONLY }

    private static final Pattern RANGE = Pattern.compile("bytes=(\\d+)-(\\d+)");
    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "fault-server");
        t.setDaemon(true);
        return t;
    });
    volatile byte[] content;
    volatile String etag = "\"v1\"";
    volatile String lastModified = "Mon, 01 Jun 2026 10:00:00 GMT";
    /** Answer as if If-Match and If-Unmodified-Since were not there (a broken cache in between). */
    volatile boolean ignoreConditions;
    volatile Fault fault = Fault.NONE;
    /** Answer this status to the next {@code failures} requests. */
    final AtomicInteger failures = new AtomicInteger();
    volatile int failStatus = 503;
    volatile URI redirectTarget;
    final CountDownLatch stallRelease = new CountDownLatch(1);
    final CountDownLatch stalled = new CountDownLatch(1);
    final AtomicInteger requests = new AtomicInteger();
    final AtomicInteger inFlight = new AtomicInteger();
    /**
     * The most handlers running at once. It may count one more than the client had in flight: a handler
     * counts itself out after its body is sent, so the client may already have sent its next request.
     */
    final AtomicInteger maxInFlight = new AtomicInteger();
    /** The client ports of every connection that sent a request: how many connections were used. */
    final Set<Integer> clientPorts = ConcurrentHashMap.newKeySet();
    final List<String> authorizations = new CopyOnWriteArrayList<>();
    final List<String> ranges = new CopyOnWriteArrayList<>();
    final Map<String, String> lastHeaders = new ConcurrentHashMap<>();

    FaultServer(byte[] content) throws IOException {
        this.content = content;
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
        server.setExecutor(executor);
        server.createContext("/", this::handle);
        server.start();
    }

    URI uri(String path) {
        return URI.create("http://127.0.0.1:" + server.getAddress().getPort() + path);
    }

    private void handle(HttpExchange x) throws IOException {
        int now = inFlight.incrementAndGet();
        maxInFlight.accumulateAndGet(now, Math::max);
        requests.incrementAndGet();
        clientPorts.add(x.getRemoteAddress().getPort());
        try (x) {
            String auth = x.getRequestHeaders().getFirst("Authorization");
            authorizations.add(auth == null ? "-" : auth);
            x.getRequestHeaders().forEach((k, v) -> lastHeaders.put(k.toLowerCase(), v.get(0)));
            String path = x.getRequestURI().getPath();
            if (path.equals("/moved")) {
                redirect(x, 301, "/data");
                return;
            }
            if (path.equals("/loop")) {
                redirect(x, 302, "/loop");
                return;
            }
            if (path.equals("/away")) {
                redirect(x, 302, redirectTarget.toString());
                return;
            }
            if (!path.equals("/data")) {
                x.sendResponseHeaders(404, -1);
                return;
            }
            if (failures.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                x.sendResponseHeaders(failStatus, -1);
                return;
            }
            byte[] c = content;
            String tag = etag;
            String ifMatch = x.getRequestHeaders().getFirst("If-Match");
            String ifUnmodified = x.getRequestHeaders().getFirst("If-Unmodified-Since");
            if (!ignoreConditions && (ifMatch != null && !ifMatch.equals(tag)
                    || ifUnmodified != null && !ifUnmodified.equals(lastModified))) {
                x.sendResponseHeaders(412, -1);
                return;
            }
            Fault f = fault;
            if (f == Fault.LAST_MODIFIED_ONLY) {
                x.getResponseHeaders().set("Last-Modified", lastModified);
            } else if (f != Fault.NO_VALIDATOR) {
                x.getResponseHeaders().set("ETag", tag);
            }
            ranges.add(String.valueOf(x.getRequestHeaders().getFirst("Range")));
            Matcher m = RANGE.matcher(String.valueOf(x.getRequestHeaders().getFirst("Range")));
            if (f == Fault.IGNORE_RANGE || !m.matches()) {
                x.sendResponseHeaders(200, c.length);
                try (OutputStream out = x.getResponseBody()) {
                    out.write(c);
                } catch (IOException e) {
                    // the client hung up, as it should on a 200 it did not want
                }
                return;
            }
            int first = Integer.parseInt(m.group(1));
            int last = Math.min(Integer.parseInt(m.group(2)), c.length - 1);
            int len = last - first + 1;
            int shown = f == Fault.WRONG_RANGE ? first + 1 : first;
            x.getResponseHeaders().set("Content-Range", "bytes " + shown + "-" + (shown + len - 1) + "/" + c.length);
            boolean chunked = f == Fault.LONG_BODY || f == Fault.SHORT_BODY || f == Fault.STALL_MID_BODY;
            x.sendResponseHeaders(206, chunked ? 0 : len);
            try (OutputStream out = x.getResponseBody()) {
                if (f == Fault.CUT_ONCE) {
                    fault = Fault.NONE;
                    out.write(c, first, len / 2);
                    out.flush();
                    // escapes the handler: the JDK server then closes the connection half-way through the body
                    throw new IllegalStateException("cut");
                } else if (f == Fault.STALL_MID_BODY) {
                    out.write(c, first, len / 2);
                    out.flush();
                    stalled.countDown();
                    awaitQuietly(stallRelease);
                    out.write(c, first + len / 2, len - len / 2);
                } else if (f == Fault.LONG_BODY) {
                    out.write(c, first, len);
                    out.write(0);
                } else if (f == Fault.SHORT_BODY) {
                    out.write(c, first, len - 1);
                } else {
                    out.write(c, first, len);
                }
            } catch (IOException e) {
                // the client gave up on this body
            }
        } finally {
            inFlight.decrementAndGet();
        }
    }

    private static void redirect(HttpExchange x, int status, String to) throws IOException {
        x.getResponseHeaders().set("Location", to);
        x.sendResponseHeaders(status, -1);
    }

    private static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await(20, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        stallRelease.countDown();
        server.stop(0);
        executor.shutdownNow();
    }
}
