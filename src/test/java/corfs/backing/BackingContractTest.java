package corfs.backing;

import corfs.io.FileOps;
import corfs.io.PortableFileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The contract every {@link Backing} keeps (see its javadoc), run against every implementation. A new
 * transport or format (NBD, HTTP, qcow2) joins by adding a {@link Kind} that serves the same raw file
 * through it; the tests change that file's bytes underneath (truncate it, read it back) as a server's
 * export would. Deadlines: every kind also runs wrapped in {@link TimeoutBacking}, which must be
 * transparent; {@code TimeoutBackingTest} shows each call of a hanging backing returning.
 */
@DisplayName("the Backing contract")
class BackingContractTest {
    private static final int MIB = 1 << 20;
    private static final int SIZE = 4 * MIB;
    private static final Duration GUARD = Duration.ofSeconds(60);

    /** An implementation under test: opens a backing over the raw file {@code medium}. */
    record Kind(String name, boolean reportsHoles, Opener opener) {
        @Override
        public String toString() {
            return name;
        }
    }

    interface Opener {
        Backing open(Path medium) throws IOException;
    }

    static Stream<Kind> kinds() {
        return Stream.of(
                new Kind("file (native)", true, p -> FileBacking.open(p, FileOps.system())),
                new Kind("file (portable)", false, p -> FileBacking.open(p, new PortableFileOps())),
                new Kind("file with deadlines", true,
                        p -> new TimeoutBacking(FileBacking.open(p, FileOps.system()), 30_000)));
    }

    @TempDir
    Path dir;

    /** [0,1M) random, [1M,2M) hole, [2M,3M) random, [3M,4M) written zeros. */
    private byte[] medium(Path p) throws IOException {
        byte[] content = new byte[SIZE];
        Random r = new Random(42);
        byte[] part = new byte[MIB];
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int at : new int[] {0, 2 * MIB}) {
                r.nextBytes(part);
                System.arraycopy(part, 0, content, at, MIB);
                ch.write(ByteBuffer.wrap(part), at);
            }
            ch.write(ByteBuffer.allocate(MIB), 3L * MIB);
        }
        return content;
    }

    private static byte[] read(Backing b, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length);
        b.readFully(dst, offset);
        assertEquals(length, dst.position(), "readFully advanced the position by the length");
        return dst.array();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kinds")
    @DisplayName("reads are exact, also many at once; reads outside the backing are refused")
    void exactReads(Kind kind) throws Exception {
        Path p = dir.resolve("base.raw");
        byte[] content = medium(p);
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = kind.opener().open(p)) {
                assertEquals(SIZE, b.size());
                assertTrue(b.maxInFlight() >= 1);
                Random r = new Random(7);
                for (int i = 0; i < 200; i++) {
                    long off = r.nextInt(SIZE);
                    int len = 1 + r.nextInt((int) Math.min(256 * 1024, SIZE - off));
                    assertArrayEquals(Arrays.copyOfRange(content, (int) off, (int) off + len), read(b, off, len),
                            "read " + off + "+" + len);
                }
                ExecutorService pool = Executors.newFixedThreadPool(Math.min(8, b.maxInFlight()),
                        t -> new Thread(t, "contract-reader"));
                try {
                    List<Future<?>> all = new ArrayList<>();
                    for (int t = 0; t < 64; t++) {
                        long off = (long) t * (SIZE / 64);
                        all.add(pool.submit(() -> {
                            assertArrayEquals(Arrays.copyOfRange(content, (int) off, (int) off + SIZE / 64),
                                    read(b, off, SIZE / 64));
                            return null;
                        }));
                    }
                    for (Future<?> f : all) {
                        f.get();
                    }
                } finally {
                    pool.shutdown();
                }
                assertThrows(IOException.class, () -> read(b, SIZE - 10, 20), "a read crossing the end");
                assertThrows(IOException.class, () -> read(b, SIZE, 1), "a read at the end");
                assertThrows(IOException.class, () -> read(b, -1, 1), "a negative offset");
            }
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kinds")
    @DisplayName("allocation walks data, holes and zeros: extents tile the disk, zero kinds read as zeros")
    void allocation(Kind kind) throws Exception {
        Path p = dir.resolve("base.raw");
        byte[] content = medium(p);
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = kind.opener().open(p)) {
                for (long max : new long[] {Long.MAX_VALUE, 300_000}) {
                    long pos = 0;
                    boolean sawHole = false;
                    while (pos < SIZE) {
                        Allocation a = b.allocation(pos, max);
                        assertTrue(a.length() >= 1 && a.length() <= max && pos + a.length() <= SIZE, a + " at " + pos);
                        if (a.readsAsZeros()) {
                            byte[] zeros = new byte[(int) a.length()];
                            assertArrayEquals(zeros, Arrays.copyOfRange(content, (int) pos, (int) (pos + a.length())),
                                    a + " at " + pos + " claims zeros over data");
                            sawHole |= a.kind() == Allocation.Kind.HOLE;
                        }
                        pos += a.length();
                    }
                    assertEquals(SIZE, pos, "the extents tile the disk exactly");
                    if (kind.reportsHoles()) {
                        assertTrue(sawHole, "the hole at [1M, 2M) was not reported");
                    }
                }
                assertThrows(IOException.class, () -> b.allocation(SIZE, 1), "allocation at the end");
                assertThrows(IOException.class, () -> b.allocation(-1, 1), "a negative offset");
            }
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kinds")
    @DisplayName("a backing that shrank fails reads and allocation past its new end, never answers zeros or a hole")
    void shrunk(Kind kind) throws Exception {
        Path p = dir.resolve("base.raw");
        byte[] content = medium(p);
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = kind.opener().open(p)) {
                try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                    f.setLength(MIB + MIB / 2); // inside the hole
                }
                assertThrows(IOException.class, () -> read(b, 3L * MIB, 10));
                long pos = 0;
                IOException failed = null;
                while (pos < SIZE && failed == null) {
                    try {
                        pos += b.allocation(pos, Long.MAX_VALUE).length();
                    } catch (IOException e) {
                        failed = e;
                    }
                }
                assertNotEquals(null, failed, "allocation walked past the shrunk end without failing");
                assertTrue(pos <= MIB + MIB / 2, "allocation answered up to " + pos + " of a 1.5 MiB file");
                assertArrayEquals(Arrays.copyOf(content, 1000), read(b, 0, 1000), "before the end it still reads");
            }
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kinds")
    @DisplayName("a writer's flushed writes are durable in the medium; identity is stable and changes with them")
    void writerDurability(Kind kind) throws Exception {
        Path p = dir.resolve("base.raw");
        medium(p);
        byte[] patch = new byte[100_000];
        new Random(3).nextBytes(patch);
        assertTimeoutPreemptively(GUARD, () -> {
            try (Backing b = kind.opener().open(p)) {
                BackingIdentity before = b.identity();
                assertEquals(before, b.identity(), "identity is stable");
                Thread.sleep(50); // past the filesystem's timestamp granularity
                try (Backing.Writer w = b.openWriter()) {
                    ByteBuffer src = ByteBuffer.wrap(patch);
                    w.writeFully(src, 1_500_000);
                    assertEquals(patch.length, src.position(), "writeFully advanced the position");
                    w.flush();
                }
                assertArrayEquals(patch, read(b, 1_500_000, patch.length), "read back through the backing");
                assertNotEquals(before, b.identity(), "a write changes the identity");
            }
            try (Backing again = kind.opener().open(p)) {
                assertArrayEquals(patch, read(again, 1_500_000, patch.length), "read back after reopening");
            }
            byte[] raw = Files.readAllBytes(p);
            assertArrayEquals(patch, Arrays.copyOfRange(raw, 1_500_000, 1_500_000 + patch.length), "in the medium");
        });
    }
}
