package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link DaemonStop}'s states without a JVM shutdown: the hook is run on a thread of the test, {@code halt}
 * recorded. A mount is a string here; what is asserted is which closes ran, in which order, and when the JVM would
 * have ended.
 */
@Timeout(30)
class DaemonStopTest {
    /** What happened, in order: "close MOUNT why", "halt N". */
    private final List<String> events = new CopyOnWriteArrayList<>();
    private final AtomicReference<Thread> registered = new AtomicReference<>();
    private final AtomicReference<Thread> unregistered = new AtomicReference<>();

    private DaemonStop<String> stop(DaemonStop.Closer<String> closer) {
        return new DaemonStop<>(closer, registered::set, unregistered::set, n -> events.add("halt " + n));
    }

    private DaemonStop<String> stop() {
        return stop((m, why) -> events.add("close " + m + " " + why));
    }

    private Thread signal() {
        Thread t = registered.get();
        assertNotNull(t, "the hook is registered at once");
        t.start();
        return t;
    }

    @Test
    void aSignalWhileOpeningStopsTheStartBeforeItMounts() throws Exception {
        DaemonStop<String> s = stop();
        signal().join(5000);
        assertFalse(s.mounting(), "the main thread must not mount once a signal came");
        assertEquals(List.of(), events, "nothing was mounted: nothing to close, and the JVM ends as it would");
    }

    @Test
    void aSignalWhileMountingWaitsForTheMountThenClosesIt() throws Exception {
        DaemonStop<String> s = stop();
        assertTrue(s.mounting());
        Thread hook = signal();
        hook.join(200);
        assertTrue(hook.isAlive(), "the hook waits for the mount being made");
        assertEquals(List.of(), events);
        AutoCloseable metrics = () -> events.add("metrics closed");
        s.serving("m1", metrics);
        hook.join(5000);
        assertFalse(hook.isAlive());
        assertEquals(List.of("metrics closed", "close m1 signal", "halt 0"), events);
    }

    @Test
    void aStartThatFailsWhileTheHookWaitsLeavesItNothingToClose() throws Exception {
        DaemonStop<String> s = stop();
        assertTrue(s.mounting());
        Thread hook = signal();
        hook.join(100);
        s.startFailed();
        hook.join(5000);
        assertFalse(hook.isAlive());
        assertEquals(List.of(), events, "the failed start undid its mount itself; the JVM ends as it would");
    }

    @Test
    void aSignalWhileServingClosesAndHaltsWithTheCloseStatus() throws Exception {
        DaemonStop<String> s = stop((m, why) -> events.add("close " + m + " " + why) && false);
        s.mounting();
        s.serving("m1", null);
        signal().join(5000);
        assertEquals(List.of("close m1 signal", "halt 1"), events, "a close that failed ends the JVM with 1");
    }

    @Test
    void aSignalDuringTheMainThreadsCloseWaitsForItAndDoesNotCloseTwice() throws Exception {
        CountDownLatch inClose = new CountDownLatch(1);
        CountDownLatch finish = new CountDownLatch(1);
        DaemonStop<String> s = stop((m, why) -> {
            events.add("close " + m + " " + why);
            inClose.countDown();
            try {
                assertTrue(finish.await(10, TimeUnit.SECONDS));
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            events.add("closed " + m);
            return true;
        });
        s.mounting();
        s.serving("m1", null);
        Thread main = new Thread(() -> s.close("a lost starter"), "test-main");
        main.start();
        assertTrue(inClose.await(5, TimeUnit.SECONDS));
        Thread hook = signal(); // the relay's SIGTERM lands while the main thread unmounts
        hook.join(200);
        assertTrue(hook.isAlive(), "the JVM must not end halfway through the main thread's close");
        finish.countDown();
        hook.join(5000);
        main.join(5000);
        assertEquals(List.of("close m1 a lost starter", "closed m1", "halt 0"), events);
    }

    @Test
    void releaseUnregistersTheHookAfterTheMainThreadsClose() {
        DaemonStop<String> s = stop();
        s.mounting();
        s.serving("m1", null);
        assertTrue(s.close("unmount"));
        assertTrue(s.close("unmount"), "a second close gets the first one's result");
        assertNull(unregistered.get());
        s.release();
        assertEquals(registered.get(), unregistered.get());
        assertEquals(List.of("close m1 unmount"), events);
    }
}
