package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** The bit layouts of QEMU docs/interop/qcow2.txt, "Cluster mapping" and "Extended L2 Entries". */
@DisplayName("qcow2 table entry bit layouts")
class Qcow2LayoutTest {

    @Test
    @DisplayName("L1 entry: bits 9-55 are the L2 offset; 0-8, 56-62 reserved; 63 the copied flag")
    void l1Entry() {
        long offset = 0x0000_1234_5678_0000L;
        assertEquals(offset, Qcow2Layout.l2TableOffset(offset | 1L << 63 | 0x7fL << 56 | 0x1ff));
        assertEquals(0x00ff_ffff_ffff_fe00L, Qcow2Layout.l2TableOffset(-1L));
        assertEquals(0, Qcow2Layout.l2TableOffset(1L << 63));
    }

    @Test
    @DisplayName("standard descriptor: bit 0 zero, bits 9-55 host offset, bit 62 compressed, bit 63 copied")
    void standardDescriptor() {
        long entry = 1L << 63 | 0x0000_0000_0123_0000L | 1;
        assertFalse(Qcow2Layout.isCompressed(entry));
        assertTrue(Qcow2Layout.zeroFlag(entry));
        assertEquals(0x0123_0000L, Qcow2Layout.standardOffset(entry));
        assertEquals(0, Qcow2Layout.standardOffset(0x3fL << 56 | 0x1fe));
        assertTrue(Qcow2Layout.isCompressed(1L << 62));
    }

    @Test
    @DisplayName("compressed descriptor: x = 62 - (cluster_bits - 8); offset bits 0..x-1, sectors x..61")
    void compressedDescriptor() {
        // 64 KiB clusters: x = 54
        int bits = 16;
        assertEquals(54, Qcow2Layout.compressedSizeShift(bits));
        long entry = 1L << 62 | 5L << 54 | 0x12_3456_789aL;
        assertEquals(0x12_3456_789aL, Qcow2Layout.compressedOffset(entry, bits));
        assertEquals(5, Qcow2Layout.compressedExtraSectors(entry, bits));
        // 6 sectors from the one holding the offset: 6 * 512 - (offset % 512)
        assertEquals(6 * 512 - (0x12_3456_789aL % 512), Qcow2Layout.compressedSpan(entry, bits));
        // the sector count field is cluster_bits - 8 bits wide: 8 bits at 64 KiB
        long full = 1L << 62 | 0xffL << 54;
        assertEquals(255, Qcow2Layout.compressedExtraSectors(full, bits));
        assertEquals(256 * 512, Qcow2Layout.compressedSpan(full, bits));
        // 512 B clusters: x = 61, one bit of sectors; 2 MiB: x = 49, 13 bits
        assertEquals(61, Qcow2Layout.compressedSizeShift(9));
        assertEquals(1, Qcow2Layout.compressedExtraSectors(1L << 62 | 1L << 61, 9));
        assertEquals((1L << 61) - 1, Qcow2Layout.compressedOffset(1L << 62 | -1L >>> 3, 9));
        assertEquals(49, Qcow2Layout.compressedSizeShift(21));
        assertEquals(0x1fff, Qcow2Layout.compressedExtraSectors(-1L, 21));
        assertEquals((1L << 49) - 1, Qcow2Layout.compressedOffset(-1L, 21));
        // bit 62 itself never leaks into the sector count
        assertEquals(0, Qcow2Layout.compressedExtraSectors(1L << 62, bits));
    }

    @Test
    @DisplayName("subcluster bitmap: bits 0-31 allocated, 32-63 zero, subcluster x at bit x and 32+x")
    void subclusterBitmap() {
        long bitmap = 1L | 1L << 31 | 1L << (32 + 5);
        assertTrue(Qcow2Layout.subclusterAllocated(bitmap, 0));
        assertTrue(Qcow2Layout.subclusterAllocated(bitmap, 31));
        assertFalse(Qcow2Layout.subclusterAllocated(bitmap, 5));
        assertTrue(Qcow2Layout.subclusterZero(bitmap, 5));
        assertFalse(Qcow2Layout.subclusterZero(bitmap, 0));
        assertFalse(Qcow2Layout.bitmapContradicts(bitmap));
        assertTrue(Qcow2Layout.bitmapContradicts(1L << 7 | 1L << 39));
    }
}
