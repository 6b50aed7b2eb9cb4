package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Images made by qemu-img and qemu-io on the fly: every byte the reader returns equals
 * {@code qemu-img convert -O raw}, and {@link Qcow2Image#allocation} agrees with
 * {@code qemu-img map --output=json} (data / zero / hole). Skipped without qemu-utils.
 */
@DisplayName("qcow2 corpus made by qemu-img")
class Qcow2CorpusTest {
    @TempDir
    Path dir;

    @BeforeEach
    void qemu() {
        QemuTools.assumeAvailable();
    }

    private static final String[] WRITES = {
        "write -P 0x11 0 100k", "write -P 0x22 5M 1M", "write -P 0x33 31M 4k", "write -P 0x44 12345k 3k",
    };

    private Path image(String name, String size, String... opts) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "create", "-q", "-f", "qcow2"));
        for (String o : opts) {
            cmd.add("-o");
            cmd.add(o);
        }
        cmd.add(name);
        cmd.add(size);
        QemuTools.run(dir, cmd.toArray(String[]::new));
        return dir.resolve(name);
    }

    @Test
    @DisplayName("version 2 (compat=0.10), 64 KiB clusters")
    void version2() throws Exception {
        Path img = image("v2.qcow2", "32M", "compat=0.10");
        QemuTools.io(dir, "v2.qcow2", WRITES);
        verify(img, 2, 65536);
    }

    @Test
    @DisplayName("version 3 with 512 B, 4 KiB, 64 KiB and 2 MiB clusters, zero clusters")
    void clusterSizes() throws Exception {
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            String name = "v3-" + cs + ".qcow2";
            Path img = image(name, "32M", "cluster_size=" + cs);
            QemuTools.io(dir, name, WRITES);
            QemuTools.io(dir, name, "write -z 5M 512k", "write -z 20M 4M", "write -P 0x55 20M 4k");
            verify(img, 3, cs);
        }
    }

    @Test
    @DisplayName("qemu-img convert -c with zlib and with zstd")
    void compressed() throws Exception {
        Path raw = dir.resolve("src.raw");
        writeMixedData(raw, 6 << 20, 7);
        for (String type : new String[] {"zlib", "zstd"}) {
            for (int cs : type.equals("zlib") ? new int[] {4096, 65536} : new int[] {65536, 2 << 20}) {
                String name = "c-" + type + "-" + cs + ".qcow2";
                QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                        "compression_type=" + type + ",cluster_size=" + cs, "src.raw", name);
                try (Qcow2Image q = Qcow2Image.openFile(dir.resolve(name), Qcow2Options.DEFAULT)) {
                    assertEquals(type, q.chain().get(0).compression());
                }
                verify(dir.resolve(name), 3, cs);
            }
        }
        // compressed clusters have no subclusters, also in an image with extended L2 entries
        QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on",
                "src.raw", "c-ext.qcow2");
        QemuTools.io(dir, "c-ext.qcow2", "write -P 0x19 100k 3k", "write -z 1M 2k");
        verify(dir.resolve("c-ext.qcow2"), 3, 65536);
    }

    @Test
    @DisplayName("extended L2 entries: writes smaller than a subcluster, zero subclusters, over a backing")
    void extendedL2() throws Exception {
        Path base = dir.resolve("base.raw");
        writeMixedData(base, 8 << 20, 3);
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=65536",
                "-b", "base.raw", "-F", "raw", "ext.qcow2", "8M");
        QemuTools.io(dir, "ext.qcow2", "write -P 0x61 1k 512", "write -P 0x62 70000 3000", "write -z 200k 8k",
                "write -P 0x63 1M 2k", "write -z 1030k 2k", "write -P 0x64 3M 200k");
        Path alone = image("ext-alone.qcow2", "8M", "extended_l2=on", "cluster_size=32768");
        QemuTools.io(dir, "ext-alone.qcow2", "write -P 0x71 512 512", "write -z 5k 1k", "write -P 0x72 100k 3k");
        verify(dir.resolve("ext.qcow2"), 3, 65536);
        verify(alone, 3, 32768);
    }

    @Test
    @DisplayName("preallocation=metadata")
    void preallocated() throws Exception {
        Path img = image("pre.qcow2", "16M", "preallocation=metadata");
        QemuTools.io(dir, "pre.qcow2", "write -P 0x31 1M 70k", "write -z 4M 128k");
        verify(img, 3, 65536);
    }

    @Test
    @DisplayName("a chain of three qcow2 layers with relative names over a shorter raw base")
    void chain() throws Exception {
        Files.createDirectories(dir.resolve("base"));
        Files.createDirectories(dir.resolve("a"));
        writeMixedData(dir.resolve("base/base.raw"), 6 << 20, 11);
        QemuTools.run(dir.resolve("a"), "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base/base.raw", "-F", "raw",
                "l1.qcow2", "8M");
        QemuTools.io(dir.resolve("a"), "l1.qcow2", "write -P 0x81 1M 64k", "write -z 2M 64k", "write -P 0x82 7M 4k");
        QemuTools.run(dir.resolve("a"), "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                "-b", "l1.qcow2", "-F", "qcow2", "l2.qcow2", "8M");
        QemuTools.io(dir.resolve("a"), "l2.qcow2", "write -P 0x91 1M 4k", "write -z 3M 8k", "write -P 0x92 2M 4k");
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "a/l2.qcow2", "-F", "qcow2", "top.qcow2", "10M");
        QemuTools.io(dir, "top.qcow2", "write -P 0xa1 4M 64k", "write -P 0xa2 9M 64k");
        verify(dir.resolve("top.qcow2"), 3, 65536);
        try (Qcow2Image q = Qcow2Image.openFile(dir.resolve("top.qcow2"), Qcow2Options.DEFAULT)) {
            List<LayerInfo> chain = q.chain();
            assertEquals(4, chain.size(), chain.toString());
            assertEquals(List.of("qcow2", "qcow2", "qcow2", "raw"), chain.stream().map(LayerInfo::format).toList());
            assertEquals("a/l2.qcow2", chain.get(0).backingName());
            assertEquals("../base/base.raw", chain.get(2).backingName());
            assertEquals(dir.resolve("base/base.raw").toRealPath().toString(), chain.get(3).location());
            assertEquals(4096, chain.get(1).clusterSize());
            assertEquals(4, q.identity().size());
        }
    }

    @Test
    @DisplayName("a backing without a backing format extension is probed, as QEMU does")
    void probedBackingFormat() throws Exception {
        writeMixedData(dir.resolve("p.raw"), 2 << 20, 13);
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "p.raw", "-F", "raw", "mid.qcow2", "2M");
        QemuTools.io(dir, "mid.qcow2", "write -P 0x42 64k 64k");
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "2M");
        QemuTools.io(dir, "top.qcow2", "write -P 0x43 1M 4k");
        for (String name : new String[] {"mid.qcow2", "top.qcow2"}) {
            // rename the backing format extension into an unknown one: the header then names no format
            byte[] b = Files.readAllBytes(dir.resolve(name));
            ByteBuffer h = ByteBuffer.wrap(b);
            int ext = h.getInt(100);
            assertEquals(0xe2792aca, h.getInt(ext));
            h.putInt(ext, 0x12345678);
            Files.write(dir.resolve(name), b);
        }
        verify(dir.resolve("top.qcow2"), 3, 65536);
        try (Qcow2Image q = Qcow2Image.openFile(dir.resolve("top.qcow2"), Qcow2Options.DEFAULT)) {
            assertEquals(List.of("probed:qcow2", "probed:raw"),
                    q.chain().subList(0, 2).stream().map(LayerInfo::backingFormat).toList());
        }
    }

    @Test
    @DisplayName("a sparse 1 TiB image opens at once and reads little metadata")
    void sparseTerabyte() throws Exception {
        Path img = image("big.qcow2", "1T");
        QemuTools.io(dir, "big.qcow2", "write -P 0x12 0 64k", "write -P 0x34 500G 128k", "write -z 700G 1M",
                "write -P 0x56 1023G 4k");
        FileQcow2Source file = FileQcow2Source.open(img);
        CheckedSource counted = new CheckedSource(file.location(), Files.readAllBytes(img));
        file.close();
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            try (Qcow2Image q = Qcow2Image.open(counted, FileQcow2Source.resolver(), Qcow2Options.DEFAULT)) {
                assertEquals(1L << 40, q.virtualSize());
                assertTrue(counted.bytesRead.get() < 128 * 1024, "open read " + counted.bytesRead.get() + " bytes");
                compareMap(q, QemuTools.map(img));
                assertTrue(counted.bytesRead.get() < 1 << 20, "a whole map read " + counted.bytesRead.get() + " bytes");
                assertTrue(q.cachedMetadataBytes() <= Qcow2Options.DEFAULT.l2CacheBytes() + (1 << 16));
                ByteBuffer b = ByteBuffer.allocate(128 * 1024);
                q.read(b, 500L << 30);
                for (byte x : b.array()) {
                    assertEquals(0x34, x);
                }
                b.clear();
                q.read(b, (1023L << 30) - 64 * 1024);
                for (int i = 0; i < b.capacity(); i++) {
                    assertEquals(i >= 64 * 1024 && i < 68 * 1024 ? 0x56 : 0, b.get(i), "byte " + i);
                }
            }
        });
    }

    // ---- helpers ----

    /** Half compressible text, half random, in 64 KiB stripes, with holes. */
    static void writeMixedData(Path file, int size, long seed) throws IOException {
        Random r = new Random(seed);
        byte[] data = new byte[size];
        for (int off = 0; off < size; off += 65536) {
            int kind = r.nextInt(4);
            int n = Math.min(65536, size - off);
            if (kind == 0) {
                byte[] chunk = new byte[n];
                r.nextBytes(chunk);
                System.arraycopy(chunk, 0, data, off, n);
            } else if (kind == 1 || kind == 2) {
                for (int i = 0; i < n; i++) {
                    data[off + i] = (byte) ("corfs qcow2 " + (off / 65536)).charAt(i % 14 % ("corfs qcow2 " + (off / 65536)).length());
                }
            }
            // kind 3: zeros
        }
        Files.write(file, data);
    }

    private void verify(Path img, int version, int clusterSize) throws Exception {
        Path raw = dir.resolve(img.getFileName() + ".converted.raw");
        QemuTools.run(dir, "qemu-img", "convert", "-O", "raw", img.toString(), raw.toString());
        byte[] expected = Files.readAllBytes(raw);
        Files.delete(raw);
        try (Qcow2Image q = Qcow2Image.openFile(img, Qcow2Options.DEFAULT.withL2CacheBytes(256 * 1024))) {
            assertEquals(version, q.chain().get(0).version());
            assertEquals(clusterSize, q.chain().get(0).clusterSize());
            assertEquals(expected.length, q.virtualSize(), img + " virtual size");
            // sequential reads of odd sizes
            byte[] got = new byte[expected.length];
            Random r = new Random(1);
            for (int off = 0; off < got.length; ) {
                int n = Math.min(got.length - off, 1 + r.nextInt(3 << 20));
                q.read(ByteBuffer.wrap(got, off, n), off);
                off += n;
            }
            assertArrayEquals(expected, got, img + ": bytes differ from qemu-img convert");
            // random reads from four threads at once
            ExecutorService pool = Executors.newFixedThreadPool(4, t -> new Thread(t, "qcow2-test-reader"));
            try {
                List<Future<?>> futures = new ArrayList<>();
                for (int t = 0; t < 4; t++) {
                    long seed = t;
                    futures.add(pool.submit(() -> {
                        Random rr = new Random(seed);
                        for (int i = 0; i < 40; i++) {
                            int off = rr.nextInt(expected.length);
                            int n = 1 + rr.nextInt(Math.min(expected.length - off, 300_000));
                            ByteBuffer b = ByteBuffer.allocateDirect(n);
                            q.read(b, off);
                            for (int k = 0; k < n; k++) {
                                if (b.get(k) != expected[off + k]) {
                                    throw new AssertionError(img + ": concurrent read differs at " + (off + k));
                                }
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : futures) {
                    f.get(120, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
                assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
            }
            compareMap(q, QemuTools.map(img));
        }
    }

    static void compareMap(Qcow2Image q, List<QemuTools.MapExtent> extents) throws IOException {
        long covered = 0;
        for (QemuTools.MapExtent e : extents) {
            assertEquals(covered, e.start(), "qemu-img map is not contiguous");
            long pos = e.start();
            while (pos < e.start() + e.length()) {
                Allocation a = q.allocation(pos, e.start() + e.length() - pos);
                assertEquals(e.expected(), a.kind(), "allocation at " + pos + " (qemu: " + e + ")");
                pos += a.length();
            }
            covered = e.start() + e.length();
        }
        assertEquals(q.virtualSize(), covered);
    }

}
