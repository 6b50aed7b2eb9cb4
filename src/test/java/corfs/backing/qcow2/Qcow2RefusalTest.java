package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Images a reader must refuse, each with a message naming the reason; made from real images, patched. */
@DisplayName("qcow2 images refused with a reason")
class Qcow2RefusalTest {
    @TempDir
    static Path dir;
    static byte[] plain;
    static byte[] withBacking;
    static byte[] compressed;

    @BeforeAll
    static void corpus() throws Exception {
        QemuTools.assumeAvailable();
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "plain.qcow2", "4M");
        QemuTools.io(dir, "plain.qcow2", "write -P 0x5a 64k 64k");
        plain = Files.readAllBytes(dir.resolve("plain.qcow2"));
        Files.write(dir.resolve("base.raw"), new byte[1 << 20]);
        QemuTools.run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "over.qcow2", "4M");
        withBacking = Files.readAllBytes(dir.resolve("over.qcow2"));
        Qcow2CorpusTest.writeMixedData(dir.resolve("src.raw"), 1 << 20, 5);
        QemuTools.run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "src.raw", "c.qcow2");
        compressed = Files.readAllBytes(dir.resolve("c.qcow2"));
    }

    private static byte[] patch(byte[] image, Consumer<ByteBuffer> change) {
        byte[] copy = image.clone();
        change.accept(ByteBuffer.wrap(copy));
        return copy;
    }

    private static String refused(byte[] image) {
        CheckedSource src = new CheckedSource("/img/x.qcow2", image);
        Qcow2FormatException e = assertThrows(Qcow2FormatException.class,
                () -> Qcow2Image.open(src, CheckedSource.resolver(Map.of()), Qcow2Options.DEFAULT).close());
        assertEquals(null, src.violation.get());
        assertTrue(e.getMessage().startsWith("/img/x.qcow2"), e.getMessage());
        return e.getMessage();
    }

    private static void assertRefused(byte[] image, String reason) {
        String m = refused(image);
        assertTrue(m.contains(reason), "expected '" + reason + "' in: " + m);
    }

    @Test
    @DisplayName("header fields: encryption, corrupt bit, unknown and unsupported features, bad numbers")
    void headerFields() {
        assertRefused(patch(plain, b -> b.putInt(32, 2)), "encrypted image (crypt_method 2, LUKS)");
        assertRefused(patch(plain, b -> b.putInt(32, 1)), "encrypted image (crypt_method 1, AES)");
        assertRefused(patch(plain, b -> b.put(79, (byte) 2)), "marked corrupt");
        assertRefused(patch(plain, b -> b.put(79, (byte) 0x80)), "unknown incompatible features: bit 7");
        assertRefused(patch(plain, b -> b.putLong(72, 1L << 40)), "unknown incompatible features: bit 40");
        assertRefused(patch(plain, b -> b.put(79, (byte) 4)), "external data file");
        assertRefused(patch(plain, b -> b.put(79, (byte) 8)), "compression type 0 disagrees");
        assertRefused(patch(plain, b -> b.putInt(0, 0x514649fc)), "bad magic");
        assertRefused(patch(plain, b -> b.putInt(4, 4)), "unsupported qcow2 version 4");
        assertRefused(patch(plain, b -> b.putInt(20, 8)), "cluster_bits 8 out of range");
        assertRefused(patch(plain, b -> b.putInt(20, 22)), "cluster_bits 22 out of range");
        assertRefused(patch(plain, b -> b.putLong(24, -1L)), "overflows");
        assertRefused(patch(plain, b -> b.putLong(24, 1L << 61)), "L1");
        assertRefused(patch(plain, b -> b.putLong(24, 1L << 40)), "too small for virtual size");
        assertRefused(patch(plain, b -> b.putInt(36, 0x7fffffff)), "too large");
        assertRefused(patch(plain, b -> b.putInt(100, 1 << 20)), "header length");
        assertRefused(patch(plain, b -> b.putInt(96, 7)), "refcount_order 7");
        assertRefused(patch(plain, b -> b.putInt(60, 70000)), "snapshots exceed");
    }

    @Test
    @DisplayName("tables outside the file or over each other")
    void tables() {
        long l1 = ByteBuffer.wrap(plain).getLong(40);
        long refcounts = ByteBuffer.wrap(plain).getLong(48);
        assertRefused(patch(plain, b -> b.putLong(40, (long) plain.length)), "runs past the end of the file");
        assertRefused(patch(plain, b -> b.putLong(40, 1L << 50)), "runs past the end of the file");
        assertRefused(patch(plain, b -> b.putLong(40, 0)), "overlaps the header");
        assertRefused(patch(plain, b -> b.putLong(40, l1 + 8)), "not cluster-aligned");
        assertRefused(patch(plain, b -> b.putLong(40, refcounts)), "overlaps the refcount table");
        assertRefused(patch(plain, b -> b.putLong(48, 0)), "refcount table at 0 overlaps the header");
        assertRefused(patch(plain, b -> b.putInt(56, 0)), "no refcount table");
        assertRefused(patch(plain, b -> b.putInt(56, 1 << 20)), "refcount table");
        assertRefused(patch(plain, b -> b.putLong(48, -65536L)), "refcount table");
    }

    @Test
    @DisplayName("header extensions and backing names")
    void extensionsAndBacking() {
        int ext = ByteBuffer.wrap(withBacking).getInt(100); // header_length: first extension here
        assertEquals(0xe2792aca, ByteBuffer.wrap(withBacking).getInt(ext), "backing format extension first");
        assertRefused(patch(withBacking, b -> b.putInt(ext + 4, 0x0fffffff)), "runs past the extension area");
        assertRefused(patch(withBacking, b -> b.putInt(ext + 4, 16)), "too long");
        assertRefused(patch(withBacking, b -> b.put(ext + 8, (byte) 'v').put(ext + 9, (byte) 'h').put(ext + 10, (byte) 'd')),
                "backing format 'vhd' is not supported");
        assertRefused(patch(withBacking, b -> b.putInt(16, 2000)), "too long (max 1023)");
        assertRefused(patch(withBacking, b -> b.putLong(8, 1L << 40)), "outside the first cluster");
        assertRefused(patch(withBacking, b -> b.putInt(16, 0)), "empty backing file name");
        assertRefused(withBacking, "cannot open backing file 'base.raw'");
        assertRefused(patch(plain, b -> b.putInt(ByteBuffer.wrap(plain).getInt(100), 0x0537be77)),
                "encryption header extension without encryption");
    }

    @Test
    @DisplayName("a chain that loops or is deeper than 16")
    void chains() throws IOException {
        CheckedSource self = new CheckedSource("/img/self.qcow2", withBacking);
        Qcow2FormatException loop = assertThrows(Qcow2FormatException.class,
                () -> Qcow2Image.open(self, (from, name) -> self, Qcow2Options.DEFAULT));
        assertTrue(loop.getMessage().contains("backing chain loops"), loop.getMessage());
        byte[] qcow2Backing = patch(withBacking, b -> b.put(ByteBuffer.wrap(withBacking).getInt(100) + 8,
                "qcow2".getBytes(StandardCharsets.US_ASCII)).putInt(ByteBuffer.wrap(withBacking).getInt(100) + 4, 5));
        AtomicInteger opened = new AtomicInteger();
        Qcow2Source.Resolver endless = (from, name) -> new CheckedSource("/img/layer" + opened.incrementAndGet(), qcow2Backing);
        Qcow2FormatException deep = assertThrows(Qcow2FormatException.class,
                () -> Qcow2Image.open(new CheckedSource("/img/top", qcow2Backing), endless, Qcow2Options.DEFAULT));
        assertTrue(deep.getMessage().contains("deeper than 16"), deep.getMessage());
        assertEquals(15, opened.get());
        byte[] base = new byte[1 << 20];
        try (Qcow2Image q = Qcow2Image.open(new CheckedSource("/img/over", withBacking),
                CheckedSource.resolver(Map.of("base.raw", new CheckedSource("/img/base.raw", base))), Qcow2Options.DEFAULT)) {
            assertEquals("raw", q.chain().get(0).backingFormat());
        }
    }

    @Test
    @DisplayName("the dirty bit is fine for reading")
    void dirtyBit() throws IOException {
        try (Qcow2Image q = Qcow2Image.open(new CheckedSource("/img/d", patch(plain, b -> b.put(79, (byte) 1))),
                CheckedSource.resolver(Map.of()), Qcow2Options.DEFAULT)) {
            ByteBuffer b = ByteBuffer.allocate(4);
            q.read(b, 65536);
            assertEquals(0x5a5a5a5a, b.getInt(0));
        }
    }

    @Test
    @DisplayName("a compressed descriptor beyond the file fails the read that touches it, with the reason")
    void compressedBeyondFile() throws IOException {
        ByteBuffer h = ByteBuffer.wrap(compressed);
        long l2 = Qcow2Layout.l2TableOffset(h.getLong((int) h.getLong(40)));
        int at = -1;
        for (int i = 0; i < 8192; i++) {
            if (Qcow2Layout.isCompressed(h.getLong((int) l2 + 8 * i))) {
                at = i;
                break;
            }
        }
        assertTrue(at >= 0, "no compressed cluster in the corpus image");
        int index = at;
        long entry = h.getLong((int) l2 + 8 * index);
        byte[] bad = patch(compressed, b -> b.putLong((int) l2 + 8 * index, (entry & ~((1L << 54) - 1)) | compressed.length));
        CheckedSource src = new CheckedSource("/img/c", bad);
        try (Qcow2Image q = Qcow2Image.open(src, CheckedSource.resolver(Map.of()), Qcow2Options.DEFAULT)) {
            ByteBuffer b = ByteBuffer.allocate(100);
            Qcow2FormatException e = assertThrows(Qcow2FormatException.class, () -> q.read(b, index * 65536L + 10));
            assertTrue(e.getMessage().contains("compressed cluster at " + compressed.length + " is beyond the end"),
                    e.getMessage());
            // the rest of the image still reads
            q.read(ByteBuffer.allocate(100), index == 0 ? 65536 : 0);
        }
        assertEquals(null, src.violation.get());
    }
}
