package corfs.backing;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A backing that counts: every {@link #readFully}, {@link #copyTo} that copied and {@link #allocation} call is timed once into a
 * {@link BackingMeter} (success or failure, as the caller saw it), and each failure counted as a timeout
 * ({@link BackingTimeoutException}) or an I/O error (anything else). The outermost decorator of a mounted
 * leaf's backing, outside {@link TimeoutBacking}, so a call's time is the time its caller waited, a timed
 * out call counts its deadline, and nothing is counted twice. Everything else passes through uncounted
 * (identity, the commit's writer). Adds no lock and no allocation to a call.
 */
public final class MeteredBacking extends ForwardingBacking {
    private final BackingMeter meter;

    public MeteredBacking(Backing inner, BackingMeter meter) {
        super(inner);
        this.meter = meter;
    }

    /** Where this backing's calls are counted. */
    public BackingMeter meter() {
        return meter;
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        long start = System.nanoTime();
        try {
            inner.readFully(dst, offset);
        } catch (IOException | RuntimeException e) {
            failed(e);
            throw e;
        } finally {
            meter.record(System.nanoTime() - start);
        }
    }

    @Override
    public boolean canCopyTo(corfs.io.FileOps.SparseFile target) {
        return inner.canCopyTo(target);
    }

    @Override
    public boolean copyTo(long offset, int length, corfs.io.FileOps.SparseFile target, long targetOffset)
            throws IOException {
        long start = System.nanoTime();
        boolean copied = false;
        try {
            copied = inner.copyTo(offset, length, target, targetOffset);
            return copied;
        } catch (IOException | RuntimeException e) {
            failed(e);
            copied = true; // a call that reached the backing, and is counted
            throw e;
        } finally {
            if (copied) {
                meter.record(System.nanoTime() - start);
            }
        }
    }

    @Override
    public Allocation allocation(long offset, long max) throws IOException {
        long start = System.nanoTime();
        try {
            return inner.allocation(offset, max);
        } catch (IOException | RuntimeException e) {
            failed(e);
            throw e;
        } finally {
            meter.record(System.nanoTime() - start);
        }
    }

    private void failed(Exception e) {
        if (e instanceof BackingTimeoutException) {
            meter.timedOut();
        } else {
            meter.failed();
        }
    }

    @Override
    public String toString() {
        return "Metered[" + inner + "]";
    }
}
