package corfs.engine;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

import java.util.PriorityQueue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The read-ahead budget driven without FUSE or threads: a fake clock and a simulated link (a fixed delay
 * per read, then a FIFO at a fixed rate, as nbdkit's delay and rate filters do), a sequential reader that
 * keeps the budget's shape in flight. Everything is computed, nothing is timed.
 */
@DisplayName("Read-ahead budget: sized from the link")
class ReadAheadBudgetTest {
    private static final int CLUSTER = 65536;
    private static final long CHUNK_CLUSTERS = LeafDisk.FILL_CHUNK / CLUSTER;
    private static final int CHUNKS = LeafDisk.PREFETCH_CHUNKS;
    private static final long MAX = (long) LeafDisk.FILL_CHUNK * CHUNKS;

    /** A link: every read waits {@code delayNanos}, then its bytes go through one FIFO at {@code bytesPerSecond}. */
    private static final class Link {
        long now;
        long freeAt;
        long bytesPerSecond;
        long delayNanos;
        long delivered;
        final ReadAheadBudget budget = new ReadAheadBudget(() -> now, CLUSTER, CHUNK_CLUSTERS, CHUNKS);
        final PriorityQueue<long[]> inFlight = new PriorityQueue<>((a, b) -> Long.compare(a[0], b[0]));
        long maxInFlightBytes;

        Link(long bytesPerSecond, long delayNanos) {
            this.bytesPerSecond = bytesPerSecond;
            this.delayNanos = delayNanos;
        }

        void issue(long bytes) {
            long token = budget.begin();
            long finish = Math.max(now + delayNanos, freeAt) + bytes * 1_000_000_000L / bytesPerSecond;
            freeAt = finish;
            inFlight.add(new long[]{finish, token, bytes});
            maxInFlightBytes = Math.max(maxInFlightBytes, inFlight.stream().mapToLong(r -> r[2]).sum());
        }

        void completeOne() {
            long[] r = inFlight.poll();
            now = Math.max(now, r[0]);
            budget.end(r[1], r[2]);
            delivered += r[2];
        }

        /** A sequential reader for {@code nanos}: keeps the budget's chunks in flight; returns bytes per second. */
        long sequential(long nanos) {
            long start = now;
            long before = delivered;
            maxInFlightBytes = 0;
            while (now - start < nanos) {
                ReadAheadBudget.Shape s = budget.shape();
                while (inFlight.size() < s.chunks()) {
                    issue(s.chunkClusters() * CLUSTER);
                }
                completeOne();
            }
            while (!inFlight.isEmpty()) {
                completeOne();
            }
            return (delivered - before) * 1_000_000_000L / Math.max(1, now - start);
        }

        /** One read of {@code bytes} alone (a guest miss at queue depth 1); returns its latency. */
        long alone(long bytes) {
            long start = now;
            issue(bytes);
            completeOne();
            return now - start;
        }
    }

    @Test
    @DisplayName("before anything is measured: the largest shape (a fast link must not start slow)")
    void startsLargest() {
        ReadAheadBudget b = new ReadAheadBudget(() -> 0L, CLUSTER, CHUNK_CLUSTERS, CHUNKS);
        assertEquals(new ReadAheadBudget.Shape(CHUNK_CLUSTERS, CHUNKS), b.shape());
        assertEquals(MAX, b.budgetBytes());
    }

    @Nested
    @DisplayName("a slow link, 25 MB/s and 5 ms a read (the boot bench's)")
    class Slow {
        final Link link = new Link(25_000_000L, 5_000_000L);

        @Test
        @DisplayName("a sequential reader settles at about two round trips of the link, and keeps it full")
        void settles() {
            long rate = link.sequential(2_000_000_000L);
            long budget = link.budget.budgetBytes();
            // 25 MB/s x 10 ms = 250 KB; whole clusters, chunks of half of it at most
            assertTrue(budget >= 128 << 10 && budget <= 400_000, "budget " + budget + " " + link.budget);
            assertTrue(link.budget.shape().chunkClusters() * CLUSTER <= budget / 2 + CLUSTER, link.budget.toString());
            assertTrue(rate >= 20_000_000L, "sequential rate " + rate + " with " + link.budget);
            // a guest miss arriving now queues behind at most the budget: about one round trip of the link
            ReadAheadBudget.Shape s = link.budget.shape();
            link.maxInFlightBytes = 0;
            for (int i = 0; i < s.chunks(); i++) {
                link.issue(s.chunkClusters() * CLUSTER);
            }
            long miss = link.alone(4096);
            assertTrue(link.maxInFlightBytes <= 400_000 + 4096, "in flight " + link.maxInFlightBytes);
            assertTrue(miss < 25_000_000L, "a miss behind the read-ahead took " + miss + " ns");
        }

        @Test
        @DisplayName("guest misses at queue depth 1 alone shrink it from the largest shape")
        void missesShrinkIt() {
            for (int i = 0; i < 20; i++) {
                link.alone(65536);
            }
            assertTrue(link.budget.budgetBytes() <= 256 << 10, link.budget.toString());
        }
    }

    @Test
    @DisplayName("a fast link (a local disk, 2 GB/s and 50 us a read) keeps the largest shape")
    void fastKeepsLargest() {
        Link link = new Link(2_000_000_000L, 50_000L);
        long rate = link.sequential(200_000_000L);
        assertEquals(MAX, link.budget.budgetBytes(), link.budget.toString());
        assertTrue(rate >= 1_500_000_000L, "rate " + rate);
    }

    @Test
    @DisplayName("a far link (25 MB/s, 40 ms a read) is still filled: the target is two base round trips")
    void farLinkFilled() {
        Link link = new Link(25_000_000L, 40_000_000L);
        link.alone(4096); // a first read alone gives the round trip
        long rate = link.sequential(10_000_000_000L);
        assertTrue(rate >= 18_000_000L, "rate " + rate + " with " + link.budget);
        assertTrue(link.budget.budgetBytes() <= 3_000_000L, link.budget.toString());
    }

    @Test
    @DisplayName("a link that slows down shrinks the budget; one that recovers grows it back")
    void follows() {
        Link link = new Link(500_000_000L, 1_000_000L);
        link.sequential(1_000_000_000L);
        long fast = link.budget.budgetBytes();
        link.bytesPerSecond = 10_000_000L;
        link.sequential(3_000_000_000L);
        long slow = link.budget.budgetBytes();
        assertTrue(slow * 4 <= fast, "fast " + fast + ", slow " + slow);
        link.bytesPerSecond = 500_000_000L;
        link.sequential(1_000_000_000L);
        assertEquals(fast, link.budget.budgetBytes(), link.budget.toString());
    }

    @Test
    @DisplayName("failed reads deliver nothing: their time lowers the rate")
    void failuresLowerTheRate() {
        long[] now = {0};
        ReadAheadBudget b = new ReadAheadBudget(() -> now[0], CLUSTER, CHUNK_CLUSTERS, CHUNKS);
        for (int i = 0; i < 20; i++) {
            long t = b.begin();
            now[0] += 30_000_000L; // a timeout
            b.end(t, 0);
        }
        assertEquals(ReadAheadBudget.MIN_BUDGET, b.budgetBytes(), b.toString());
    }

    @Test
    @DisplayName("a fixed budget never moves")
    void fixed() {
        ReadAheadBudget b = ReadAheadBudget.fixed(CLUSTER, 4, 3);
        long t = b.begin();
        b.end(t, 1);
        assertEquals(new ReadAheadBudget.Shape(4, 3), b.shape());
    }
}
