package corfs.engine;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * Reusable direct buffers of one size, so fills allocate nothing per request. Bounded: a buffer
 * returned to a full pool is dropped for the GC. Thread-safe.
 */
final class DirectBufferPool {
    private final int bufferSize;
    private final ArrayBlockingQueue<ByteBuffer> free;

    DirectBufferPool(int bufferSize, int maxPooled) {
        this.bufferSize = bufferSize;
        this.free = new ArrayBlockingQueue<>(maxPooled);
    }

    int bufferSize() {
        return bufferSize;
    }

    ByteBuffer acquire() {
        ByteBuffer b = free.poll();
        return b != null ? b.clear() : ByteBuffer.allocateDirect(bufferSize);
    }

    void release(ByteBuffer b) {
        free.offer(b);
    }
}
