package corfs.backing;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingTimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A backing whose reads give up after a timeout, so a backing that hangs (an NFS server gone) does not
 * hang the filesystem: the reader gets EIO, local clusters keep being served, and reads work again once
 * the backing answers.
 *
 * <p>Each read runs on a worker thread straight into the caller's buffer (no copy); on a timeout the
 * caller gets a {@link BackingTimeoutException} and must abandon that buffer, since the stuck worker may
 * still write into it. Workers are bounded; when all are stuck, reads fail at once.
 */
public final class TimeoutBacking implements Backing {
    private static final Logger LOG = LoggerFactory.getLogger(TimeoutBacking.class);
    private static final int MAX_WORKERS = 32;

    private final Backing inner;
    private final long timeoutMillis;
    private final ThreadPoolExecutor workers;

    public TimeoutBacking(Backing inner, long timeoutMillis) {
        this.inner = inner;
        this.timeoutMillis = timeoutMillis;
        AtomicInteger n = new AtomicInteger();
        this.workers = new ThreadPoolExecutor(0, MAX_WORKERS, 30, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "corfs-backing-read-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    @Override
    public String location() {
        return inner.location();
    }

    @Override
    public long size() {
        return inner.size();
    }

    @Override
    public BackingIdentity identity() throws IOException {
        return inner.identity();
    }

    /**
     * Reads on a worker thread straight into {@code dst}. On a timeout the read is abandoned and a
     * {@link BackingTimeoutException} says so: the worker may still write into {@code dst} later, so the
     * caller must drop that buffer (the engine never passes memory it does not own, and never reuses a
     * buffer after this exception).
     */
    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        ByteBuffer target = dst.duplicate();
        Future<?> read;
        try {
            read = workers.submit(() -> {
                inner.readFully(target, offset);
                return null;
            });
        } catch (RejectedExecutionException e) {
            throw new CorfsException(Reason.IO, "backing " + inner.location() + " is not answering ("
                    + MAX_WORKERS + " reads stuck)");
        }
        try {
            read.get(timeoutMillis, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            read.cancel(false);
            LOG.warn("backing {} did not answer a read at {} within {} ms", inner.location(), offset, timeoutMillis);
            throw new BackingTimeoutException("backing did not answer within " + timeoutMillis + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new BackingTimeoutException("interrupted while reading the backing", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException(cause);
        }
        dst.position(target.position());
    }

    @Override
    public int maxInFlight() {
        return Math.min(MAX_WORKERS, inner.maxInFlight());
    }

    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        return inner.allocation(offset, max);
    }

    @Override
    public Writer openWriter() throws IOException {
        return inner.openWriter();
    }

    @Override
    public void close() throws IOException {
        workers.shutdownNow();
        inner.close();
    }
}
