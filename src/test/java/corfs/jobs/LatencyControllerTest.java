package corfs.jobs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.vocabulary.JobSpeed;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.PriorityQueue;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * {@link LatencyController} against a simulated server: one FIFO queue served at a rate (bytes/s),
 * plus a fixed propagation delay, so the latency of a fill is what waits before it, its own transfer and
 * the path. The simulated stream keeps the controller's fills in flight and its rate, as
 * {@link StreamStep} and {@link LeafJob} do, and feeds it every completion.
 */
@DisplayName("LatencyController: LEDBAT pacing against a simulated server")
class LatencyControllerTest {
    private static final long MS = 1_000_000L;
    private static final long S = 1_000 * MS;
    private static final long MIB = 1 << 20;
    private static final long TARGET = 20 * MS;

    /** The simulated server and stream; time in ns. */
    static final class Sim {
        final LatencyController c;
        double bytesPerSecond;
        long path;
        long now;
        long serverFreeAt;
        long nextAllowed;
        /** {completion time, issue time, bytes} of the fills in flight. */
        final PriorityQueue<long[]> inFlight = new PriorityQueue<>((a, b) -> Long.compare(a[0], b[0]));
        long fills;
        long bytes;
        double delaySum;
        long delayCount;
        long minInFlightCap = Long.MAX_VALUE;
        long minRate = Long.MAX_VALUE;

        Sim(double bytesPerSecond, long path) {
            this(new LatencyController(TARGET, MIB), bytesPerSecond, path);
        }

        Sim(LatencyController c, double bytesPerSecond, long path) {
            this.c = c;
            this.bytesPerSecond = bytesPerSecond;
            this.path = path;
        }

        /** Runs for {@code duration}; returns the fills completed in it. */
        long run(long duration) {
            long until = now + duration;
            long before = fills;
            delaySum = 0;
            delayCount = 0;
            while (now < until) {
                while (inFlight.size() < c.inFlight() && now >= nextAllowed) {
                    long size = c.fillBytes();
                    long start = Math.max(now, serverFreeAt);
                    serverFreeAt = start + (long) (size * 1e9 / bytesPerSecond);
                    inFlight.add(new long[] {serverFreeAt + path, now, size});
                    long rate = c.rateLimit();
                    nextAllowed = rate == 0 ? now : Math.max(nextAllowed, now - 250 * MS) + size * S / rate;
                }
                long next = inFlight.isEmpty() ? Long.MAX_VALUE : inFlight.peek()[0];
                if (inFlight.size() < c.inFlight()) {
                    next = Math.min(next, nextAllowed);
                }
                now = Math.min(Math.max(next, now), until);
                while (!inFlight.isEmpty() && inFlight.peek()[0] <= now) {
                    long[] f = inFlight.poll();
                    long latency = f[0] - f[1];
                    c.sample(f[0], latency, f[2]);
                    fills++;
                    bytes += f[2];
                    delaySum += latency - baseLatency(f[2]);
                    delayCount++;
                    minInFlightCap = Math.min(minInFlightCap, c.inFlight());
                    long r = c.rateLimit();
                    minRate = Math.min(minRate, r == 0 ? Long.MAX_VALUE : r);
                }
            }
            return fills - before;
        }

        long baseLatency(long size) {
            return (long) (size * 1e9 / bytesPerSecond) + path;
        }

        double meanDelay() {
            return delayCount == 0 ? 0 : delaySum / delayCount;
        }
    }

    @Test
    @DisplayName("converges: the delay it adds stays near the target and the server stays busy")
    void converges() {
        Sim sim = new Sim(100.0 * MIB, 5 * MS); // 10 ms a fill, 15 ms base
        sim.run(30 * S);
        long fills = sim.run(30 * S);
        double delay = sim.meanDelay();
        assertTrue(delay <= 1.5 * TARGET && delay >= 0.25 * TARGET, "mean queueing delay " + delay / MS + " ms; "
                + sim.c);
        assertTrue(fills >= 0.9 * 30 * 100, fills + " fills in 30 s: the server idles; " + sim.c);
    }

    @Test
    @DisplayName("an idle, fast path: the window opens to the maximum (unlimited)")
    void opensOnAnUncongestedPath() {
        Sim sim = new Sim(10_000.0 * MIB, 20 * MS); // transfers are nothing next to the path
        sim.run(20 * S);
        assertEquals(LatencyController.MAX_WINDOW, sim.c.window(), 1e-9, sim.c.toString());
        assertEquals(0, sim.c.rateLimit());
        assertEquals(8, sim.c.inFlight());
    }

    @Test
    @DisplayName("backs off when the service rate drops, never below the floor, and recovers when it rises")
    void backsOffAndRecovers() {
        Sim sim = new Sim(100.0 * MIB, 5 * MS);
        sim.run(30 * S);
        double before = sim.c.window();
        assertTrue(before >= 2, sim.c.toString());

        sim.bytesPerSecond = 10.0 * MIB; // the server slows (others load it)
        sim.minInFlightCap = Long.MAX_VALUE;
        sim.minRate = Long.MAX_VALUE;
        long slowFills = sim.run(60 * S);
        double slowed = sim.c.window();
        assertTrue(slowed < before / 4 && slowed < 1, "window " + before + " -> " + slowed);
        assertTrue(sim.c.rateLimit() > 0 && sim.c.rateLimit() < 10 * MIB, sim.c.toString());
        assertTrue(slowFills >= 60 / 8 - 1, "at the floor it still fetches: " + slowFills + " fills in 60 s");
        assertTrue(sim.minInFlightCap >= 1);
        assertTrue(sim.minRate >= LatencyController.MIN_RATE, "rate " + sim.minRate);

        sim.bytesPerSecond = 100.0 * MIB; // the load is gone
        sim.run(60 * S);
        long fills = sim.run(10 * S);
        assertTrue(sim.c.window() >= 2, "recovered window " + sim.c);
        assertTrue(fills >= 0.8 * 10 * 100, fills + " fills in the last 10 s; " + sim.c);
    }

    @Test
    @DisplayName("the base expires when the path changes: a slower path is the new normal within the window")
    void baseExpiresOnAPathChange() {
        Sim sim = new Sim(100.0 * MIB, 5 * MS);
        sim.run(30 * S);
        sim.path = 200 * MS; // a longer path, not a queue
        sim.run(30 * S);
        assertTrue(sim.c.window() < 1, "first read as queueing: " + sim.c);
        long history = LatencyController.BASE_BUCKETS * LatencyController.BASE_BUCKET_SECONDS * S;
        sim.run(history + 60 * S);
        long base = sim.c.baseNanos();
        assertTrue(base >= 200 * MS && base <= 220 * MS, "base " + base / MS + " ms");
        assertTrue(sim.c.window() >= 2, sim.c.toString());
    }

    @Nested
    @DisplayName("the rules, sample by sample")
    class Rules {
        @Test
        @DisplayName("a failed or timed-out fill halves the window, once per round trip, down to the floor")
        void lossBacksOff() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, 10 * MS, MIB);
            double w = c.window();
            c.lost(S);
            assertEquals(w / 2, c.window(), 1e-9);
            c.lost(S + MS); // the same burst of failures
            assertEquals(w / 2, c.window(), 1e-9);
            for (int i = 1; i <= 40; i++) {
                c.lost(S + i * S);
            }
            assertEquals(LatencyController.MIN_WINDOW, c.window(), 1e-12, "never below the floor");
            LatencyController fresh = new LatencyController(TARGET, MIB); // no sample yet: still backs off
            double f = fresh.window();
            fresh.lost(S);
            assertEquals(f / 2, fresh.window(), 1e-9);
        }

        @Test
        @DisplayName("halves at most once per round trip, and by target/delay when just above")
        void decreaseOncePerRoundTrip() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, 10 * MS, MIB); // base 10 ms
            for (int i = 0; i < 3; i++) {
                c.sample(S, 210 * MS, MIB); // current (min of the last 4) is still 10 ms
            }
            double w = c.window();
            c.sample(S, 210 * MS, MIB);
            c.sample(S + MS, 210 * MS, MIB);
            c.sample(S + 2 * MS, 210 * MS, MIB);
            assertEquals(w / 2, c.window(), 1e-9, "one halving in one round trip");
            c.sample(S + 300 * MS, 210 * MS, MIB);
            assertEquals(w / 4, c.window(), 1e-9);
            LatencyController d = new LatencyController(TARGET, MIB);
            d.sample(0, 10 * MS, MIB);
            for (int i = 0; i < 3; i++) {
                d.sample(S, 35 * MS, MIB);
            }
            double dw = d.window();
            d.sample(S + 1, 35 * MS, MIB); // 25 ms of delay: x 20/25, once
            d.sample(S + 2, 35 * MS, MIB);
            assertEquals(dw * 0.8, d.window(), 1e-9);
        }

        @Test
        @DisplayName("grows by off_target/window per sample, at most doubling, up to the maximum")
        void additiveIncrease() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, 10 * MS, MIB);
            double w0 = LatencyController.INITIAL_WINDOW;
            assertEquals(w0 + 1 / w0, c.window(), 1e-9);
            c.sample(MS, 20 * MS, MIB); // current stays 10 ms: no delay
            for (int i = 0; i < 1000; i++) {
                c.sample(2 * MS + i, 10 * MS, MIB);
            }
            assertEquals(LatencyController.MAX_WINDOW, c.window(), 1e-9);
        }

        @Test
        @DisplayName("never below the floor: at least one fill in flight and MIN_RATE")
        void floor() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, MS, MIB);
            for (int i = 1; i < 10_000; i++) {
                c.sample(i * MS, 100 * MS, MIB); // 99 ms of delay, far over the target, within the base history
            }
            assertEquals(LatencyController.MIN_WINDOW, c.window(), 1e-12);
            assertEquals(1, c.inFlight());
            assertEquals(Math.max(LatencyController.MIN_RATE, (long) (LatencyController.MIN_WINDOW * MIB * 1e9 / (100 * MS))),
                    c.rateLimit(), 1, "window fills per current latency (100 ms), not per base");
            LatencyController slow = new LatencyController(TARGET, MIB); // a long base: the rate's own floor
            slow.sample(0, S, MIB);
            for (int i = 1; i < 100; i++) { // 250 s: within the base history
                slow.sample(i * 5 * S / 2, 2 * S, MIB);
            }
            assertEquals(LatencyController.MIN_RATE, slow.rateLimit());
            assertEquals(1, slow.inFlight());
        }

        @Test
        @DisplayName("rate: window fills per base latency; unlimited before any sample")
        void rate() {
            LatencyController c = new LatencyController(TARGET, MIB);
            assertEquals(0, c.rateLimit());
            assertEquals(2, c.inFlight());
            c.sample(0, 100 * MS, MIB);
            assertEquals((long) (c.window() * MIB * 10), c.rateLimit(), 2);
        }

        @Test
        @DisplayName("a gap longer than the base history starts the base afresh")
        void gapResetsBase() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, 5 * MS, MIB);
            c.sample(S, 50 * MS, MIB);
            assertEquals(5 * MS, c.baseNanos());
            c.sample(3600 * S, 50 * MS, MIB);
            assertEquals(50 * MS, c.baseNanos());
        }

        @Test
        @DisplayName("refuses a target or fill size that is not positive, or a largest fill below the smallest")
        void arguments() {
            assertThrows(IllegalArgumentException.class, () -> new LatencyController(0, MIB));
            assertThrows(IllegalArgumentException.class, () -> new LatencyController(TARGET, 0));
            assertThrows(IllegalArgumentException.class, () -> new LatencyController(TARGET, MIB, MIB / 2));
        }
    }

    @Nested
    @DisplayName("the fill size: the window's gear")
    class FillSize {
        private static final long CLUSTER = 64 << 10;

        /** Samples of the current fill size, one per round trip, each {@code latency} long; returns the time. */
        private long feed(LatencyController c, long now, long latency, int count) {
            for (int i = 0; i < count; i++) {
                now += latency;
                c.sample(now, latency, c.fillBytes());
            }
            return now;
        }

        @Test
        @DisplayName("halves while even one fill in flight is over the target, down to one cluster, keeping the bytes in flight")
        void shrinks() {
            LatencyController c = new LatencyController(TARGET, CLUSTER, MIB);
            assertEquals(MIB, c.fillBytes(), "the largest step first");
            c.sample(0, 5 * MS, MIB); // base 5 ms
            long now = MS;
            long fill = c.fillBytes();
            while (c.fillBytes() == fill) {
                double before = c.window() * c.fillBytes();
                now = feed(c, now, 65 * MS, 1); // 60 ms over the base: the window falls
                if (c.fillBytes() != fill) {
                    assertEquals(fill / 2, c.fillBytes(), "one halving at a time");
                    double after = c.window() * c.fillBytes();
                    assertTrue(after <= before + 1e-6 && c.window() >= 1 - 1e-9,
                            "bytes in flight " + before + " -> " + after + "; " + c);
                    fill = c.fillBytes();
                }
                if (fill == CLUSTER) {
                    break;
                }
            }
            now = feed(c, now, 65 * MS, 200);
            assertEquals(CLUSTER, c.fillBytes(), "never below a cluster: " + c);
            assertEquals(LatencyController.MIN_WINDOW, c.window(), 1e-12);
            assertTrue(c.rateLimit() >= LatencyController.MIN_RATE);
        }

        @Test
        @DisplayName("doubles when eight fills in flight stay under the target, up to the largest step")
        void grows() {
            LatencyController c = new LatencyController(TARGET, CLUSTER, MIB);
            c.sample(0, 5 * MS, MIB);
            long now = feed(c, MS, 200 * MS, 40);
            assertEquals(CLUSTER, c.fillBytes(), c.toString());
            now = feed(c, now, 5 * MS, 1000); // the queue is gone
            assertEquals(MIB, c.fillBytes(), c.toString());
            assertEquals(LatencyController.MAX_WINDOW, c.window(), 1e-9);
            assertEquals(0, c.rateLimit(), "unlimited again");
        }

        @Test
        @DisplayName("a smaller fill is not read as less queue: its delay is scaled up to the reference size")
        void normalised() {
            LatencyController c = new LatencyController(TARGET, CLUSTER, MIB);
            c.sample(0, 5 * MS, MIB);
            long now = feed(c, MS, 200 * MS, 40);
            assertEquals(CLUSTER, c.fillBytes(), c.toString());
            feed(c, now, 11 * MS, LatencyController.CURRENT_SAMPLES);
            long scale = LatencyController.REFERENCE_FILL / CLUSTER;
            assertEquals(6 * MS * scale, c.queueingDelayNanos(), c.toString());
            assertTrue(c.queueingDelayNanos() > TARGET, "6 ms of a 64 KiB fill is 24 ms of a 256 KiB one: over");
        }

        @Test
        @DisplayName("the base of a size is the minimum of it and the larger sizes, never of a smaller one")
        void basePerSize() {
            LatencyController c = new LatencyController(TARGET, CLUSTER, MIB);
            c.sample(0, 40 * MS, MIB);
            c.sample(MS, 20 * MS, MIB / 2); // issued at another size: its own base, no window change
            assertEquals(40 * MS, c.baseNanos(), "1 MiB fills compare with 1 MiB fills");
            long now = feed(c, 2 * MS, 400 * MS, 40);
            assertTrue(c.fillBytes() < MIB / 2, c.toString());
            assertEquals(20 * MS, c.baseNanos(), "a smaller size takes the larger sizes' minimum as its bound");
            c.sample(now + 1, 3 * MS, CLUSTER);
            assertEquals(3 * MS, c.baseNanos(), c.toString());
            assertTrue(c.sample(now + 2, 3 * MS, 3 * CLUSTER) == false, "not a fill size: no sample");
        }

        @Test
        @DisplayName("a FIFO server at 25 MB/s behind 5 ms: smaller fills, the server as busy, less queue than 1 MiB fills")
        void slowLink() {
            Sim sized = new Sim(new LatencyController(TARGET, CLUSTER, MIB), 25e6, 5 * MS);
            Sim fixed = new Sim(new LatencyController(TARGET, MIB), 25e6, 5 * MS);
            for (Sim sim : new Sim[] {sized, fixed}) {
                sim.run(30 * S);
                sim.bytes = 0;
                sim.run(30 * S);
            }
            assertTrue(sized.c.fillBytes() < MIB, sized.c.toString());
            assertTrue(sized.bytes / 30.0 >= 0.8 * 25e6, "server busy: " + sized.bytes / 30.0 + " B/s; " + sized.c);
            double queue = sized.meanDelay() + sized.baseLatency(sized.c.fillBytes()) - 5 * MS;
            double queueFixed = fixed.meanDelay() + fixed.baseLatency(MIB) - 5 * MS;
            assertTrue(queue < queueFixed, "time a fill waits and transfers: " + queue / MS + " ms against "
                    + queueFixed / MS + " ms with 1 MiB fills; " + sized.c + "; " + fixed.c);
        }
    }

    /**
     * Several streams and a guest on one server that shares its bandwidth per request (processor sharing,
     * as nbdkit's rate filter and fair queueing do) behind a fixed delay; simulated time, in 0.1 ms steps.
     * The guest reads 64-256 KiB at queue depth 1 with 0-2 ms think time, from {@code guestStart} on.
     */
    static final class SharedServer {
        static final long STEP = 100_000;
        static final long CLUSTER = 64 << 10;
        final double bytesPerSecond;
        final long path;
        final boolean quiet;
        final List<LatencyController> streams = new ArrayList<>();
        final List<Long> starts = new ArrayList<>();
        final List<Long> guestLatencies = new ArrayList<>();
        long streamBytes;
        /** Bytes each stream fetched from {@code countFrom} on. */
        long[] bytesOf;
        long countFrom;
        long minFill = CLUSTER;

        /** {remaining bytes, issue time, bytes, owner (-1 the guest), time it leaves the delay}. */
        private final List<double[]> requests = new ArrayList<>();
        private int[] inFlight;
        private long[] nextAllowed;

        SharedServer(double bytesPerSecond, long path, boolean quiet) {
            this.bytesPerSecond = bytesPerSecond;
            this.path = path;
            this.quiet = quiet;
        }

        SharedServer stream(long start) {
            // a fixed salt per stream: the simulation is the same in every run (the draw is random per host)
            streams.add(new LatencyController(TARGET, minFill, MIB).probeSalt(0x5eed + streams.size()));
            starts.add(start);
            return this;
        }

        void run(long guestStart, long end) {
            inFlight = new int[streams.size()];
            bytesOf = new long[streams.size()];
            nextAllowed = new long[streams.size()];
            Random rnd = new Random(42);
            boolean guestBusy = false;
            long guestNext = guestStart;
            for (long now = 0; now < end; now += STEP) {
                for (int i = 0; i < streams.size(); i++) {
                    LatencyController c = streams.get(i);
                    if (now < starts.get(i)) {
                        continue;
                    }
                    int allowed = quiet ? c.inFlightAt(now / MS) : c.inFlight();
                    while (inFlight[i] < allowed && now >= nextAllowed[i]) {
                        long size = c.fillBytes();
                        requests.add(new double[] {size, now, size, i, now + path});
                        inFlight[i]++;
                        long rate = c.rateLimit();
                        nextAllowed[i] = rate == 0 ? now : Math.max(nextAllowed[i], now - 250 * MS) + size * S / rate;
                    }
                }
                if (!guestBusy && now >= guestNext) {
                    long size = CLUSTER << rnd.nextInt(3);
                    requests.add(new double[] {size, now, size, -1, now + path});
                    guestBusy = true;
                }
                int served = 0;
                for (double[] r : requests) {
                    if (r[4] <= now) {
                        served++;
                    }
                }
                double share = served == 0 ? 0 : bytesPerSecond * STEP / 1e9 / served;
                for (Iterator<double[]> it = requests.iterator(); it.hasNext();) {
                    double[] r = it.next();
                    if (r[4] > now || (r[0] -= share) > 0) {
                        continue;
                    }
                    it.remove();
                    long done = now + STEP;
                    long latency = done - (long) r[1];
                    if (r[3] < 0) {
                        guestLatencies.add(latency);
                        guestBusy = false;
                        guestNext = done + rnd.nextInt(2_000_000);
                    } else {
                        int i = (int) r[3];
                        inFlight[i]--;
                        streams.get(i).sample(done, latency, (long) r[2]);
                        streamBytes += (long) r[2];
                        if (done >= countFrom) {
                            bytesOf[i] += (long) r[2];
                        }
                    }
                }
            }
        }

        /** The base a fill of the current size would measure on an idle server. */
        long trueBase(LatencyController c) {
            return path + (long) (c.fillBytes() * 1e9 / bytesPerSecond);
        }

        long guestP99() {
            List<Long> l = new ArrayList<>(guestLatencies);
            Collections.sort(l);
            return l.get((int) Math.ceil(l.size() * 0.99) - 1);
        }
    }

    @Nested
    @DisplayName("quiet windows")
    class QuietWindows {
        @Test
        @DisplayName("none in flight in a quiet window's first half, one probe in its second, the window otherwise")
        void phases() {
            LatencyController c = new LatencyController(TARGET, MIB);
            c.sample(0, 100 * MS, MIB); // the current latency: 100 ms, so the window is 400 ms long
            long period = LatencyController.QUIET_PERIOD_MS;
            long t = 7 * period; // any multiple of the period, on every host's clock
            long probe = c.probeStartMillis(t);
            assertTrue(probe >= 200 && probe <= 350, "the probe begins in the window's second half, early enough to"
                    + " finish: " + probe);
            assertEquals(probe, c.probeStartMillis(t + 399), "one moment for the whole window");
            assertEquals(0, c.inFlightAt(t));
            assertEquals(0, c.inFlightAt(t + probe - 1));
            assertEquals(probe - 50, c.pauseLeftMillis(t + 50));
            assertEquals(1, c.inFlightAt(t + probe));
            assertEquals(1, c.inFlightAt(t + 399));
            assertEquals(0, c.pauseLeftMillis(t + probe));
            assertEquals(c.inFlight(), c.inFlightAt(t + 400));
            assertEquals(c.inFlight(), c.inFlightAt(t - 1));
            LatencyController fast = new LatencyController(TARGET, MIB);
            fast.sample(0, MS, MIB);
            assertEquals(1, fast.inFlightAt(t + LatencyController.QUIET_MIN_MS - 1), "at least the minimum window");
            LatencyController slow = new LatencyController(TARGET, MIB);
            slow.sample(0, 5 * S, MIB);
            assertEquals(fast.inFlight(), fast.inFlightAt(t + LatencyController.QUIET_MIN_MS));
            assertEquals(slow.inFlight(), slow.inFlightAt(t + LatencyController.QUIET_MAX_MS), "at most the maximum");
        }

        @Test
        @DisplayName("three streams started 2 s apart on a shared 25 MB/s server: the quiet windows keep the latecomers'"
                + " bases true and the guest's reads quicker")
        void quietWindowsDeflateLatecomersBases() {
            SharedServer without = new SharedServer(25e6, 5 * MS, false).stream(0).stream(2 * S).stream(4 * S);
            SharedServer with = new SharedServer(25e6, 5 * MS, true).stream(0).stream(2 * S).stream(4 * S);
            SharedServer alone = new SharedServer(25e6, 5 * MS, true);
            for (SharedServer s : List.of(without, with, alone)) {
                s.run(8 * S, 28 * S);
            }
            double worstWithout = 0;
            double worstWith = 0;
            for (int i = 0; i < 3; i++) {
                worstWithout = Math.max(worstWithout,
                        (double) without.streams.get(i).baseNanos() / without.trueBase(without.streams.get(i)));
                worstWith = Math.max(worstWith, (double) with.streams.get(i).baseNanos() / with.trueBase(with.streams.get(i)));
            }
            assertTrue(worstWithout > 2.5, "the simulation shows no latecomer problem to solve: " + worstWithout);
            assertTrue(worstWith < 1.6, "a base stayed inflated " + worstWith + "x: " + with.streams);
            assertTrue(with.guestP99() < 0.7 * without.guestP99(), "guest p99 " + with.guestP99() / MS + " ms with"
                    + " quiet windows, " + without.guestP99() / MS + " ms without, " + alone.guestP99() / MS + " alone");
            assertTrue(with.streamBytes > 0.5 * without.streamBytes, "the streams still get most of the link: "
                    + with.streamBytes + " against " + without.streamBytes);
        }

        @Test
        @DisplayName("two streams probe at different moments in most quiet windows, drawn afresh for each window")
        void probesSpread() {
            LatencyController a = new LatencyController(TARGET, MIB);
            LatencyController b = new LatencyController(TARGET, MIB);
            a.sample(0, 100 * MS, MIB);
            b.sample(0, 100 * MS, MIB);
            int same = 0;
            java.util.Set<Long> moments = new java.util.HashSet<>();
            for (long w = 0; w < 100; w++) {
                long t = w * LatencyController.QUIET_PERIOD_MS;
                same += a.probeStartMillis(t) == b.probeStartMillis(t) ? 1 : 0;
                moments.add(a.probeStartMillis(t));
            }
            assertTrue(same < 20, same + " of 100 windows probed at the same moment"); // expected ~1.3
            assertTrue(moments.size() > 30, "one stream's probes vary between windows: " + moments);
        }

        @Test
        @DisplayName("three streams started together: their probes do not measure each other, so their bases stay"
                + " true and the guest's reads quicker")
        void togetherProbesStayApart() {
            SharedServer s = new SharedServer(25e6, 5 * MS, true);
            s.minFill = LatencyController.MIN_AUTO_FILL; // what a stream's fills are (LeafJob.pacingFor)
            s.stream(0).stream(0).stream(0);
            s.run(8 * S, 60 * S); // the first prober of a window measures a clean base: 1 in 3 windows here
            for (LatencyController c : s.streams) {
                // Probing all at once, each measured the three probes shared: 36.5 ms against 15.5 ms.
                assertTrue(c.baseNanos() < 1.5 * s.trueBase(c), c + " (true base " + s.trueBase(c) / 1000 + " us)");
            }
        }

        @Test
        @DisplayName("one stream alone on the server keeps it at least 85% busy through the quiet windows")
        void aloneStaysFast() {
            SharedServer s = new SharedServer(25e6, 5 * MS, true).stream(0);
            s.run(Long.MAX_VALUE, 30 * S);
            assertTrue(s.streamBytes >= 0.85 * 25e6 * 30, s.streamBytes / 30 + " B/s; " + s.streams);
        }
    }

    @Test
    @DisplayName("a stream's controller: fills from 1 MiB down to 256 KiB with 64 KiB clusters, never smaller; one"
            + " size with 1 MiB clusters")
    void streamFillsNeverSmallerThanAGuestRead() {
        LatencyController c = LeafJob.pacingFor(JobSpeed.AUTO, 64 << 10);
        assertEquals(MIB, c.fillBytes());
        long now = 0;
        c.sample(now, MS, c.fillBytes());
        for (int i = 0; i < 2_000; i++) { // far over the target, long enough to reach the smallest fill
            now += 50 * MS;
            c.sample(now, 500 * MS, c.fillBytes());
        }
        assertEquals(LatencyController.MIN_AUTO_FILL, c.fillBytes(), c.toString());
        LatencyController big = LeafJob.pacingFor(JobSpeed.AUTO, 1 << 20);
        assertEquals(MIB, big.fillBytes());
        big.sample(0, MS, MIB);
        for (int i = 1; i < 2_000; i++) {
            big.sample(i * 50 * MS, 500 * MS, big.fillBytes());
        }
        assertEquals(MIB, big.fillBytes(), "one cluster is the smallest fill when it is larger");
    }

    @Test
    @DisplayName("odd wall clocks and latencies (negative, MIN/MAX_VALUE, huge samples): the pause is always"
            + " bounded by a quiet window, and a stream told to wait is always told how long")
    void oddTimesNeverPauseForever() {
        long[] walls = {Long.MIN_VALUE, Long.MIN_VALUE + 1, -2_500, -1, 0, 1, 2_499, 2_500,
                Long.MAX_VALUE - 1, Long.MAX_VALUE, 1_764_000_000_000L};
        long[] latencies = {1, 20 * MS, 10 * S, Long.MAX_VALUE / 8, Long.MAX_VALUE / 2, Long.MAX_VALUE};
        for (long salt : new long[] {0, 1, -1, Long.MIN_VALUE, Long.MAX_VALUE, 0x9e3779b97f4a7c15L}) {
            for (long latency : latencies) {
                LatencyController c = new LatencyController(TARGET, 64 * 1024, 4 * MIB).probeSalt(salt);
                for (int i = 0; i < 4; i++) {
                    c.sample(i * S, latency, c.fillBytes());
                }
                for (long base : walls) {
                    for (long d = 0; d < 3_000; d += 7) {
                        long wall = base + d; // wraps past MAX_VALUE on purpose
                        int n = c.inFlightAt(wall);
                        long left = c.pauseLeftMillis(wall);
                        String at = "wall " + wall + ", latency " + latency + ", salt " + salt;
                        assertTrue(n >= 0, at);
                        assertTrue(left >= 0 && left <= LatencyController.QUIET_MAX_MS, at + ": pause " + left);
                        assertEquals(n == 0, left > 0, at + ": in flight " + n + ", pause " + left);
                        long probe = c.probeStartMillis(wall);
                        assertTrue(probe > 0 && probe < LatencyController.QUIET_MAX_MS, at + ": probe at " + probe);
                    }
                }
            }
        }
    }
}
