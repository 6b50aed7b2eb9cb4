package corfs.backing;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A backing that passes every call to another: the base of decorators ({@link MeteredBacking},
 * {@link TimeoutBacking}, the tests' delay, gate and fault backings), which override only the calls they
 * change. A decorator that forwards {@link #close()} owns its inner backing; one that must not close it
 * overrides {@code close}.
 *
 * <p>{@link #copyTo}/{@link #canCopyTo} are <em>not</em> forwarded: an in-kernel copy would bypass whatever
 * a decorator does to reads (delays, faults, gates), so callers read instead. A decorator that treats copies
 * as it treats reads forwards them itself ({@link MeteredBacking}, {@link TimeoutBacking}).
 */
public abstract class ForwardingBacking implements Backing {
    /** The backing decorated; never null. */
    protected final Backing inner;

    protected ForwardingBacking(Backing inner) {
        if (inner == null) {
            throw new IllegalArgumentException("no backing to forward to");
        }
        this.inner = inner;
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
    public int maxInFlight() {
        return inner.maxInFlight();
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        inner.readFully(dst, offset);
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
        inner.close();
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "[" + inner + "]";
    }
}
