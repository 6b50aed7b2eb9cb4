package corfs.backing;

import corfs.CorfsException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 7, defect 3: every call through {@link TimeoutBacking} has a deadline, not only reads. The inner
 * backing hangs (like an NFS server gone, or lseek(SEEK_DATA) on a stopped FUSE daemon) until released.
 */
@DisplayName("TimeoutBacking: a deadline on every call")
class TimeoutBackingTest {
    private static final long TIMEOUT_MS = 300;
    /** A hang guard only: far above the deadline, so the verdict never depends on speed. */
    private static final Duration GUARD = Duration.ofSeconds(20);

    private final CountDownLatch release = new CountDownLatch(1);
    private final Set<String> callerThreads = ConcurrentHashMap.newKeySet();
    private final AtomicInteger interrupted = new AtomicInteger();
    private final AtomicInteger entered = new AtomicInteger();
    private final java.util.concurrent.atomic.AtomicBoolean zeroesForwarded = new java.util.concurrent.atomic.AtomicBoolean();

    @AfterEach
    void releaseHangs() {
        release.countDown();
    }

    /** Blocks until released (60 s at most), counting interrupts instead of dying of them. */
    private void hang() throws IOException {
        entered.incrementAndGet();
        callerThreads.add(Thread.currentThread().getName());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            try {
                if (release.await(100, TimeUnit.MILLISECONDS)) {
                    return;
                }
            } catch (InterruptedException e) {
                interrupted.incrementAndGet();
            }
        }
        throw new IOException("never released");
    }

    private final class Hanging implements Backing {
        volatile boolean hangAll = true;

        @Override public String location() { return "hanging"; }
        @Override public long size() { return 1 << 20; }
        @Override public int maxInFlight() { return 64; }

        @Override
        public BackingIdentity identity() throws IOException {
            hang();
            return BackingIdentity.file(size(), 1, 2);
        }

        @Override
        public void readFully(ByteBuffer dst, long offset) throws IOException {
            hang();
            dst.position(dst.limit());
        }

        @Override
        public Allocation allocation(long offset, long max) throws IOException {
            hang();
            return new Allocation(Allocation.Kind.DATA, max);
        }

        @Override
        public Writer openWriter() throws IOException {
            if (hangAll) {
                hang();
            }
            return new Writer() {
                @Override public void writeFully(ByteBuffer src, long offset) throws IOException {
                    hang();
                    src.position(src.limit());
                }
                @Override public void writeZeroes(long offset, long length) throws IOException {
                    zeroesForwarded.set(true);
                    hang();
                }
                @Override public void flush() throws IOException { hang(); }
                @Override public void close() throws IOException { hang(); }
            };
        }

        @Override
        public void close() throws IOException {
            hang();
        }
    }

    private static void assertTimesOut(String what, Executable call) {
        assertTimeoutPreemptively(GUARD, () -> {
            IOException e = assertThrows(IOException.class, call, what + " returned while the backing hangs");
            assertInstanceOf(CorfsException.class, e, what);
            assertEquals(CorfsException.Reason.IO, ((CorfsException) e).reason(), what + ": " + e);
        }, what + " hung");
    }

    @Test
    @DisplayName("read, allocation, identity, openWriter, the writer's calls and close all return with IO")
    void everyCallIsBounded() throws Exception {
        Hanging inner = new Hanging();
        TimeoutBacking b = new TimeoutBacking(inner, TIMEOUT_MS, 16);
        assertTimesOut("readFully", () -> b.readFully(ByteBuffer.allocate(10), 0));
        assertTimesOut("allocation", () -> b.allocation(0, 4096));
        assertTimesOut("identity", b::identity);
        assertTimesOut("openWriter", b::openWriter);
        inner.hangAll = false;
        Backing.Writer w = assertTimeoutPreemptively(GUARD, b::openWriter);
        assertTimesOut("writeFully", () -> w.writeFully(ByteBuffer.allocate(10), 0));
        assertTimesOut("flush", w::flush);
        assertTimesOut("writer close", w::close);
        Backing.Writer w2 = assertTimeoutPreemptively(GUARD, b::openWriter);
        assertTimesOut("writeZeroes", () -> w2.writeZeroes(0, 4096));
        assertTrue(zeroesForwarded.get(), "writeZeroes reached the inner writer's own (WRITE_ZEROES), not zero buffers");
        assertTimeoutPreemptively(GUARD, b::close, "close hung");
        assertTimeoutPreemptively(GUARD, b::close, "a second close");
        for (String t : callerThreads) {
            assertTrue(t.startsWith("corfs-backing-"), "backing call ran on thread " + t);
        }
        release.countDown();
        Thread.sleep(300);
        assertEquals(0, interrupted.get(), "a backing thread was interrupted");
    }

    @Test
    @DisplayName("when every worker is stuck, the next call is refused at once, and works again when they answer")
    void stuckWorkersRejectAtOnce() throws Exception {
        Hanging inner = new Hanging();
        try (TimeoutBacking b = new TimeoutBacking(inner, TIMEOUT_MS, 2)) {
            assertTimesOut("first", () -> b.allocation(0, 1));
            assertTimesOut("second", () -> b.allocation(0, 1));
            int before = entered.get();
            assertTimesOut("third", () -> b.allocation(0, 1));
            assertEquals(before, entered.get(), "a third call reached the backing while both workers were stuck");
            release.countDown();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            Allocation a = null;
            while (a == null && System.nanoTime() < deadline) {
                try {
                    a = b.allocation(0, 7);
                } catch (CorfsException e) {
                    Thread.sleep(50); // the stuck workers are still coming back
                }
            }
            assertEquals(new Allocation(Allocation.Kind.DATA, 7), a);
            assertFalse(interrupted.get() > 0, "a backing thread was interrupted");
        }
    }
}
