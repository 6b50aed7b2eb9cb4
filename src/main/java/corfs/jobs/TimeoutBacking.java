package corfs.jobs;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
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
 * <p>Each read runs on a worker thread into a buffer of its own and is copied to the caller's buffer
 * only if it completed in time: a worker still blocked after the timeout never writes into memory the
 * caller has moved on from. Workers are bounded; when all are stuck, reads fail at once.
 */
final class TimeoutBacking implements Backing {
    private static final Logger LOG = LoggerFactory.getLogger(TimeoutBacking.class);
    private static final int MAX_WORKERS = 32;

    private final Backing inner;
    private final long timeoutMillis;
    private final ThreadPoolExecutor workers;

    TimeoutBacking(Backing inner, long timeoutMillis) {
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

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        int n = dst.remaining();
        ByteBuffer own = ByteBuffer.allocateDirect(n);
        Future<?> read;
        try {
            read = workers.submit(() -> {
                inner.readFully(own, offset);
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
            throw new CorfsException(Reason.IO, "backing did not answer within " + timeoutMillis + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, "interrupted while reading the backing", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException(cause);
        }
        own.flip();
        dst.put(own);
    }

    @Override
    public long nextData(long offset) throws IOException {
        return inner.nextData(offset);
    }

    @Override
    public long nextHole(long offset) throws IOException {
        return inner.nextHole(offset);
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
