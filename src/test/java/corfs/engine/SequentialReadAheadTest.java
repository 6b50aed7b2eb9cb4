package corfs.engine;

import corfs.backing.FileBacking;
import corfs.image.LeafImage;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The sequential read-ahead fills its chunks concurrently, up to what the backing takes (issue 8):
 * concurrency is told by latches that open only when enough fills are inside at once, never by timing.
 */
@DisplayName("Sequential read-ahead: chunks in flight at once")
class SequentialReadAheadTest {
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    /** Counts the fills inside at once; each waits until {@code needed} have arrived (or 30 s). */
    private static final class CountingFill implements SequentialReadAhead.Fill {
        final AtomicInteger inside = new AtomicInteger();
        final AtomicInteger maxInside = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final CountDownLatch arrived;

        CountingFill(int needed) {
            arrived = new CountDownLatch(needed);
        }

        @Override
        public void fill(long first, long last) {
            maxInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
            arrived.countDown();
            try {
                arrived.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                inside.decrementAndGet();
                done.incrementAndGet();
            }
        }
    }

    @Test
    @DisplayName("four chunks ahead with four in flight: all four fill at once")
    void chunksAtOnce() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            CountingFill fill = new CountingFill(4);
            try (SequentialReadAhead ra = new SequentialReadAhead("t", 1000, 4, 4, 4, fill, true)) {
                ra.ahead(0);
                assertTrue(fill.arrived.await(30, TimeUnit.SECONDS), "four fills inside at once");
            }
            assertEquals(4, fill.maxInside.get());
            assertEquals(4, fill.done.get(), "close waited for every fill");
        });
    }

    @Test
    @DisplayName("a backing that takes one read at a time: one fill at a time")
    void oneAtATime() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            CountingFill fill = new CountingFill(1);
            try (SequentialReadAhead ra = new SequentialReadAhead("t", 1000, 4, 4, 1, fill, true)) {
                ra.ahead(0);
            }
            assertEquals(1, fill.maxInside.get());
            assertEquals(4, fill.done.get());
        });
    }

    @Test
    @DisplayName("through the disk: a sequential cold reader gets eight backing reads in flight ahead of it")
    void throughTheDisk() {
        assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
            Path base = dir.resolve("base.raw");
            byte[] content = new byte[32 << 20];
            new java.util.Random(5).nextBytes(content);
            java.nio.file.Files.write(base, content);
            Path leaf = dir.resolve("leaf.img");
            LeafImage.create(leaf, base, CLUSTER, false);
            DelayBacking backing = new DelayBacking(FileBacking.open(base, FileOps.system()), 32, 0);
            // the largest shape, as a fast link gets it (a loaded machine's slow first read must not shrink it)
            ReadAheadBudget full = ReadAheadBudget.fixed(CLUSTER, LeafDisk.FILL_CHUNK / CLUSTER, LeafDisk.PREFETCH_CHUNKS);
            try (LeafDisk disk = new LeafDisk("leaf.img", LeafImage.open(leaf, FileOps.system(), false, false),
                    backing, false, null, full)) {
                ByteBuffer b = ByteBuffer.allocate(128 << 10);
                disk.read(b, 0); // the first read is not yet sequential
                backing.openWhenInside(LeafDisk.PREFETCH_CHUNKS); // held until eight are inside at once
                for (long off = b.capacity(); off < 4 << 20; off += b.capacity()) {
                    b.clear();
                    assertEquals(b.capacity(), disk.read(b, off));
                    assertArrayEquals(Arrays.copyOfRange(content, (int) off, (int) off + b.capacity()), b.array(),
                            "at " + off);
                }
                assertTrue(backing.maxInside() >= LeafDisk.PREFETCH_CHUNKS, "reads inside at once: "
                        + backing.maxInside());
            }
        });
    }
}
