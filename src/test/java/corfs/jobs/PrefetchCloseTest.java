package corfs.jobs;

import corfs.backing.FileBacking;
import corfs.engine.FaultFileOps;
import corfs.image.AccessProfile;
import corfs.image.LeafImage;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Unmount with two leaves prefetching over a hung backing: every leaf's prefetch is told to stop at once,
 * not after the previous leaf's hung fill was waited for (up to 30 s each; past the session's bound a
 * later leaf's prefetch was never stopped before its disk was closed).
 */
class PrefetchCloseTest {
    private static final int MIB = 1 << 20;
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    private Path leaf(String name, long seed) throws Exception {
        Path sub = Files.createDirectories(dir.resolve(name + ".d"));
        Path backing = sub.resolve("base.raw"); // the same name for both: one hang covers both backings
        JobTesting.denseBacking(backing, 16 * MIB, seed);
        Path leaf = dir.resolve(name);
        LeafImage.create(leaf, backing, CLUSTER, false);
        List<AccessProfile.Entry> entries = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            entries.add(new AccessProfile.Entry((long) (15 - i) * MIB, 512 * 1024, i * 10L));
        }
        new AccessProfile(FileBacking.identityOf(backing).token(), 16 * MIB, CLUSTER, entries)
                .write(dir.resolve(name + ".profile"));
        return leaf;
    }

    private static boolean blockedInBacking(String threadPrefix) {
        for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            if (!e.getKey().getName().startsWith(threadPrefix)) {
                continue;
            }
            for (StackTraceElement f : e.getValue()) {
                if (f.getClassName().equals(CountDownLatch.class.getName())) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void awaitTrue(BooleanSupplier condition, long seconds, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("not within " + seconds + " s: " + what);
            }
            Thread.sleep(20);
        }
    }

    @Test
    @DisplayName("unmount over a hung backing stops every leaf's prefetch at once, then closes when the fills end")
    void everyPrefetchStopsAtOnce() {
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            Path a = leaf("a.img", 1);
            Path b = leaf("b.img", 2);
            FaultFileOps ops = new FaultFileOps();
            CountDownLatch hang = null;
            Thread closer = null;
            MountSession s = MountSession.open(List.of(a, b), new MountSession.Options(false, false, 0), ops);
            try {
                hang = ops.hangReads("base.raw");
                s.prefetch("a.img", dir.resolve("a.img.profile"));
                s.prefetch("b.img", dir.resolve("b.img.profile"));
                awaitTrue(() -> blockedInBacking("corfs-prefetch-a.img-"), 30, "a.img's prefetch hangs in the backing");
                awaitTrue(() -> blockedInBacking("corfs-prefetch-b.img-"), 30, "b.img's prefetch hangs in the backing");
                closer = new Thread(() -> {
                    try {
                        s.close();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }, "test-unmount");
                closer.start();
                // Both runs are stopped (no longer the job's run) while their fills still hang: a's hung fill
                // (held up to 30 s by the latch) must not hold up the stop of b.
                awaitTrue(() -> s.prefetchJob("a.img").run() == null && s.prefetchJob("b.img").run() == null, 20,
                        "both prefetches stopped while a.img's fill still hangs");
            } finally {
                if (hang != null) {
                    hang.countDown();
                }
                if (closer != null) {
                    closer.join(60_000);
                } else {
                    s.close();
                }
            }
        });
    }
}
