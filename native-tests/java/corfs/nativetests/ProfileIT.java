package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Access profiles on a real mount (issue 10, "Access profiles"): the guest's reads, made with {@code dd
 * iflag=direct} in a known order, are what {@code corfs profile show} lists and {@code export} writes, in
 * that order; {@code -o profile=off} records nothing; after {@code kill -9} of a daemon that was reading,
 * the profile is a prefix of the true order, losing at most what the last flush had not saved, and the next
 * mount records after it without repeating a cluster.
 *
 * <p>Every read is of one cluster at its start, and no cluster read is next to another one read, so the
 * read-ahead of a sequential reader never fetches a cluster the order reads later.
 */
@DisplayName("access profiles on a real mount")
class ProfileIT {
    private static final long MIB = 1 << 20;
    private static final long SIZE = 64 * MIB;
    private static final int CLUSTER = 64 * 1024;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(4);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path leaf;
    private Path mnt;
    private Path img;

    @BeforeEach
    void makeLeaf() throws IOException {
        Path backing = fx.makeBacking("base.raw", SIZE, 10);
        leaf = fx.createLeaf(backing, "disk.raw");
        mnt = fx.newMountPoint("mnt");
        img = mnt.resolve("disk.raw");
    }

    /** Even clusters in a shuffled order: never two neighbours. */
    private static List<Long> order(int n, long seed) {
        List<Long> all = new ArrayList<>();
        for (long c = 0; c < SIZE / CLUSTER; c += 2) {
            all.add(c);
        }
        Collections.shuffle(all, new Random(seed));
        return new ArrayList<>(all.subList(0, n));
    }

    /** One {@code dd iflag=direct} of 4 KiB at the start of each cluster, in order. */
    private void readClusters(List<Long> clusters) {
        for (long c : clusters) {
            fx.run(Duration.ofSeconds(60), "dd", "if=" + img, "of=/dev/null", "bs=4096", "count=1",
                    "skip=" + (c * CLUSTER / 4096), "iflag=direct", "status=none").assertOk();
        }
    }

    /** {@code corfs profile show LEAF}: the clusters of its extents in order (each extent one cluster here). */
    private List<Long> shown() {
        Result r = fx.corfs("profile", "show", leaf.toString()).assertOk();
        String[] lines = r.stdout().split("\n");
        assertTrue(lines[0].startsWith("# ") && lines[0].contains("backing_identity ")
                && lines[0].contains("cluster_size " + CLUSTER), r.stdout());
        List<Long> out = new ArrayList<>();
        long lastMs = -1;
        for (int i = 1; i < lines.length; i++) {
            String[] f = lines[i].split(" ");
            assertEquals(3, f.length, lines[i]);
            assertEquals(CLUSTER, Long.parseLong(f[1]), "reads of single, separate clusters: " + lines[i]);
            long ms = Long.parseLong(f[2]);
            out.add(Long.parseLong(f[0]) / CLUSTER);
            lastMs = ms;
        }
        assertTrue(lastMs >= -1);
        return out;
    }

    @Test
    @DisplayName("show and export list the clusters read through the mount, in order, while mounted and after")
    void showAndExport() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            List<Long> order = order(40, 1);
            readClusters(order);
            readClusters(order.subList(0, 10)); // repeated reads: local now, nothing new
            // while mounted: as of the last flush (once a second)
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            List<Long> seen = shown();
            while (!seen.equals(order) && System.nanoTime() < deadline) {
                CorfsFixture.sleep(200);
                seen = shown();
            }
            assertEquals(order, seen);
            fx.umount(mnt);
            assertEquals(order, shown());
            Result json = fx.corfs("profile", "show", "--json", leaf.toString()).assertOk();
            assertTrue(json.stdout().contains("\"clusters\":40") && json.stdout().contains("\"offset\":"
                    + order.get(0) * CLUSTER + ","), json.stdout());

            Path exported = fx.dir().resolve("boot.profile");
            fx.corfs("profile", "export", leaf.toString(), exported.toString()).assertOk();
            List<String> lines = Files.readAllLines(exported);
            assertEquals("corfs-profile 1", lines.get(0));
            assertEquals("cluster_size " + CLUSTER, lines.get(3));
            assertEquals(4 + order.size(), lines.size());
            long lastMs = 0;
            for (int i = 0; i < order.size(); i++) {
                String[] f = lines.get(4 + i).split(" ");
                assertEquals(order.get(i) * CLUSTER, Long.parseLong(f[0]));
                assertTrue(Long.parseLong(f[2]) >= lastMs, "times never go back in one reader's order");
                lastMs = Long.parseLong(f[2]);
            }
            // merging a profile with itself gives it back
            Path merged = fx.dir().resolve("merged.profile");
            fx.corfs("profile", "merge", exported.toString(), exported.toString(), "-o", merged.toString()).assertOk();
            assertEquals(lines.subList(4, lines.size()), Files.readAllLines(merged).subList(4, lines.size()));
        });
    }

    @Test
    @DisplayName("export and merge -o onto the mounted leaf's data file or metadata are refused; the leaf keeps a guest"
            + " write across a remount and checks clean (export onto the data file replaced it with the profile)")
    void neverOverTheLeaf() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            readClusters(order(5, 3));
            byte[] pattern = new byte[CLUSTER];
            new Random(4).nextBytes(pattern);
            Path src = Files.write(fx.dir().resolve("pattern"), pattern);
            fx.run(Duration.ofSeconds(60), "dd", "if=" + src, "of=" + img, "bs=65536", "seek=7", "conv=notrunc,fsync",
                    "status=none").assertOk();
            Path exported = fx.dir().resolve("boot.profile");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (fx.corfs("profile", "export", leaf.toString(), exported.toString()).exit() != 0) {
                assertTrue(System.nanoTime() < deadline, "no profile flushed within 60 s");
                CorfsFixture.sleep(200);
            }
            Path meta = leaf.resolveSibling("disk.raw.corfs");
            for (Path target : List.of(leaf, meta, leaf.getParent().resolve("./disk.raw"))) {
                Result r = fx.corfs("profile", "export", leaf.toString(), target.toString());
                assertEquals(1, r.exit(), r.toString());
                assertTrue(r.stderr().contains("not replaced"), r.toString());
                r = fx.corfs("profile", "merge", exported.toString(), "-o", target.toString());
                assertEquals(1, r.exit(), r.toString());
            }
            assertEquals(SIZE, Files.size(leaf));
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(img)) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(CLUSTER);
                while (b.hasRemaining() && ch.read(b, 7L * CLUSTER + b.position()) > 0) {
                    // read the whole cluster
                }
                assertTrue(java.util.Arrays.equals(pattern, b.array()), "the guest write survived");
            }
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("-o profile=off records nothing; a profile of a missing leaf is an error")
    void profileOff() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, List.of("-o", "profile=off"), leaf);
            readClusters(order(5, 2));
            fx.umount(mnt);
            assertFalse(Files.exists(leaf.resolveSibling("disk.raw.corfs-profile")));
            Result r = fx.corfs("profile", "show", leaf.toString()).assertFails();
            assertEquals(1, r.exit(), r.toString());
            assertEquals(1, fx.corfs("profile", "show", fx.dir().resolve("nope.raw").toString()).exit());
            assertEquals(64, fx.corfs("mount", "-o", "profile=maybe", leaf.toString(), mnt.toString()).exit());
        });
    }

    @Test
    @DisplayName("kill -9 while reading: a prefix of the true order survives, and the next mount records after it")
    void crashKeepsAPrefix() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            List<Long> order = order(400, 3);
            Path progress = fx.dir().resolve("progress");
            StringBuilder script = new StringBuilder();
            for (long c : order) {
                script.append("dd if=").append(img).append(" of=/dev/null bs=4096 count=1 skip=")
                        .append(c * CLUSTER / 4096).append(" iflag=direct status=none || exit 1\n")
                        .append("echo ").append(c).append(" >> ").append(progress).append('\n');
            }
            Path scriptFile = fx.dir().resolve("reader.sh");
            Files.writeString(scriptFile, script);
            Process reader = new ProcessBuilder("sh", scriptFile.toString()).redirectErrorStream(true)
                    .redirectOutput(fx.dir().resolve("reader.out").toFile()).start();
            fx.onTeardown("reader", () -> {
                if (reader.isAlive()) {
                    reader.destroyForcibly();
                }
            });
            // Let some reads happen, note how many were done, give the flusher 3 s to save them, then kill.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (lines(progress) < 30 && reader.isAlive() && System.nanoTime() < deadline) {
                CorfsFixture.sleep(20);
            }
            int doneBefore = lines(progress);
            assertTrue(doneBefore >= 30, "the reader did too little: " + doneBefore);
            CorfsFixture.sleep(3000);
            List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
            assertFalse(pids.isEmpty(), "cannot find the corfs daemon serving " + mnt);
            for (long pid : pids) {
                fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
            }
            reader.waitFor(30, TimeUnit.SECONDS);
            if (reader.isAlive()) {
                reader.destroyForcibly();
            }
            int doneAtKill = lines(progress);
            long waitGone = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            for (long pid : pids) {
                while (CorfsFixture.isLiveProcess(pid)) {
                    assertTrue(System.nanoTime() < waitGone, "daemon " + pid + " did not exit");
                    CorfsFixture.sleep(50);
                }
            }
            fx.clearDeadMount(mnt);

            List<Long> survived = shown();
            System.out.printf("[ProfileIT] kill -9: %d reads done 3 s before, %d at the kill, %d recorded%n",
                    doneBefore, doneAtKill, survived.size());
            assertTrue(survived.size() >= doneBefore, "lost more than the last flush: " + survived.size()
                    + " recorded, " + doneBefore + " read 3 s before the kill");
            assertTrue(survived.size() <= Math.min(order.size(), doneAtKill + 1), "recorded reads that never happened");
            assertEquals(order.subList(0, survived.size()), survived, "a prefix of the true order");

            // The next mount records the rest after it, no cluster twice.
            fx.mount(mnt, leaf);
            readClusters(order);
            fx.umount(mnt);
            List<Long> all = shown();
            assertEquals(survived, all.subList(0, survived.size()));
            assertEquals(all.size(), new HashSet<>(all).size(), "a cluster recorded twice: " + all);
            Set<Long> neverReadBefore = new HashSet<>(order.subList(Math.min(order.size(), doneAtKill + 1), order.size()));
            List<Long> rest = all.subList(survived.size(), all.size());
            assertTrue(rest.containsAll(neverReadBefore), "clusters first read after the remount are recorded");
            int at = 0;
            for (long c : rest) { // in the order they were read
                while (at < order.size() && order.get(at) != c) {
                    at++;
                }
                assertTrue(at < order.size(), "cluster " + c + " out of order in " + rest);
            }
        });
    }

    private static int lines(Path p) throws IOException {
        return Files.exists(p) ? Files.readAllLines(p).size() : 0;
    }
}
