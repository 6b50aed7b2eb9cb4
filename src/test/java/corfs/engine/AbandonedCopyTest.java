package corfs.engine;

import corfs.backing.Backing;
import corfs.backing.BackingTimeoutException;
import corfs.backing.FileBacking;
import corfs.backing.ForwardingBacking;
import corfs.backing.TimeoutBacking;
import corfs.image.LeafImage;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

/**
 * A stream's in-kernel copy that outlives its deadline ({@link TimeoutBacking}) still writes into the leaf
 * when the backing finally answers: a guest write to those clusters must not land before it, or the late
 * copy would overwrite the guest's data with the backing's.
 */
@DisplayName("An abandoned in-kernel stream copy keeps its clusters until it returns")
class AbandonedCopyTest {
    private static final int CLUSTER = 64 * 1024;

    @TempDir
    Path dir;

    /** Copies wait at a gate, then do what copy_file_range does: the backing's bytes into the leaf's file. */
    static final class GatedCopyBacking extends ForwardingBacking {
        final CountDownLatch gate = new CountDownLatch(1);
        private final Path backingPath;
        private final Path leafData;

        GatedCopyBacking(Backing inner, Path backingPath, Path leafData) {
            super(inner);
            this.backingPath = backingPath;
            this.leafData = leafData;
        }

        @Override
        public boolean canCopyTo(FileOps.SparseFile target) {
            return true;
        }

        @Override
        public boolean copyTo(long offset, int length, FileOps.SparseFile target, long targetOffset) throws IOException {
            try {
                if (!gate.await(60, TimeUnit.SECONDS)) {
                    throw new IOException("the test never opened the gate");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
            try (FileChannel in = FileChannel.open(backingPath);
                 FileChannel out = FileChannel.open(leafData, StandardOpenOption.WRITE)) {
                ByteBuffer b = ByteBuffer.allocate(length);
                while (b.hasRemaining()) {
                    in.read(b, offset + b.position());
                }
                b.flip();
                while (b.hasRemaining()) {
                    out.write(b, targetOffset + b.position());
                }
            }
            return true;
        }
    }

    @Test
    @DisplayName("a guest write to the clusters of a timed-out copy waits for it, and its data wins")
    void guestWriteWaitsForTheLateCopy() {
        assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
            Path backing = dir.resolve("base.raw");
            byte[] content = TestLeaves.writeBacking(backing, 1 << 20, 11);
            Path leaf = dir.resolve("leaf.img");
            LeafImage.create(leaf, backing, CLUSTER, false);
            LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
            GatedCopyBacking gated = new GatedCopyBacking(FileBacking.open(backing, FileOps.system()), backing, leaf);
            try (LeafDisk disk = new LeafDisk("leaf.img", image, new TimeoutBacking(gated, 200), false)) {
                BackingReadException e = assertThrows(BackingReadException.class,
                        () -> disk.fill(0, 0, FetchPurpose.STREAM));
                assertInstanceOf(BackingTimeoutException.class, e.getCause());
                assertFalse(disk.image().local().get(0), "a failed fill marks nothing local");

                byte[] mine = new byte[CLUSTER];
                Arrays.fill(mine, (byte) 0x77);
                Thread writer = new Thread(() -> {
                    try {
                        assertEquals(CLUSTER, disk.write(ByteBuffer.wrap(mine), 0));
                    } catch (IOException x) {
                        throw new UncheckedIOException(x);
                    }
                }, "test-guest-writer");
                writer.start();
                // Either the write went through (the clusters were free: the late copy will overwrite it) or
                // it waits for their range lock; only then may the late copy land.
                while (writer.getState() != Thread.State.TERMINATED && !waitsForClusterLock(writer)) {
                    Thread.sleep(5);
                }
                gated.gate.countDown();
                writer.join();

                ByteBuffer b = ByteBuffer.allocate(CLUSTER);
                disk.read(b, 0);
                assertArrayEquals(mine, b.array(), "the guest's write, not the late copy of the backing");
                ByteBuffer rest = ByteBuffer.allocate(CLUSTER);
                disk.read(rest, CLUSTER);
                assertArrayEquals(Arrays.copyOfRange(content, CLUSTER, 2 * CLUSTER), rest.array());
            }
        });
    }

    private static boolean waitsForClusterLock(Thread t) {
        if (t.getState() != Thread.State.TIMED_WAITING && t.getState() != Thread.State.WAITING) {
            return false;
        }
        for (StackTraceElement f : t.getStackTrace()) {
            if (f.getClassName().equals(ClusterRangeLock.class.getName()) && f.getMethodName().equals("lock")) {
                return true;
            }
        }
        return false;
    }
}
