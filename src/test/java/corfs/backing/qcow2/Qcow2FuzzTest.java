package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged images: bytes of real images flipped, overwritten and truncated where it hurts (header,
 * header extensions, backing names, L1 and L2 tables, compressed data). Each variant must be refused
 * at open or give an {@link IOException} on a read that touches the damage: never another exception,
 * a hang, a read outside its source, or unbounded reading.
 */
@DisplayName("qcow2 reader against damaged images")
class Qcow2FuzzTest {
    static final int VARIANTS_PER_IMAGE = 500;

    @TempDir
    Path dir;

    /** A corpus image: its bytes, the names its chain resolves, and where its tables are. */
    private record Base(String name, byte[] bytes, Map<String, byte[]> backings, List<int[]> hot) {
    }

    @Test
    @DisplayName("thousands of damaged variants are refused or fail the read with IOException")
    void fuzz() throws Exception {
        QemuTools.assumeAvailable();
        List<Base> bases = corpus();
        int[] outcome = new int[3]; // refused, read error seen, read clean
        assertTimeoutPreemptively(Duration.ofSeconds(300), () -> {
            Random r = new Random(20261202);
            for (Base base : bases) {
                for (int v = 0; v < VARIANTS_PER_IMAGE; v++) {
                    long seed = r.nextLong();
                    outcome[runVariant(base, seed)]++;
                }
            }
        });
        int total = bases.size() * VARIANTS_PER_IMAGE;
        assertEquals(total, outcome[0] + outcome[1] + outcome[2]);
        // the damage must reach every stage, or the fuzz proves little
        assertTrue(outcome[0] > total / 20, "refused at open: " + Arrays.toString(outcome));
        assertTrue(outcome[1] > total / 20, "failed on read: " + Arrays.toString(outcome));
        assertTrue(outcome[2] > total / 20, "read clean: " + Arrays.toString(outcome));
    }

    /** 0 refused at open, 1 opened and some read failed, 2 opened and read everything. */
    private static int runVariant(Base base, long seed) {
        Random r = new Random(seed);
        boolean damageBacking = !base.backings.isEmpty() && r.nextInt(4) == 0;
        Map<String, CheckedSource> sources = new HashMap<>();
        List<CheckedSource> all = new ArrayList<>();
        for (Map.Entry<String, byte[]> b : base.backings.entrySet()) {
            byte[] bytes = damageBacking ? mutate(b.getValue(), List.of(new int[] {0, b.getValue().length}), r) : b.getValue();
            CheckedSource s = new CheckedSource("/fuzz/" + b.getKey(), bytes);
            sources.put(b.getKey(), s);
            all.add(s);
        }
        byte[] top = damageBacking ? base.bytes : mutate(base.bytes, base.hot, r);
        CheckedSource src = new CheckedSource("/fuzz/" + base.name, top);
        all.add(src);
        String what = base.name + " seed " + seed;
        int result;
        Qcow2Image q;
        try {
            q = Qcow2Image.open(src, CheckedSource.resolver(sources), Qcow2Options.DEFAULT.withL2CacheBytes(64 * 1024));
        } catch (IOException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().isEmpty(), what + ": refusal without a message");
            result = 0;
            checkSources(all, what);
            return result;
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": open threw " + e, e);
        }
        result = 2;
        try (q) {
            long size = q.virtualSize();
            long chunk = 64 * 1024;
            ByteBuffer b = ByteBuffer.allocate((int) chunk);
            long pos = 0;
            // reads: the whole disk if small, else samples
            for (int i = 0; i < 64 && pos < size; i++) {
                b.clear().limit((int) Math.min(chunk, size - pos));
                try {
                    q.read(b, pos);
                } catch (IOException e) {
                    assertTrue(e.getMessage() != null && !e.getMessage().isEmpty(), what + ": read error without a message");
                    result = 1;
                }
                pos = size <= 64 * chunk ? pos + chunk : pos + Math.max(chunk, (size / 64) & ~511L);
            }
            long at = 0;
            for (int i = 0; i < 64 && at < size; i++) {
                try {
                    at += q.allocation(at, size - at).length();
                } catch (IOException e) {
                    result = 1;
                    at += chunk;
                }
            }
        } catch (IOException e) {
            fail(what + ": close failed " + e);
        } catch (RuntimeException e) {
            throw new AssertionError(what + ": read threw " + e, e);
        }
        checkSources(all, what);
        return result;
    }

    private static void checkSources(List<CheckedSource> all, String what) {
        for (CheckedSource s : all) {
            assertEquals(null, s.violation.get(), what);
            // reading is bounded: 64 reads of 64 KiB plus tables and compressed spans
            assertTrue(s.bytesRead.get() < (64L << 20), what + ": read " + s.bytesRead.get() + " bytes");
        }
    }

    private static final long[] NASTY = {0, -1L, 1L << 63, 1L << 62, Long.MAX_VALUE, 0x00ff_ffff_ffff_fe00L, 512, 65536,
        0xffff_ffffL, 1L << 62 | 0x00ff_ffff_ffff_ffffL};

    private static byte[] mutate(byte[] image, List<int[]> hot, Random r) {
        int kind = r.nextInt(10);
        if (kind == 0) {
            // truncate: anywhere, or just short of the end
            int len = r.nextBoolean() ? r.nextInt(image.length) : Math.max(0, image.length - 1 - r.nextInt(70_000));
            return Arrays.copyOf(image, len);
        }
        byte[] copy = image.clone();
        int[] region = hot.get(r.nextInt(hot.size()));
        int span = Math.max(1, region[1] - region[0]);
        int count = 1 + r.nextInt(3);
        for (int i = 0; i < count; i++) {
            int at = Math.min(copy.length - 1, region[0] + r.nextInt(span));
            if (kind <= 5) {
                copy[at] ^= (byte) (1 << r.nextInt(8));
            } else if (kind <= 7) {
                int aligned = Math.min(copy.length - 8, at & ~7);
                long value = r.nextBoolean() ? NASTY[r.nextInt(NASTY.length)] : r.nextLong();
                if (r.nextBoolean()) {
                    value = (ByteBuffer.wrap(copy).getLong(aligned) & ~0xffffL) | (value & 0xffff);
                }
                ByteBuffer.wrap(copy).putLong(aligned, value);
            } else {
                int aligned = Math.min(copy.length - 4, at & ~3);
                ByteBuffer.wrap(copy).putInt(aligned, r.nextBoolean() ? (int) NASTY[r.nextInt(NASTY.length)] : r.nextInt());
            }
        }
        return copy;
    }

    // ---- the corpus ----

    private List<Base> corpus() throws Exception {
        List<Base> list = new ArrayList<>();
        qemuImg("create", "-q", "-f", "qcow2", "v3.qcow2", "1M");
        QemuTools.io(dir, "v3.qcow2", "write -P 0x11 0 70k", "write -z 128k 64k", "write -P 0x22 900k 4k");
        list.add(base("v3.qcow2", Map.of()));
        qemuImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,compat=0.10", "small.qcow2", "256k");
        QemuTools.io(dir, "small.qcow2", "write -P 0x33 0 40k", "write -P 0x44 100k 1k", "write -P 0x55 200k 30k");
        list.add(base("small.qcow2", Map.of()));
        Qcow2CorpusTest.writeMixedData(dir.resolve("src.raw"), 1 << 20, 9);
        qemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", "src.raw", "zlib.qcow2");
        list.add(base("zlib.qcow2", Map.of()));
        qemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", "src.raw", "zstd.qcow2");
        list.add(base("zstd.qcow2", Map.of()));
        Qcow2CorpusTest.writeMixedData(dir.resolve("base.raw"), 1 << 20, 10);
        qemuImg("create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=32768", "-b", "base.raw", "-F", "raw",
                "ext.qcow2", "1M");
        QemuTools.io(dir, "ext.qcow2", "write -P 0x66 1k 512", "write -z 40k 2k", "write -P 0x67 300k 5k");
        list.add(base("ext.qcow2", Map.of("base.raw", Files.readAllBytes(dir.resolve("base.raw")))));
        qemuImg("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "v3.qcow2", "-F", "qcow2", "over.qcow2", "1M");
        QemuTools.io(dir, "over.qcow2", "write -P 0x77 64k 64k");
        list.add(base("over.qcow2", Map.of("v3.qcow2", Files.readAllBytes(dir.resolve("v3.qcow2")))));
        return list;
    }

    private void qemuImg(String... args) throws Exception {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "qemu-img";
        System.arraycopy(args, 0, cmd, 1, args.length);
        QemuTools.run(dir, cmd);
    }

    /** Reads an image and marks its hot regions: header cluster start, L1 table, L2 tables, data. */
    private Base base(String name, Map<String, byte[]> backings) throws IOException {
        byte[] bytes = Files.readAllBytes(dir.resolve(name));
        ByteBuffer h = ByteBuffer.wrap(bytes);
        int clusterBits = h.getInt(20);
        int clusterSize = 1 << clusterBits;
        List<int[]> hot = new ArrayList<>();
        hot.add(new int[] {0, 112}); // header fields
        hot.add(new int[] {0, Math.min(1024, bytes.length)}); // header, extensions, backing name
        long backingOffset = h.getLong(8);
        if (backingOffset != 0) {
            hot.add(new int[] {(int) backingOffset, (int) backingOffset + h.getInt(16)});
        }
        int l1 = (int) h.getLong(40);
        int l1Size = h.getInt(36);
        hot.add(new int[] {l1, l1 + 8 * l1Size});
        for (int i = 0; i < l1Size; i++) {
            long l2 = Qcow2Layout.l2TableOffset(h.getLong(l1 + 8 * i));
            if (l2 != 0 && l2 + clusterSize <= bytes.length) {
                hot.add(new int[] {(int) l2, (int) l2 + clusterSize});
                hot.add(new int[] {(int) l2, (int) l2 + clusterSize});
            }
        }
        hot.add(new int[] {0, bytes.length}); // anywhere, data and compressed streams included
        return new Base(name, bytes, backings, hot);
    }
}
