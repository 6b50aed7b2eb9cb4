package corfs.backing.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * An in-memory {@link Qcow2Source} that records any request outside {@code [0, size)} (the reader must
 * never make one) and counts the bytes read.
 */
final class CheckedSource implements Qcow2Source {
    private final String location;
    private final byte[] bytes;
    final AtomicLong bytesRead = new AtomicLong();
    final AtomicReference<String> violation = new AtomicReference<>();

    CheckedSource(String location, byte[] bytes) {
        this.location = location;
        this.bytes = bytes;
    }

    @Override
    public long size() {
        return bytes.length;
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        int n = dst.remaining();
        if (offset < 0 || offset > bytes.length - (long) n) {
            violation.compareAndSet(null, "read of " + n + " at " + offset + " outside " + bytes.length + " bytes");
            throw new AssertionError(violation.get());
        }
        dst.put(bytes, (int) offset, n);
        bytesRead.addAndGet(n);
    }

    @Override
    public String location() {
        return location;
    }

    @Override
    public void close() {
    }

    /** Resolves names to other checked sources (by the name as written), for chains in memory. */
    static Qcow2Source.Resolver resolver(Map<String, CheckedSource> byName) {
        return (from, name) -> {
            CheckedSource s = byName.get(name);
            if (s == null) {
                throw new java.nio.file.NoSuchFileException(name);
            }
            return s;
        };
    }
}
