package corfs.jobs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.backing.FileBacking;
import corfs.engine.LeafDisk;
import corfs.image.LeafImage;
import corfs.io.FileOps;
import corfs.vocabulary.OnError;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A speed=auto stream in a quiet window of its {@link LatencyController}: it issues nothing, and a step that issued
 * nothing because of the window is never read as "nothing left" (the stream would end with clusters missing). The
 * wall clock is the test's, so the window is where the test puts it.
 */
@Timeout(60)
@DisplayName("StreamStep: speed=auto's quiet windows")
class StreamQuietWindowTest {
    private static final int CLUSTER = 65536;
    private static final int SIZE = 32 * CLUSTER;

    @TempDir
    Path dir;

    @Test
    @DisplayName("in a quiet window's first half nothing is issued and the step is not finished; after it, the stream"
            + " completes with the backing's content")
    void pausesWithoutFinishing() throws Exception {
        Path base = dir.resolve("base.raw");
        byte[] content = JobTesting.denseBacking(base, SIZE, 7);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, base, CLUSTER, false);
        try (LeafDisk disk = new LeafDisk("leaf.img", LeafImage.open(leaf, FileOps.system(), false, false),
                FileBacking.open(base, FileOps.system()), false)) {
            StreamStep step = new StreamStep(disk, OnError.STOP, (o, l, m) -> { }, FileOps.system());
            try {
                LatencyController controller = new LatencyController(20_000_000L, CLUSTER, 4L * CLUSTER);
                step.pace(controller);
                long quietStart = 1000 * LatencyController.QUIET_PERIOD_MS; // a quiet window begins here
                AtomicLong wall = new AtomicLong(quietStart + 10);
                step.wallClock(wall::get);
                assertEquals(0, controller.inFlightAt(wall.get()), "the test's clock is in the pause");
                for (int i = 0; i < 5; i++) {
                    long r = step.step(4);
                    assertNotEquals(JobStep.FINISHED, r, "a paused step read as a finished stream");
                    assertEquals(0, r);
                }
                assertEquals(0, disk.localBytes(), "nothing may be fetched in the pause");
                wall.set(quietStart + LatencyController.QUIET_PERIOD_MS / 2); // well past any quiet window
                long r;
                int steps = 0;
                while ((r = step.step(4)) != JobStep.FINISHED) {
                    assertTrue(r >= 0);
                    assertTrue(++steps < 10_000, "the stream does not finish");
                }
                step.complete();
                assertEquals(SIZE, disk.localBytes());
            } finally {
                step.close();
            }
        }
        byte[] local = Files.readAllBytes(leaf);
        assertArrayEquals(content, local, "the leaf's data after the stream");
    }
}
