package corfs.backing.qcow2;

import corfs.backing.Backing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link Backing} of any transport as the bytes a qcow2 (or raw) layer is read from. Keeps the SPEC the
 * backing was opened from, unredacted, to resolve the layer's backing name against
 * ({@link ChainNames}); shows only the backing's own (redacted) location.
 *
 * <p>Thread-safety: that of the backing (every call positional). Owns the backing: {@link #close} closes
 * it, once.
 */
final class BackingSource implements Qcow2Source {
    private final String spec;
    private final Backing backing;
    private final AtomicBoolean closed = new AtomicBoolean();

    BackingSource(String spec, Backing backing) {
        this.spec = spec;
        this.backing = backing;
    }

    /** The SPEC this layer was opened from, with any credential in it: never shown. */
    String spec() {
        return spec;
    }

    Backing backing() {
        return backing;
    }

    @Override
    public long size() {
        return backing.size();
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        backing.readFully(dst, offset);
    }

    @Override
    public String location() {
        return backing.location();
    }

    /**
     * The location and the backing's identity token, for the chain's loop check. The location is part of
     * it: two different objects may share a token (nginx's ETag is mtime and size, equal for two overlays
     * of one size written in the same second), which must not read as a loop.
     */
    @Override
    public String identity() throws IOException {
        return location() + " " + backing.identity().token();
    }

    /** The backing's allocation, for a raw layer: data (or unknown) is data; a hole or zeros read as zeros. */
    @Override
    public Allocation rawAllocation(long offset, long max) throws IOException {
        corfs.backing.Allocation a = backing.allocation(offset, max);
        long n = Math.min(a.length(), max);
        return new Allocation(a.readsAsZeros() ? Allocation.Kind.ZERO : Allocation.Kind.DATA, n);
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            backing.close();
        }
    }

    @Override
    public String toString() {
        return "BackingSource[" + location() + "]";
    }
}
