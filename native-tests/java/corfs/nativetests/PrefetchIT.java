package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.image.AccessProfile;
import corfs.image.LeafImage;
import corfs.io.FileOps;
import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The prefetch job through the CLI and a real mount, over a real NBD server: nbdkit's file plugin under its
 * {@code log} filter (which reads the server was asked for), {@code delay} filter (a round trip) and, to keep
 * a prefetch unfinished at unmount, {@code rate} filter (a bandwidth cap read from a file, lifted later).
 * Nothing here depends on speed: the rate cap only makes a prefetch slower, never faster.
 */
@DisplayName("prefetch through a mount: -o prefetch, control, corfs prefetch, create --prefetch, resume")
class PrefetchIT {
    private static final int MIB = 1 << 20;
    private static final long SIZE = 48L * MIB;
    private static final int CLUSTER = 65536;
    private static final Duration GUARD = Duration.ofMinutes(4);
    private static final Duration WAIT = Duration.ofMinutes(2);
    private static final Pattern READ = Pattern.compile(" Read id=\\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)");

    // Servers registered first: their teardown runs after the fixture's, so a mount is gone before its server.
    @RegisterExtension
    final NbdServers servers = new NbdServers();
    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path log;
    private Path rateFile;

    private NbdServers.Server server(Path backing, String rate) throws Exception {
        log = fx.dir().resolve("nbdkit-reads.log");
        rateFile = fx.dir().resolve("rate");
        Files.writeString(rateFile, rate + "\n");
        return servers.nbdkit(false, "--filter=log", "--filter=delay", "--filter=rate", "file", backing.toString(),
                "delay-read=5ms", "logfile=" + log, "rate-file=" + rateFile, "rate=" + rate);
    }

    /** The identity token the leaf recorded (read from its metadata while it is not mounted). */
    private static String token(Path leaf) throws Exception {
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, false)) {
            return image.header().backingIdentity().token();
        }
    }

    /** {@code count} extents of {@code length} bytes at shuffled whole-MiB slots, in profile order. */
    private static AccessProfile profile(String token, int count, int length, long seed) {
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < SIZE / MIB; i++) {
            slots.add(i);
        }
        Collections.shuffle(slots, new Random(seed));
        List<AccessProfile.Entry> entries = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            entries.add(new AccessProfile.Entry((long) slots.get(i) * MIB, length, 10L * i));
        }
        return new AccessProfile(token, SIZE, CLUSTER, entries);
    }

    private Map<String, String> awaitPrefetch(Path mnt, String image, String state) {
        return fx.awaitStatus(mnt, image, WAIT, "prefetch=" + state, s -> {
            if (!state.equals(s.get("prefetch")) && "failed".equals(s.get("prefetch"))) {
                throw new AssertionError("prefetch failed: " + s);
            }
            return state.equals(s.get("prefetch"));
        });
    }

    private static long num(Map<String, String> s, String key) {
        return Long.parseLong(s.get(key));
    }

    /** The reads nbdkit logged from byte {@code from} of its log on, as [offset, end). */
    private List<long[]> readsSince(long from) throws Exception {
        String text = Files.readString(log);
        List<long[]> out = new ArrayList<>();
        Matcher m = READ.matcher(text.substring((int) Math.min(from, text.length())));
        while (m.find()) {
            long off = Long.parseLong(m.group(1), 16);
            out.add(new long[] {off, off + Long.parseLong(m.group(2), 16)});
        }
        return out;
    }

    @Test
    @DisplayName("-o prefetch=FILE: completes before any guest read, only the profile is local, cmp equal;"
            + " status fields in text, JSON and corfs status")
    void mountOption() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 1);
            NbdServers.Server s = server(backing, "10G");
            Path leaf = fx.createLeaf(backing, "a.img");
            fx.corfs("create", "--force", "--backing", s.uri(""), leaf.toString()).assertOk();
            AccessProfile p = profile(token(leaf), 20, 256 * 1024, 2);
            Path file = fx.dir().resolve("boot.profile");
            p.write(file);
            Path mnt = fx.mount(fx.newMountPoint("mnt"), List.of("-o", "prefetch=" + file), leaf);
            Map<String, String> st = awaitPrefetch(mnt, "a.img", "completed");
            assertEquals(p.totalBytes(), num(st, "prefetch_total"), st.toString());
            assertEquals(p.totalBytes(), num(st, "prefetch_done"), st.toString());
            assertEquals(p.totalBytes(), num(st, "local_bytes"), "nothing but the profile fetched: " + st);
            assertEquals("none", st.get("job"), "the prefetch is not the stream job");
            assertFalse(Files.exists(fx.dir().resolve("a.img.corfs-prefetch")), "completed: no record left");
            String json = fx.corfs("status", "--json", mnt.toString()).assertOk().stdout();
            assertTrue(json.contains("\"prefetch\":\"completed\""), json);
            String text = fx.corfs("status", mnt.toString()).assertOk().stdout();
            assertTrue(text.contains("prefetch: completed, 100"), text);
            fx.assertSameContent(mnt.resolve("a.img"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("control file and corfs prefetch: only the profile's extents are read; a mismatched profile is"
            + " refused with the message; cancel; a relative FILE in a control line is EINVAL")
    void commands() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 3);
            Path other = fx.makeBacking("other.raw", SIZE, 4);
            NbdServers.Server s = server(backing, "10G");
            Path leaf = fx.dir().resolve("a.img");
            fx.corfs("create", "--backing", s.uri(""), leaf.toString()).assertOk();
            Path otherLeaf = fx.createLeaf(other, "other.img");
            AccessProfile p = profile(token(leaf), 16, MIB, 5);
            Path file = fx.dir().resolve("boot.profile");
            p.write(file);
            Path foreign = fx.dir().resolve("foreign.profile");
            profile(token(otherLeaf), 4, MIB, 6).write(foreign);
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            assertEquals("none", fx.status(mnt, "a.img").get("prefetch"));

            long logAt = Files.size(log);
            fx.control(mnt, "prefetch " + file).assertOk();
            awaitPrefetch(mnt, "a.img", "completed");
            List<long[]> reads = readsSince(logAt);
            assertFalse(reads.isEmpty());
            for (long[] r : reads) {
                assertTrue(p.entries().stream().anyMatch(e -> r[0] >= e.offset() && r[1] <= e.end()),
                        "a read outside the profile: " + r[0] + "+" + (r[1] - r[0]));
            }

            Result refused = fx.corfs("prefetch", mnt.toString(), foreign.toString());
            assertEquals(1, refused.exit(), refused.toString());
            assertTrue(refused.stderr().contains("recorded over another backing"), refused.stderr());
            assertTrue(fx.status(mnt, "a.img").get("command_error").contains("another%20backing"),
                    fx.status(mnt, "a.img").toString());
            assertFalse(fx.control(mnt, "prefetch boot.profile").exit() == 0, "a relative FILE is refused");

            fx.corfs("prefetch", "--wait", mnt.toString(), "a.img", file.toString()).assertOk();
            assertEquals("completed", fx.status(mnt, "a.img").get("prefetch"));
            Result noJob = fx.corfs("prefetch", "--cancel", mnt.toString());
            assertEquals(1, noJob.exit(), "nothing to cancel: " + noJob);
            fx.assertSameContent(mnt.resolve("a.img"), backing);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("an unfinished prefetch stops at unmount and resumes at the next mount; a stream beside it")
    void remountResumes() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 7);
            NbdServers.Server s = server(backing, "16M"); // 2 MB/s: 24 MiB take more than 10 s
            Path leaf = fx.dir().resolve("a.img");
            fx.corfs("create", "--backing", s.uri(""), leaf.toString()).assertOk();
            AccessProfile p = profile(token(leaf), 24, MIB, 8);
            Path file = fx.dir().resolve("boot.profile");
            p.write(file);
            Path mnt = fx.mount(fx.newMountPoint("mnt"), List.of("-o", "prefetch=" + file), leaf);
            Map<String, String> st = fx.awaitStatus(mnt, "a.img", WAIT, "some progress",
                    x -> num(x, "prefetch_done") > 0);
            assertEquals("running", st.get("prefetch"), st.toString());
            long doneBefore = num(fx.status(mnt, "a.img"), "prefetch_done");
            assertTrue(doneBefore < p.totalBytes(), "the rate cap keeps it unfinished: " + doneBefore);
            fx.umount(mnt);
            assertTrue(Files.exists(fx.dir().resolve("a.img.corfs-prefetch")), "the pending prefetch is recorded");
            Files.writeString(rateFile, "10G\n");

            mnt = fx.mount(mnt, leaf);
            st = fx.status(mnt, "a.img");
            assertTrue(List.of("running", "completed").contains(st.get("prefetch")), "resumed: " + st);
            assertTrue(num(st, "prefetch_done") >= doneBefore, "what was fetched before is counted done, not"
                    + " fetched again: " + doneBefore + " before, " + st);
            fx.control(mnt, "stream").assertOk(); // a stream at the same time
            awaitPrefetch(mnt, "a.img", "completed");
            fx.awaitJobState(mnt, "a.img", "completed", WAIT);
            fx.assertSameContent(mnt.resolve("a.img"), backing);
            fx.umount(mnt);
            assertFalse(Files.exists(fx.dir().resolve("a.img.corfs-prefetch")));
        });
    }

    @Test
    @DisplayName("create --prefetch: recorded and run by the first mount; a mismatched profile refuses the create")
    void createPrefetch() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 9);
            Path other = fx.makeBacking("other.raw", SIZE, 10);
            NbdServers.Server s = server(backing, "10G");
            Path probe = fx.dir().resolve("probe.img");
            fx.corfs("create", "--backing", s.uri(""), probe.toString()).assertOk();
            AccessProfile p = profile(token(probe), 12, 512 * 1024, 11);
            Path file = fx.dir().resolve("boot.profile");
            p.write(file);
            Path foreign = fx.dir().resolve("foreign.profile");
            profile(token(fx.createLeaf(other, "other.img")), 4, MIB, 12).write(foreign);

            Path leaf = fx.dir().resolve("a.img");
            Result bad = fx.corfs("create", "--backing", s.uri(""), "--prefetch", foreign.toString(), leaf.toString());
            assertEquals(1, bad.exit(), bad.toString());
            assertTrue(bad.stderr().contains("recorded over another backing"), bad.stderr());
            assertFalse(Files.exists(leaf), "nothing made");

            fx.corfs("create", "--backing", s.uri(""), "--prefetch", file.toString(), leaf.toString()).assertOk();
            assertTrue(Files.exists(fx.dir().resolve("a.img.corfs-prefetch")));
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            Map<String, String> st = awaitPrefetch(mnt, "a.img", "completed");
            assertEquals(p.totalBytes(), num(st, "prefetch_done"));
            fx.assertSameContent(mnt.resolve("a.img"), backing);
            fx.umount(mnt);
        });
    }
}
