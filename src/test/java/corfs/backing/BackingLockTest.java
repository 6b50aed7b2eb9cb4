package corfs.backing;

import corfs.CorfsException;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Issue 7, defect 7: a commit must not change data under other leaves over the same backing. Backings
 * take QEMU-compatible OFD locks: every open backing shares a read lock; a writer (commit) needs it
 * exclusively and is refused, naming the holder, while anyone else has it open.
 */
@DisplayName("OFD locks on the backing")
class BackingLockTest {
    private static final Duration GUARD = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private Path base() throws IOException {
        Path base = dir.resolve("base.raw");
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        return base;
    }

    private static String pidText() {
        return "pid " + ProcessHandle.current().pid();
    }

    @Test
    @DisplayName("a writer is refused with BUSY naming the holder while another backing is open; allowed after it closes")
    void writerRefusedWhileOthersRead() throws Exception {
        Path base = base();
        try (FileBacking a = FileBacking.open(base, FileOps.system())) {
            FileBacking b = FileBacking.open(base, FileOps.system());
            try {
                CorfsException e = assertThrows(CorfsException.class, a::openWriter);
                assertEquals(CorfsException.Reason.BUSY, e.reason(), e.toString());
                assertTrue(e.getMessage().contains(pidText()), "the holder is named: " + e.getMessage());
            } finally {
                b.close();
            }
            try (Backing.Writer w = a.openWriter()) {
                w.writeFully(ByteBuffer.wrap("new".getBytes(StandardCharsets.US_ASCII)), 0);
                w.flush();
                CorfsException e = assertThrows(CorfsException.class, () -> FileBacking.open(base, FileOps.system()),
                        "a backing being committed cannot be opened");
                assertEquals(CorfsException.Reason.BUSY, e.reason(), e.toString());
            }
            // the writer gave its exclusive lock back: others may open it again, and a refuses writers again
            try (FileBacking c = FileBacking.open(base, FileOps.system())) {
                assertEquals(CorfsException.Reason.BUSY,
                        assertThrows(CorfsException.class, a::openWriter).reason());
            }
        }
    }

    @Test
    @DisplayName("qemu-io cannot take its write lock on an open backing; opening fails while qemu-io writes it")
    void qemuInterlock() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/qemu-io")), "qemu-io not installed");
        Path base = base();
        assertTimeoutPreemptively(GUARD, () -> {
            try (FileBacking a = FileBacking.open(base, FileOps.system())) {
                Process p = new ProcessBuilder("qemu-io", "-f", "raw", "-c", "write -P 0x55 0 4k", base.toString())
                        .redirectErrorStream(true).start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                assertTrue(out.contains("lock"), "qemu-io should fail to get its write lock: " + out);
                assertEquals(0, Files.readAllBytes(base)[0], "qemu-io wrote the backing: " + out);
            }
            // qemu-io holding the image for writing (waiting on stdin): opening the backing is refused
            Path qemuOut = dir.resolve("qemu-io.out");
            Process q = new ProcessBuilder("qemu-io", "-f", "raw", base.toString())
                    .redirectErrorStream(true).redirectOutput(qemuOut.toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (!Files.readString(qemuOut).contains("qemu-io>") && q.isAlive()
                        && System.nanoTime() < deadline) {
                    Thread.sleep(50); // its prompt: the image is open and locked
                }
                CorfsException e = null;
                try (FileBacking ignored = FileBacking.open(base, FileOps.system())) {
                    // opened: the assertion below says so
                } catch (CorfsException busy) {
                    e = busy;
                }
                assertNotEquals(null, e, "opened while qemu-io holds it for writing; qemu-io alive: " + q.isAlive()
                        + ", said: " + Files.readString(qemuOut));
                assertEquals(CorfsException.Reason.BUSY, e.reason(), e.toString());
                assertTrue(e.getMessage().contains("pid " + q.pid()), e.getMessage());
            } finally {
                if (q.isAlive()) {
                    q.getOutputStream().write("quit\n".getBytes(StandardCharsets.US_ASCII));
                    q.getOutputStream().close();
                }
                if (!q.waitFor(10, TimeUnit.SECONDS)) {
                    q.destroyForcibly();
                }
            }
        });
    }
}
