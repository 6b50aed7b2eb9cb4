package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 3's control-file fuzz through the real mount: thousands of random and malformed writes (random
 * bytes, NUL, unknown verbs, bad values, unknown images, no newline, 1 MiB lines, commands split over
 * writes) from several threads at once. Every write that is a complete bad command must fail with an
 * errno; the daemon must stay alive; no job may start and nothing in the status may change but
 * {@code error}; afterwards a well-formed command still works.
 */
@DisplayName("hostile writes to the control file")
class HostileInputIT {

    private static final long SIZE = 8 << 20;
    private static final int THREADS = 6;
    private static final int WRITES_PER_THREAD = Integer.parseInt(
            System.getenv().getOrDefault("CORFS_FUZZ_WRITES", "800"));

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    /** Complete lines that no correct parser accepts, each with the errno message write() must give. */
    private static final Map<String, String> MUST_FAIL = new LinkedHashMap<>();

    static {
        MUST_FAIL.put("frobnicate\n", "Invalid argument");
        MUST_FAIL.put("stream disk.raw speed=\n", "Invalid argument");
        MUST_FAIL.put("stream disk.raw speed=12Q\n", "Invalid argument");
        MUST_FAIL.put("stream disk.raw speed=-1\n", "Invalid argument");
        MUST_FAIL.put("stream disk.raw on_error=never\n", "Invalid argument");
        MUST_FAIL.put("speed disk.raw lots\n", "Invalid argument");
        MUST_FAIL.put("speed\n", "Invalid argument");
        MUST_FAIL.put("stream\0\n", "Invalid argument");
        MUST_FAIL.put("\0\0\0\0\n", "Invalid argument");
        MUST_FAIL.put("STREAM\n", "Invalid argument");
        MUST_FAIL.put("stream disk.raw speed=1M speed=2M extra words\n", "Invalid argument");
        MUST_FAIL.put("stream nosuch.raw\n", "No such file or directory");
        MUST_FAIL.put("commit ../disk.raw\n", "Invalid argument"); // a name never holds a slash
        MUST_FAIL.put("cancel control\n", "No such file or directory");
    }

    @Test
    @DisplayName("never kills the daemon, never changes job state, always answers bad commands with an errno")
    void fuzzTheControlFile() {
        assertTimeoutPreemptively(Duration.ofMinutes(5), () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 77);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
            Path control = mnt.resolve("control");
            Map<String, String> before = stable(fx.status(mnt, "disk.raw"));

            AtomicInteger failedAsRequired = new AtomicInteger();
            AtomicInteger otherWrites = new AtomicInteger();
            List<String> violations = java.util.Collections.synchronizedList(new ArrayList<>());
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            List<Future<?>> futures = new ArrayList<>();
            long seed = System.nanoTime();
            System.out.println("[HostileInputIT] seed " + seed);
            for (int t = 0; t < THREADS; t++) {
                Random r = new Random(seed + t);
                futures.add(pool.submit(() -> {
                    for (int i = 0; i < WRITES_PER_THREAD; i++) {
                        int kind = r.nextInt(10);
                        {
                            if (kind < 4) {
                                List<String> keys = new ArrayList<>(MUST_FAIL.keySet());
                                String line = keys.get(r.nextInt(keys.size()));
                                String err = writeExpectingError(control, line.getBytes(StandardCharsets.UTF_8));
                                check(violations, line, MUST_FAIL.get(line), err);
                                failedAsRequired.incrementAndGet();
                            } else if (kind < 7) {
                                byte[] junk = new byte[1 + r.nextInt(300)];
                                r.nextBytes(junk);
                                junk[junk.length - 1] = '\n';
                                junk[0] = (byte) ('A' + r.nextInt(26)); // not a comment or blank line
                                tolerantWrite(control, List.of(junk));
                                otherWrites.incrementAndGet();
                            } else if (kind < 8) {
                                byte[] huge = new byte[1 << 20];
                                Arrays.fill(huge, (byte) 'x');
                                System.arraycopy("stream ".getBytes(StandardCharsets.US_ASCII), 0, huge, 0, 7);
                                huge[huge.length - 1] = '\n';
                                String err = writeExpectingError(control, huge);
                                check(violations, "1 MiB line", "Invalid argument", err);
                                failedAsRequired.incrementAndGet();
                            } else if (kind < 9) {
                                // one bad command split over three writes of one open file
                                String err = writeExpectingError(control, "str".getBytes(StandardCharsets.US_ASCII),
                                        "eam nosu".getBytes(StandardCharsets.US_ASCII),
                                        "ch.raw\n".getBytes(StandardCharsets.US_ASCII));
                                check(violations, "split 'stream nosuch.raw'", "No such file or directory", err);
                                failedAsRequired.incrementAndGet();
                            } else {
                                // no newline at all: executed (and refused) at close, or dropped; never accepted
                                byte[] partial = ("resum" + r.nextInt(1000)).getBytes(StandardCharsets.US_ASCII);
                                tolerantWrite(control, List.of(partial));
                                otherWrites.incrementAndGet();
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                f.get(4, TimeUnit.MINUTES);
            }
            pool.shutdown();
            assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));

            assertTrue(violations.isEmpty(), violations.size() + " violations, first ones: "
                    + violations.subList(0, Math.min(10, violations.size())));
            for (long pid : pids) {
                assertTrue(CorfsFixture.isLiveProcess(pid), "the daemon " + pid + " died under the fuzz");
            }
            assertEquals("fuse.corfs", CorfsFixture.mountType(mnt), "the mount is gone");
            Map<String, String> after = fx.status(mnt, "disk.raw");
            assertEquals(before, stable(after), "the fuzz changed the status");
            assertFalse("-".equals(after.get("command_error")), "rejections left no reason in the status: " + after);

            // still obeys a good command
            fx.control(mnt, "stream").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(60));
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            System.out.printf("[HostileInputIT] %d bad commands refused with the right errno, %d other hostile"
                    + " writes, daemon alive, status unchanged%n", failedAsRequired.get(), otherWrites.get());
        });
    }

    private static void check(List<String> violations, String what, String wanted, String got) {
        if (got == null) {
            violations.add("'" + printable(what) + "' was accepted");
        } else if (!got.contains(wanted)) {
            violations.add("'" + printable(what) + "' failed with '" + got + "', want " + wanted);
        }
    }

    /** Opens control, writes each piece with one write(), closes; the errno message of the first failure or null. */
    private static String writeExpectingError(Path control, byte[]... pieces) {
        try (OutputStream out = new FileOutputStream(control.toFile(), true)) {
            for (byte[] p : pieces) {
                out.write(p);
            }
        } catch (IOException e) {
            return String.valueOf(e.getMessage());
        }
        return null;
    }

    private static void tolerantWrite(Path control, List<byte[]> pieces) {
        writeExpectingError(control, pieces.toArray(byte[][]::new));
    }

    private static String printable(String s) {
        return s.replace("\n", "\\n").replace("\0", "\\0");
    }

    /** The status fields a rejected command must not change (command_error holds the last rejection, by design). */
    private static Map<String, String> stable(Map<String, String> s) {
        Map<String, String> copy = new LinkedHashMap<>(s);
        copy.remove("command_error");
        copy.remove("rate");
        copy.remove("eta");
        return copy;
    }
}
