package corfs.backing.http;

import java.util.Deque;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Idle kept-alive {@link HttpConnection}s per origin, at most {@code max} per origin, most recently used
 * first. A connection is in the pool only between exchanges: {@link #take} hands it to one exchange, and
 * only a connection whose last reply was framed beyond doubt comes back through {@link #give}. One idle
 * longer than {@value #MAX_IDLE_SECONDS} s is closed rather than reused (servers drop idle ones; nginx
 * after 75 s). Thread-safe, without locks; {@link #close} closes the idle ones and every later
 * {@link #give}.
 */
final class ConnectionPool implements AutoCloseable {
    static final long MAX_IDLE_SECONDS = 20;
    private final int max;
    private final ConcurrentHashMap<String, Deque<HttpConnection>> idle = new ConcurrentHashMap<>();
    private final AtomicBoolean closed = new AtomicBoolean();

    ConnectionPool(int max) {
        this.max = max;
    }

    /** An idle connection to {@code origin}, or null when there is none (the caller connects). */
    HttpConnection take(String origin) {
        Deque<HttpConnection> d = idle.get(origin);
        if (d == null) {
            return null;
        }
        HttpConnection c;
        while ((c = d.pollFirst()) != null) {
            if (c.idleNanos() < TimeUnit.SECONDS.toNanos(MAX_IDLE_SECONDS)) {
                return c;
            }
            c.close();
        }
        return null;
    }

    /** Returns a connection after a complete, well-framed exchange; closes it when it is not reusable or not wanted. */
    void give(HttpConnection c) {
        if (closed.get() || !c.reusable()) {
            c.close();
            return;
        }
        c.idle();
        Deque<HttpConnection> d = idle.computeIfAbsent(c.origin(), k -> new ConcurrentLinkedDeque<>());
        d.offerFirst(c);
        while (d.size() > max) {
            HttpConnection old = d.pollLast();
            if (old == null) {
                break;
            }
            old.close();
        }
        if (closed.get()) {
            close();
        }
    }

    @Override
    public void close() {
        closed.set(true);
        for (Deque<HttpConnection> d : idle.values()) {
            HttpConnection c;
            while ((c = d.pollFirst()) != null) {
                c.close();
            }
        }
    }
}
