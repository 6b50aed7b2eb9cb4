package corfs.jobs;

import corfs.CorfsException;
import corfs.image.LeafImage;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import org.junit.jupiter.api.function.Executable;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

/** Helpers shared by the job and fault tests: leaves, dense backings, refusals and status polling with a deadline. */
final class JobTesting {
    private JobTesting() {
    }

    /** A backing of {@code size} random bytes, no holes and no zero clusters. */
    /** A new leaf {@code dir/name} over {@code backing} (a file), clusters of {@code clusterSize}. */
    static Path leafOver(Path dir, String name, Path backing, int clusterSize) throws IOException {
        Path leaf = dir.resolve(name);
        LeafImage.create(leaf, backing, clusterSize, false);
        return leaf;
    }

    /** {@code command} fails with a {@link CorfsException} of {@code reason}. */
    static void assertReason(CorfsException.Reason reason, Executable command) {
        CorfsException e = assertThrows(CorfsException.class, command);
        assertEquals(reason, e.reason(), e.getMessage());
    }

    static byte[] denseBacking(Path path, int size, long seed) throws IOException {
        byte[] content = new byte[size];
        new Random(seed).nextBytes(content);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.wrap(content);
            while (b.hasRemaining()) {
                ch.write(b, b.position());
            }
        }
        return content;
    }

    /** The status of the only (or first) leaf. */
    static LeafStatus status(MountSession session) {
        return session.status().get(0);
    }

    /** Polls until {@code done} holds for the first leaf's status, or fails after {@code timeoutMs}. */
    static LeafStatus await(MountSession session, Predicate<LeafStatus> done, long timeoutMs, String what) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        LeafStatus st = status(session);
        while (!done.test(st)) {
            if (System.nanoTime() > deadline) {
                fail(what + ": not reached within " + timeoutMs + " ms; last status " + describe(st));
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                fail("interrupted");
            }
            st = status(session);
        }
        return st;
    }

    static LeafStatus awaitState(MountSession session, JobState state, long timeoutMs) {
        return await(session, s -> s.state() == state, timeoutMs, "state " + state.word());
    }

    static String describe(LeafStatus s) {
        StringBuilder u = new StringBuilder();
        for (long[] e : s.unreadable()) {
            u.append('[').append(e[0]).append('+').append(e[1]).append(']');
        }
        return s.image() + " job=" + s.job().word() + " state=" + s.state().word() + " done=" + s.doneBytes() + "/"
                + s.totalBytes() + " local=" + s.localBytes() + " dirty=" + s.dirtyBytes() + " standalone="
                + s.standalone() + " error=" + s.error() + " unreadable=" + u;
    }
}
