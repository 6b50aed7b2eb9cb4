package corfs.nativetests;

import static corfs.nativetests.CorfsFixture.metadataOf;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The core behaviour of issue 2, checked on a real FUSE mount with the tools a user has: {@code cmp},
 * {@code dd}, {@code qemu-img}, {@code qemu-io}, {@code fallocate}, {@code truncate}, {@code stat} and
 * {@code echo}/{@code cat} on the control file. Each test gets a fresh 16 MiB backing (random data, holes,
 * zero runs), a leaf over it with the default 64 KiB clusters, and a mount point that the fixture always
 * unmounts.
 */
@DisplayName("corfs on a real mount")
class CoreMountIT {

    private static final long MIB = 1 << 20;
    private static final long SIZE = 16 * MIB;
    private static final int CLUSTER = 64 * 1024;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(3);
    private static final Duration JOB_TIMEOUT = Duration.ofSeconds(120);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path backing;
    private Path leaf;
    private Path mnt;
    private Path img;
    private Path model;

    @BeforeEach
    void makeLeaf() throws IOException {
        backing = fx.makeBacking("base.raw", SIZE, 42);
        model = fx.dir().resolve("model.raw");
        Files.copy(backing, model);
        leaf = fx.createLeaf(backing, "disk.raw");
        mnt = fx.newMountPoint("mnt");
        img = mnt.resolve("disk.raw");
    }

    @Test
    @DisplayName("the exposed file has the backing's size and bytes; afterwards the leaf alone is the disk")
    void exposedFileEqualsBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            assertEquals(SIZE, Files.size(img));
            try (var names = Files.list(mnt)) {
                assertEquals(List.of("control", "disk.raw"),
                        names.map(p -> p.getFileName().toString()).sorted().toList());
            }
            fx.assertSameContent(img, backing);
            Map<String, String> s = fx.status(mnt, "disk.raw");
            assertEquals(Long.toString(SIZE), s.get("size"), s.toString());
            assertEquals(Long.toString(CLUSTER), s.get("cluster_size"), s.toString());
            assertEquals(Long.toString(SIZE), s.get("local_bytes"), "every cluster was read: " + s);
            assertEquals("0", s.get("dirty_bytes"), s.toString());
            fx.umount(mnt);
            // Data lives at its virtual offset: once all is local, LEAF is a plain raw image of the disk.
            fx.assertSameContent(leaf, backing);
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }

    @Test
    @DisplayName("st_blocks of the exposed file grows as clusters are fetched")
    void stBlocksGrowsAsClustersAreFetched() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            byte[] head = CorfsFixture.pread(backing, 0, (int) (4 * MIB));
            assertTrue(nonZeroBytes(head) > MIB, "precondition: the backing's first 4 MiB hold data");
            fx.mount(mnt, leaf);
            long before = blocks(img);
            fx.run(Duration.ofSeconds(60), "dd", "if=" + img, "of=/dev/null", "bs=1M", "count=4", "status=none")
                    .assertOk();
            long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
            long after = blocks(img);
            while (after * 512 < MIB && System.nanoTime() < deadline) {
                CorfsFixture.sleep(200); // the kernel caches attributes for about a second
                after = blocks(img);
            }
            assertTrue(after > before, "st_blocks did not grow: before " + before + ", after " + after);
            assertTrue(after * 512 >= MIB, "st_blocks " + after + " after fetching 4 MiB with "
                    + nonZeroBytes(head) + " non-zero bytes");
        });
    }

    @Test
    @DisplayName("dd writes at odd offsets match a model file, before and after a remount")
    void ddWritesAtOddOffsetsSurviveRemount() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            writeOddPatches(new Random(7), 25);
            fx.assertSameContent(img, model);
            Map<String, String> s = fx.status(mnt, "disk.raw");
            assertTrue(Long.parseLong(s.get("dirty_bytes")) > 0, "writes made nothing dirty: " + s);
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("echo stream > control streams to completion; the leaf then works with the backing deleted")
    void streamMakesTheLeafStandalone() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            writeOddPatches(new Random(11), 10);
            fx.sh("echo stream > " + mnt.resolve("control")).assertOk();
            Map<String, String> s = fx.awaitJobState(mnt, "disk.raw", "completed", JOB_TIMEOUT);
            assertEquals("stream", s.get("job"), s.toString());
            assertEquals("yes", s.get("standalone"), s.toString());
            assertEquals(Long.toString(SIZE), s.get("local_bytes"), s.toString());
            fx.assertSameContent(img, model);
            fx.umount(mnt);
            Files.delete(backing);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
            assertEquals("yes", fx.status(mnt, "disk.raw").get("standalone"));
            // and still writable without a backing
            writeOddPatches(new Random(12), 3);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("echo commit > control writes every change back: the backing then equals the model")
    void commitWritesChangesIntoTheBacking() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            writeOddPatches(new Random(13), 20);
            fx.sh("echo commit > " + mnt.resolve("control")).assertOk();
            Map<String, String> s = fx.awaitJobState(mnt, "disk.raw", "completed", JOB_TIMEOUT);
            assertEquals("commit", s.get("job"), s.toString());
            assertEquals("0", s.get("dirty_bytes"), s.toString());
            fx.assertSameContent(backing, model);
            fx.umount(mnt);
            fx.assertSameContent(backing, model);
            fx.corfs("check", leaf.toString()).assertOk();
            // the recorded identity was updated: the next mount accepts the changed backing without --force
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("printf 'stream a\\nstream b\\n' > control streams two leaves of one mount")
    void twoLeavesStreamFromOneCommandWrite() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backingB = fx.makeBacking("base-b.raw", 8 * MIB, 99);
            Path leafB = fx.createLeaf(backingB, "b.raw");
            fx.mount(mnt, leaf, leafB);
            fx.sh("printf 'stream disk.raw\\nstream b.raw\\n' > " + mnt.resolve("control")).assertOk();
            fx.awaitJobState(mnt, "disk.raw", "completed", JOB_TIMEOUT);
            fx.awaitJobState(mnt, "b.raw", "completed", JOB_TIMEOUT);
            fx.assertSameContent(img, backing);
            fx.assertSameContent(mnt.resolve("b.raw"), backingB);
            assertEquals(2, fx.status(mnt).size());
        });
    }

    @Test
    @DisplayName("qemu-img compare and qemu-io write/read patterns see a plain raw disk")
    void qemuToolsSeeARawDisk() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            Result cmp = fx.run(Duration.ofSeconds(120), "qemu-img", "compare", "-f", "raw", "-F", "raw",
                    img.toString(), backing.toString());
            assertEquals(0, cmp.exit(), cmp.toString());
            qemuIo(List.of(), "0xab", 1 * MIB, 64 * 1024);
            qemuIo(List.of(), "0xcd", 100_000, 70_001);             // unaligned, crosses clusters
            qemuIo(List.of("-t", "none"), "0x5a", 3 * MIB + 4096, 128 * 1024); // O_DIRECT
            qemuIo(List.of("-t", "none"), "0x17", SIZE - 64 * 1024, 64 * 1024);
            cmp = fx.run(Duration.ofSeconds(120), "qemu-img", "compare", "-f", "raw", "-F", "raw",
                    img.toString(), model.toString());
            assertEquals(0, cmp.exit(), cmp.toString());
            fx.umount(mnt);
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("bad control commands fail with EINVAL/ENOENT/EBUSY and change nothing")
    void badControlCommandsFailWithTheRightErrno() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            Map<String, String> before = withoutError(fx.status(mnt, "disk.raw"));
            Map<String, String> expectations = new LinkedHashMap<>();
            expectations.put("bogus", "Invalid argument");
            expectations.put("stream disk.raw speed=fast", "Invalid argument");
            expectations.put("stream speed=-1", "Invalid argument");
            expectations.put("stream on_error=sometimes", "Invalid argument");
            expectations.put("speed disk.raw", "Invalid argument");
            expectations.put("stream disk.raw disk.raw disk.raw", "Invalid argument");
            expectations.put("stream nosuch.raw", "No such file or directory");
            expectations.put("commit nosuch.raw", "No such file or directory");
            expectations.put("pause nosuch.raw", "No such file or directory");
            for (Map.Entry<String, String> e : expectations.entrySet()) {
                Result r = fx.control(mnt, e.getKey());
                assertNotEquals(0, r.exit(), "'" + e.getKey() + "' was accepted: " + r);
                assertTrue(r.stderr().contains(e.getValue()), "'" + e.getKey() + "' should fail with "
                        + e.getValue() + ": " + r);
                Map<String, String> now = fx.status(mnt, "disk.raw");
                assertEquals(before, withoutError(now), "'" + e.getKey() + "' changed the status");
                assertNotEquals("-", now.get("command_error"), "the reason of '" + e.getKey()
                        + "' is not readable in the status: " + now);
            }

            // EBUSY: a second job while one runs (slow stream: 16 MiB at 256 KiB/s takes a minute)
            fx.control(mnt, "stream speed=256K").assertOk();
            Map<String, String> running = fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));
            for (String busy : List.of("stream", "commit disk.raw", "stream disk.raw speed=1M")) {
                Result r = fx.control(mnt, busy);
                assertNotEquals(0, r.exit(), "'" + busy + "' was accepted while a stream runs: " + r);
                assertTrue(r.stderr().contains("Device or resource busy"), "'" + busy + "': " + r);
                Map<String, String> now = fx.status(mnt, "disk.raw");
                assertEquals("stream", now.get("job"), now.toString());
                assertEquals("running", now.get("state"), now.toString());
                assertEquals(running.get("speed"), now.get("speed"), now.toString());
            }
            assertEquals("262144", running.get("speed"), running.toString());
            fx.control(mnt, "cancel").assertOk();
            fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(10), "cancelled",
                    st -> "cancelled".equals(st.get("state")));
            fx.assertSameContent(img, backing);
        });
    }

    @Test
    @DisplayName("a leaf already mounted is refused by a second mount")
    void mountingTwiceIsRefused() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            Path other = fx.newMountPoint("mnt2");
            Result r = fx.tryMount(other, List.of(), leaf);
            assertNotEquals(0, r.exit(), "second mount of one leaf accepted: " + r);
            assertFalse(r.stderr().isBlank(), "no reason given: " + r);
            assertFalse(CorfsFixture.isMounted(other), "refused mount left " + other + " mounted");
            r = fx.tryMount(other, List.of("--force"), leaf);
            assertNotEquals(0, r.exit(), "--force must not let two daemons share a leaf: " + r);
            assertFalse(CorfsFixture.isMounted(other));
            fx.assertSameContent(img, backing); // the first mount is unharmed
        });
    }

    @Test
    @DisplayName("corrupt or truncated metadata is reported by check and refused by mount, and left as it is")
    void corruptMetadataIsRefused() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path meta = metadataOf(leaf);
            byte[] good = Files.readAllBytes(meta);
            fx.corfs("check", leaf.toString()).assertOk();
            // The header has two 4 KiB slots (an A/B pair): flip the same byte in both so no valid copy is left.
            for (int offset : new int[] {0, 17, 100, 4092}) {
                byte[] bad = good.clone();
                bad[offset] ^= 0x5a;
                bad[4096 + offset] ^= 0x5a;
                Files.write(meta, bad);
                expectRefused("byte " + offset + " of both header slots flipped", meta, bad);
            }
            for (int length : new int[] {0, 4096, good.length - 1}) {
                byte[] bad = Arrays.copyOf(good, length);
                Files.write(meta, bad);
                expectRefused("metadata truncated to " + length + " bytes", meta, bad);
            }
            Files.write(meta, good);
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, backing);
        });
    }

    private void expectRefused(String what, Path meta, byte[] bad) throws IOException {
        Result check = fx.corfs("check", leaf.toString());
        assertNotEquals(0, check.exit(), what + ": check says clean: " + check);
        assertFalse((check.stdout() + check.stderr()).isBlank(), what + ": check gives no report");
        Result m = fx.tryMount(mnt, List.of(), leaf);
        assertNotEquals(0, m.exit(), what + ": mount accepted it: " + m);
        assertFalse(m.stderr().isBlank(), what + ": mount gives no reason");
        assertFalse(CorfsFixture.isMounted(mnt), what + ": refused mount left a mount");
        m = fx.tryMount(mnt, List.of("--force"), leaf);
        assertNotEquals(0, m.exit(), what + ": mount --force accepted it: " + m);
        assertFalse(CorfsFixture.isMounted(mnt));
        assertArrayEquals(bad, Files.readAllBytes(meta), what + ": metadata was changed (silently repaired?)");
    }

    @Test
    @DisplayName("a changed backing is refused unless --force; a missing or resized one is refused")
    void changedBackingIsRefused() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.run(Duration.ofSeconds(10), "touch", "-d", "2001-02-03 04:05:06", backing.toString()).assertOk();
            Result r = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, r.exit(), "mount over a touched backing accepted: " + r);
            assertFalse(r.stderr().isBlank(), r.toString());
            assertFalse(CorfsFixture.isMounted(mnt));
            fx.mount(mnt, List.of("--force"), leaf);
            // part of the disk only: reading all of it would make the leaf standalone, and the checks below
            // need one that still depends on its backing
            assertArrayEquals(CorfsFixture.pread(backing, 0, 1 << 20), CorfsFixture.pread(img, 0, 1 << 20));
            fx.umount(mnt);
            // the forced mount recorded the identity it accepted: the next mount does not refuse again
            r = fx.tryMount(mnt, List.of(), leaf);
            assertEquals(0, r.exit(), "the identity --force accepted was not recorded: " + r);
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
            // a change nobody acknowledged is still refused, also after a forced read-only mount (which
            // cannot record it)
            fx.run(Duration.ofSeconds(10), "touch", "-d", "2002-02-03 04:05:06", backing.toString()).assertOk();
            fx.mount(mnt, List.of("--force", "--read-only"), leaf);
            fx.umount(mnt);
            r = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, r.exit(), "a change acknowledged only by a read-only mount was recorded: " + r);
            assertFalse(CorfsFixture.isMounted(mnt));
            fx.mount(mnt, List.of("--force"), leaf);
            fx.umount(mnt);

            Path aside = fx.dir().resolve("aside.raw");
            Files.move(backing, aside);
            r = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, r.exit(), "mount with the backing missing accepted: " + r);
            assertFalse(CorfsFixture.isMounted(mnt));
            Files.move(aside, backing);

            Files.copy(backing, aside, StandardCopyOption.REPLACE_EXISTING);
            fx.run(Duration.ofSeconds(10), "truncate", "-s", "+4096", backing.toString()).assertOk();
            r = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, r.exit(), "mount over a grown backing accepted: " + r);
            assertFalse(CorfsFixture.isMounted(mnt));
        });
    }

    @Test
    @DisplayName("the exposed file cannot be truncated or grown")
    void truncateFails() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            assertNotEquals(0, fx.run(Duration.ofSeconds(30), "truncate", "-s", "1M", img.toString()).exit());
            assertNotEquals(0, fx.run(Duration.ofSeconds(30), "truncate", "-s", "+1M", img.toString()).exit());
            // dd without conv=notrunc opens with O_TRUNC
            Result dd = fx.run(Duration.ofSeconds(30), "dd", "if=/dev/zero", "of=" + img, "bs=4k", "count=1",
                    "status=none");
            assertNotEquals(0, dd.exit(), "dd truncating the file succeeded: " + dd);
            assertEquals(SIZE, Files.size(img));
            fx.assertSameContent(img, backing);
        });
    }

    @Test
    @DisplayName("fsync is a real barrier: dd conv=fsync data survives kill -9 of the daemon")
    void fsyncIsABarrier() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            byte[] data = new byte[200_000];
            new Random(5).nextBytes(data);
            fx.dd(img, 5 * MIB + 333, data, true).assertOk();
            CorfsFixture.pwrite(model, 5 * MIB + 333, data);
            assertEquals(0, fx.run(Duration.ofSeconds(30), "sync", img.toString()).exit(), "sync FILE failed");
            List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
            assertFalse(pids.isEmpty(), "cannot find the corfs daemon serving " + mnt);
            for (long pid : pids) {
                fx.run(Duration.ofSeconds(10), "kill", "-9", Long.toString(pid)).assertOk();
            }
            waitGone(pids);
            fx.clearDeadMount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("fallocate punch/zero-range reads zeros, marks the clusters local and fetches nothing")
    void fallocateMakesLocalZerosWithoutFetching() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            assertEquals("0", fx.status(mnt, "disk.raw").get("local_bytes"));
            fx.run(Duration.ofSeconds(30), "fallocate", "-p", "-o", Long.toString(MIB), "-l", Long.toString(2 * MIB),
                    img.toString()).assertOk();
            Map<String, String> s = fx.status(mnt, "disk.raw");
            assertEquals(Long.toString(2 * MIB), s.get("local_bytes"), "punched clusters are local: " + s);
            assertTrue(Long.parseLong(s.get("dirty_bytes")) > 0, "punched clusters differ from the backing: " + s);
            assertEquals(0, blocks(leaf), "the leaf's data file gained blocks: something was fetched");
            fx.run(Duration.ofSeconds(30), "fallocate", "-z", "-o", Long.toString(5 * MIB), "-l", Long.toString(MIB),
                    img.toString()).assertOk();
            s = fx.status(mnt, "disk.raw");
            assertEquals(Long.toString(3 * MIB), s.get("local_bytes"), "zeroed clusters are local: " + s);
            zeroModel(MIB, 2 * MIB);
            zeroModel(5 * MIB, MIB);
            // unaligned: partial clusters at both ends keep their other bytes
            fx.run(Duration.ofSeconds(30), "fallocate", "-p", "-o", "100000", "-l", "300000", img.toString())
                    .assertOk();
            zeroModel(100_000, 300_000);
            fx.assertSameContent(img, model);
            fx.umount(mnt);
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("a read-only mount serves reads and refuses writes")
    void readOnlyMount() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, List.of("--read-only"), leaf);
            fx.assertSameContent(img, backing);
            Result dd = fx.dd(img, 4096, new byte[4096], false);
            assertNotEquals(0, dd.exit(), "write on a read-only mount succeeded: " + dd);
            fx.assertSameContent(img, backing);
        });
    }

    @Test
    @DisplayName("fusermount -u flushes and the daemon exits; the writes are there after a remount")
    void fusermountUnmountsCleanly() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            List<Long> pids = CorfsFixture.daemonPidsFor(mnt);
            writeOddPatches(new Random(3), 5);
            fx.run(Duration.ofSeconds(30), "fusermount", "-u", mnt.toString()).assertOk();
            waitGone(pids);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("create refuses an existing leaf, a missing backing and bad cluster sizes")
    void createRefusesBadInput() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            byte[] meta = Files.readAllBytes(metadataOf(leaf));
            List<List<String>> bad = new ArrayList<>();
            bad.add(List.of("create", "--backing", backing.toString(), leaf.toString()));
            bad.add(List.of("create", "--backing", fx.dir().resolve("nope.raw").toString(),
                    fx.dir().resolve("n1.raw").toString()));
            for (String size : List.of("3000", "1K", "4M", "96K", "abc", "-64K", "0")) {
                bad.add(List.of("create", "--backing", backing.toString(), "--cluster-size", size,
                        fx.dir().resolve("n2.raw").toString()));
            }
            for (List<String> args : bad) {
                Result r = fx.corfs(args.toArray(String[]::new));
                assertNotEquals(0, r.exit(), "accepted: " + r);
                String err = r.stderr().strip();
                assertTrue(err.startsWith("corfs: ") && !err.contains("\n"),
                        "want a one-line 'corfs: ...' error: " + r);
            }
            assertArrayEquals(meta, Files.readAllBytes(metadataOf(leaf)), "refused create changed the leaf");
            assertFalse(Files.exists(fx.dir().resolve("n1.raw")));
            assertFalse(Files.exists(fx.dir().resolve("n2.raw")));
            for (String size : List.of("4K", "2M")) {
                fx.createLeaf(backing, "ok-" + size + ".raw", "--cluster-size", size);
            }
        });
    }

    @Test
    @DisplayName("info, map and check describe a leaf, in text and JSON")
    void infoMapCheck() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.corfs("check", leaf.toString()).assertOk();
            fx.corfs("info", leaf.toString()).assertOk();
            fx.corfs("map", leaf.toString()).assertOk();
            String json = fx.corfs("info", "--json", leaf.toString()).assertOk().stdout();
            assertTrue(json.strip().startsWith("{") && json.contains(Long.toString(SIZE)), json);
            fx.mount(mnt, leaf);
            fx.run(Duration.ofSeconds(30), "dd", "if=" + img, "of=/dev/null", "bs=64k", "count=4", "status=none")
                    .assertOk();
            writeOddPatches(new Random(1), 2);
            fx.umount(mnt);
            String map = fx.corfs("map", "--json", leaf.toString()).assertOk().stdout();
            assertTrue(map.strip().startsWith("["), map);
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }

    // ------------------------------------------------------------------ helpers

    /** {@code n} dd writes of 1 byte to 300 KB at odd offsets (some fixed edge cases first), mirrored to the model. */
    private void writeOddPatches(Random r, int n) throws IOException {
        long[][] fixed = {
            {0, 1}, {CLUSTER - 1, 2}, {3L * CLUSTER - 100, 300}, {MIB + 12_345, 200_000}, {SIZE - 777, 777},
        };
        for (int i = 0; i < n; i++) {
            long off;
            int len;
            if (i < fixed.length) {
                off = fixed[i][0];
                len = (int) fixed[i][1];
            } else {
                len = 1 + r.nextInt(r.nextBoolean() ? 5000 : 300_000);
                off = (long) (r.nextDouble() * (SIZE - len));
            }
            byte[] data = new byte[len];
            r.nextBytes(data);
            fx.dd(img, off, data, false).assertOk();
            CorfsFixture.pwrite(model, off, data);
        }
    }

    private void qemuIo(List<String> opts, String pattern, long offset, long length) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        cmd.addAll(opts);
        cmd.addAll(List.of("-c", "write -P " + pattern + " " + offset + " " + length,
                "-c", "read -P " + pattern + " " + offset + " " + length, img.toString()));
        Result r = fx.run(Duration.ofSeconds(60), cmd.toArray(String[]::new));
        assertEquals(0, r.exit(), r.toString());
        String all = r.stdout() + r.stderr();
        assertFalse(all.contains("Pattern verification failed") || all.contains("failed:"), r.toString());
        assertTrue(r.stdout().contains("wrote ") && r.stdout().contains("read "), r.toString());
        byte[] b = new byte[(int) length];
        Arrays.fill(b, (byte) Integer.parseInt(pattern.substring(2), 16));
        CorfsFixture.pwrite(model, offset, b);
    }

    private void zeroModel(long offset, long length) throws IOException {
        CorfsFixture.pwrite(model, offset, new byte[(int) length]);
    }

    private static Map<String, String> withoutError(Map<String, String> s) {
        Map<String, String> copy = new LinkedHashMap<>(s);
        copy.remove("command_error");
        copy.remove("error");
        copy.remove("rate");
        copy.remove("eta");
        return copy;
    }

    /** st_blocks (512-byte units) as {@code stat -c %b} shows it. */
    private long blocks(Path p) {
        return Long.parseLong(fx.run(Duration.ofSeconds(30), "stat", "-c", "%b", p.toString()).assertOk()
                .stdout().strip());
    }

    private static int nonZeroBytes(byte[] b) {
        int n = 0;
        for (byte x : b) {
            if (x != 0) {
                n++;
            }
        }
        return n;
    }

    private static void waitGone(List<Long> pids) {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        for (long pid : pids) {
            while (CorfsFixture.isLiveProcess(pid)) {
                assertTrue(System.nanoTime() < deadline, "process " + pid + " did not exit");
                CorfsFixture.sleep(50);
            }
        }
    }
}
