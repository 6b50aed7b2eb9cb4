package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 10 through a real mount over real nbdkit servers (Unix sockets): {@code prioritize} on a slow
 * stream, and {@code speed=auto} against nbdkit's {@code rate} filter whose {@code rate-file} the test
 * lowers and raises mid-stream, and its {@code delay} filter. Verdicts compare states (which clusters are
 * local, the window before and after), never durations; the timeouts are hang guards.
 */
@DisplayName("prioritize and speed=auto through a mount over nbdkit")
class StreamPacingIT {
    private static final Duration GUARD = Duration.ofMinutes(5);
    private static final long MIB = 1 << 20;
    private static final Pattern EXTENT = Pattern.compile(
            "\"start\":\\s*(\\d+),\\s*\"length\":\\s*(\\d+),\\s*\"state\":\\s*\"[^\"]*\",\\s*\"local\":\\s*(true|false)");

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();
    @RegisterExtension
    final NbdServers servers = new NbdServers();

    /** The local extents of {@code corfs map --json LEAF} (it reads the flushed bitmaps; no lock). */
    private List<long[]> localExtents(Path leaf) {
        Result r = fx.corfs("map", "--json", leaf.toString()).assertOk();
        List<long[]> out = new ArrayList<>();
        Matcher m = EXTENT.matcher(r.stdout());
        while (m.find()) {
            if (m.group(3).equals("true")) {
                out.add(new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2))});
            }
        }
        return out;
    }

    private static boolean covered(List<long[]> local, long offset, long length) {
        long at = offset;
        for (long[] e : local) {
            if (e[0] <= at && at < e[0] + e[1]) {
                at = e[0] + e[1];
            }
            if (at >= offset + length) {
                return true;
            }
        }
        return at >= offset + length;
    }

    private static long total(List<long[]> local) {
        return local.stream().mapToLong(e -> e[1]).sum();
    }

    private static long num(Map<String, String> s, String key) {
        return Long.parseLong(s.get(key));
    }

    private static double window(Map<String, String> s) {
        return Double.parseDouble(s.get("auto_window"));
    }

    @Test
    @DisplayName("prioritize: ranges near the end of a slow stream become local before the rest; bad ranges EINVAL")
    void prioritizeNearTheEnd() {
        assertTimeoutPreemptively(GUARD, () -> {
            long size = 512 * MIB;
            NbdServers.Server server = servers.nbdkit(false, "random", "size=" + size, "seed=7");
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", server.uri(""), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            fx.control(mnt, "stream disk.raw speed=1M").assertOk(); // 512 s for the disk: it stays partial
            long cluster = num(fx.status(mnt, "disk.raw"), "cluster_size");

            for (String bad : List.of("prioritize disk.raw 400M 600M", "prioritize disk.raw 400M 512M",
                    "prioritize disk.raw 400M 511M+2M", "prioritize disk.raw 0+0", "prioritize disk.raw 1.5M",
                    "prioritize disk.raw 400M 1+9223372036854775807", "prioritize nope.raw 400M",
                    "prioritize disk.raw " + "400M ".repeat(65).strip())) {
                Result r = fx.control(mnt, bad);
                assertFalse(r.exit() == 0, bad + ": " + r);
                assertTrue(r.stderr().contains("Invalid argument") || r.stderr().contains("No such file"),
                        bad + ": " + r);
            }
            Result cli = fx.corfs("prioritize", mnt.toString(), "disk.raw", "0+0");
            assertEquals(64, cli.exit(), "a bad RANGE is a usage error: " + cli);
            Map<String, String> st = fx.status(mnt, "disk.raw");
            assertEquals("running", st.get("state"), st.toString());
            assertEquals("1048576", st.get("speed"), "the stream is unchanged: " + st);

            fx.corfs("prioritize", mnt.toString(), "disk.raw", "500M+4M", "450M").assertOk();
            long[] after = new long[1];
            fx.awaitStatus(mnt, "disk.raw", Duration.ofMinutes(3), "the prioritized ranges local", s -> {
                List<long[]> local = localExtents(leaf);
                after[0] = total(local);
                return covered(local, 500 * MIB, 4 * MIB) && covered(local, 450 * MIB, cluster);
            });
            // The queue is drained before the cursor: once the stream has gone on by another MiB, a range the
            // refused commands had queued (400M) would have been fetched already.
            long base = num(fx.status(mnt, "disk.raw"), "local_bytes");
            fx.awaitStatus(mnt, "disk.raw", Duration.ofMinutes(3), "the stream going on",
                    s -> num(s, "local_bytes") >= base + 2 * MIB);
            fx.control(mnt, "pause disk.raw").assertOk();
            List<long[]> local = localExtents(leaf);
            assertTrue(covered(local, 500 * MIB, 4 * MIB) && covered(local, 450 * MIB, cluster), local.toString());
            assertFalse(covered(local, 450 * MIB + cluster, cluster), "LENGTH defaults to one cluster");
            assertFalse(covered(local, 400 * MIB, cluster), "nothing of a refused command was queued");
            assertTrue(total(local) < size / 4, "most of the disk is not local: " + total(local) + " bytes");
            assertTrue(after[0] < size / 4);

            fx.control(mnt, "cancel disk.raw").assertOk();
            fx.control(mnt, "prioritize disk.raw 0").assertFails(); // NO_JOB
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("speed=auto: the window drops when the server slows mid-stream and opens again when it recovers")
    void autoBacksOffAndRecovers() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path rateFile = fx.dir().resolve("rate");
            Files.writeString(rateFile, "400M\n"); // bits/s: 50 MB/s
            NbdServers.Server server = servers.nbdkit(false, "--filter=rate", "random", "size=8G", "seed=3",
                    "rate=400M", "rate-file=" + rateFile);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", server.uri(""), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            fx.corfs("stream", mnt.toString(), "--speed", "auto").assertOk();
            Map<String, String> s0 = fx.status(mnt, "disk.raw");
            assertEquals("auto", s0.get("speed"), s0.toString());

            // Fast: wait for some samples and note the highest window seen over a few polls.
            fx.awaitStatus(mnt, "disk.raw", Duration.ofMinutes(2), "streaming", s -> num(s, "local_bytes") >= 64 * MIB);
            double fast = 0;
            for (int i = 0; i < 10; i++) {
                fast = Math.max(fast, window(fx.status(mnt, "disk.raw")));
                CorfsFixture.sleep(200);
            }
            Files.writeString(rateFile, "8M\n"); // 1 MB/s: a 1 MiB fill takes a second, the queue grows
            double high = fast;
            Map<String, String> slow = fx.awaitStatus(mnt, "disk.raw", Duration.ofMinutes(3), "backed off",
                    s -> window(s) < Math.min(0.5, high / 4));
            double low = window(slow);
            assertEquals("running", slow.get("state"), "it never stops: " + slow);

            Files.writeString(rateFile, "400M\n");
            Map<String, String> again = fx.awaitStatus(mnt, "disk.raw", Duration.ofMinutes(3), "recovered",
                    s -> window(s) >= Math.max(1, 4 * low));
            System.out.printf("speed=auto windows: fast %.2f, after the server slowed %.2f, recovered %.2f (rate %s B/s)%n",
                    fast, low, window(again), again.get("rate"));
            fx.control(mnt, "speed disk.raw auto:5ms").assertOk();
            assertEquals("auto:5ms", fx.status(mnt, "disk.raw").get("speed"));
            fx.control(mnt, "speed disk.raw 0").assertOk();
            Map<String, String> fixed = fx.status(mnt, "disk.raw");
            assertEquals("0", fixed.get("speed"));
            assertEquals("-", fixed.get("auto_window"));
            fx.control(mnt, "cancel disk.raw").assertOk();
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("speed=auto over nbdkit's delay filter: completes, cmp matches, and a remount keeps auto")
    void autoCompletes() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = fx.makeBacking("source.raw", 48 * MIB, 10);
            NbdServers.Server server = servers.nbdkit(false, "--filter=delay", "file", img.toString(),
                    "delay-read=5ms");
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", server.uri(""), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            fx.control(mnt, "stream disk.raw speed=auto:10ms").assertOk();
            fx.control(mnt, "pause disk.raw").assertOk();
            fx.umount(mnt);
            fx.mount(mnt, leaf);
            Map<String, String> st = fx.status(mnt, "disk.raw");
            assertEquals("paused", st.get("state"), st.toString());
            assertEquals("auto:10ms", st.get("speed"), "the job record keeps auto: " + st);
            fx.corfs("resume", mnt.toString()).assertOk();
            fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofMinutes(4));
            assertEquals("yes", fx.status(mnt, "disk.raw").get("standalone"));
            fx.assertSameContent(mnt.resolve("disk.raw"), img);
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }
}
