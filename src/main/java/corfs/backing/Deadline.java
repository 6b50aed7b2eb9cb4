package corfs.backing;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import java.io.IOException;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A one-off backing call with a deadline, for the calls made before a {@link TimeoutBacking} exists:
 * the probe and open of a backing at mount ({@code stat}, {@code open}, the lock) go to the server on
 * NFS and can hang there in D state for ever.
 *
 * <p>The call runs on its own named daemon thread, which is never interrupted (see {@link FileBacking});
 * when the deadline passes the caller gets a {@link BackingTimeoutException} and the thread is left to
 * finish: whatever it returns after that goes to {@code late} (to close what it opened), nobody else.
 */
public final class Deadline {
    private static final Logger LOG = LoggerFactory.getLogger(Deadline.class);

    private Deadline() {
    }

    /**
     * Runs {@code task} within {@code timeoutMillis} (0: no deadline, run here).
     *
     * @param what  what the task does, for the messages ("open of backing /srv/base.raw")
     * @param late  receives a result that arrives after the deadline, or null to drop it
     */
    public static <T> T within(String what, long timeoutMillis, Callable<T> task, Consumer<T> late)
            throws IOException {
        if (timeoutMillis <= 0) {
            return call(task);
        }
        CompletableFuture<T> result = new CompletableFuture<>();
        AtomicBoolean abandoned = new AtomicBoolean();
        Thread t = new Thread(() -> {
            try {
                T value = task.call();
                if (!result.complete(value) && late != null && abandoned.get()) {
                    LOG.info("{} answered after its deadline", what);
                    late.accept(value);
                }
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }, "corfs-backing-probe");
        t.setDaemon(true);
        t.start();
        try {
            result.get(timeoutMillis, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            abandoned.set(true);
            if (result.completeExceptionally(e)) {
                throw new BackingTimeoutException(what + " did not answer within " + timeoutMillis + " ms", e);
            } // else it completed between the timeout and here: take its outcome below
        } catch (InterruptedException e) {
            abandoned.set(true);
            if (result.completeExceptionally(e)) {
                Thread.currentThread().interrupt();
                throw new BackingTimeoutException("interrupted waiting for " + what, e);
            }
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            // taken below
        }
        return outcome(what, result);
    }

    /** The value of a completed future, its failure rethrown as it was. */
    private static <T> T outcome(String what, CompletableFuture<T> done) throws IOException {
        assert done.isDone();
        try {
            return done.getNow(null);
        } catch (java.util.concurrent.CompletionException e) {
            throw rethrow(what, e.getCause());
        }
    }

    /**
     * Rethrows what a backing call on another thread failed with, as it was: an IOException, a
     * RuntimeException or an Error; anything else (a checked exception a Callable may throw) as an I/O error.
     */
    static IOException rethrow(String what, Throwable cause) throws IOException {
        if (cause instanceof IOException io) {
            throw io;
        }
        if (cause instanceof RuntimeException re) {
            throw re;
        }
        if (cause instanceof Error err) {
            throw err;
        }
        throw new CorfsException(Reason.IO, what + " failed: " + cause, cause);
    }

    private static <T> T call(Callable<T> task) throws IOException {
        try {
            return task.call();
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(e);
        }
    }
}
