package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("MetadataFormat: encode, decode, detect corruption")
class MetadataFormatTest {
    private static final LeafHeader HEADER = new LeafHeader(UUID.randomUUID(), 10_000_000_000L, 65536, "vm.img", 123_456L,
            "/srv/images/base.raw", BackingIdentity.file(10_000_000_000L, 1234567890123L, 42), false,
            new LeafHeader.JobRecord(JobKind.STREAM, JobState.PAUSED, 8 << 20, OnError.SKIP, "backing read failed"));
    /** A header of the kind the network transports will write: a URL SPEC, options, an opaque identity. */
    private static final LeafHeader NETWORK = new LeafHeader(UUID.randomUUID(), 1L << 40, 1 << 21, "disque é.img", 7L,
            "https://user:pw@example.org/images/base.raw?X-Amz-Signature=abc", "raw",
            Map.of("timeout", "30", "header-file", "/etc/corfs/h ü.txt", "connections", "4"),
            BackingIdentity.of("http:1099511627776:\"5f1-abc\"", "size=1099511627776 etag=\"5f1-abc\"", 1L << 40),
            true, LeafHeader.JobRecord.NONE);

    @Test
    @DisplayName("a header survives a round trip with every field, in use or not, written as version 3")
    void headerRoundTrip() {
        for (LeafHeader h : new LeafHeader[] {HEADER, NETWORK, NETWORK.withInUse(true)}) {
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(h, 7));
            assertTrue(slot.valid(), slot.problem());
            assertEquals(h, slot.header());
            assertEquals(h.backingIdentity().describe(), slot.header().backingIdentity().describe());
            assertEquals(h.backingIdentity().size(), slot.header().backingIdentity().size());
            assertEquals(h.backingOptions(), slot.header().backingOptions());
            assertEquals(7, slot.generation());
            assertEquals(MetadataFormat.VERSION, slot.version());
        }
    }

    @Test
    @DisplayName("flipping any bit of a version 2 header slot is detected")
    void everyFlipDetected() {
        for (LeafHeader h : new LeafHeader[] {HEADER, NETWORK}) {
            assertEveryFlipDetected(MetadataFormat.encodeHeader(h, 3));
        }
    }

    private static void assertEveryFlipDetected(ByteBuffer good) {
        for (int i = 0; i < MetadataFormat.SLOT_SIZE; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
                b.put(good.duplicate()).flip();
                b.put(i, (byte) (b.get(i) ^ (1 << bit)));
                assertFalse(MetadataFormat.decodeHeader(b).valid(), "flip of byte " + i + " bit " + bit);
            }
        }
    }

    @Nested
    @DisplayName("version 1 (made by corfs before version 2)")
    class Version1 {
        /** A header slot written by the last release with version 1, and the header it holds. */
        private final LeafHeader golden = new LeafHeader(new UUID(0x0123456789abcdefL, 0xfedcba9876543210L),
                10_000_000_000L, 65536, "vm.img", 123_456L, "/srv/images/base.raw",
                BackingIdentity.file(10_000_000_000L, 1234567890123L, 42), false,
                new LeafHeader.JobRecord(JobKind.STREAM, JobState.PAUSED, 8 << 20, OnError.SKIP, "backing read failed"));

        private ByteBuffer goldenSlot() throws IOException {
            try (InputStream in = MetadataFormatTest.class.getResourceAsStream("v1-header-slot.bin")) {
                return ByteBuffer.wrap(in.readAllBytes());
            }
        }

        @Test
        @DisplayName("a slot written by the last release decodes to the same header: SPEC = path, raw, file identity")
        void decodesGolden() throws IOException {
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(goldenSlot());
            assertTrue(slot.valid(), slot.problem());
            assertEquals(1, slot.version());
            assertEquals(7, slot.generation());
            assertEquals(golden, slot.header());
            assertEquals("raw", slot.header().backingFormat());
            assertEquals(Map.of(), slot.header().backingOptions());
            assertEquals("size=10000000000 mtime_ns=1234567890123 inode=42", slot.header().backingIdentity().describe());
            assertEquals(BackingIdentity.file(10_000_000_000L, 1234567890123L, 42), slot.header().backingIdentity());
        }

        @Test
        @DisplayName("the tests' version 1 encoder is byte-identical to the last release")
        void testEncoderIsFaithful() throws IOException {
            byte[] expected = goldenSlot().array();
            assertArrayEquals(expected, V1Headers.encode(golden, 7).array());
        }

        @Test
        @DisplayName("flipping any bit of a version 1 slot is detected")
        void flips() throws IOException {
            assertEveryFlipDetected(goldenSlot());
        }

        @Test
        @DisplayName("re-encoding a version 1 header writes version 3 with the same content")
        void upgrade() throws IOException {
            LeafHeader h = MetadataFormat.decodeHeader(goldenSlot()).header();
            MetadataFormat.HeaderSlot v2 = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(h, 8));
            assertEquals(MetadataFormat.VERSION, v2.version());
            assertEquals(golden, v2.header());
        }
    }

    @Nested
    @DisplayName("hostile version 2 slots with a valid checksum are refused")
    class Hostile {
        private static final int STRINGS = 96;

        /** Recomputes the CRC, as an attacker who rewrites the slot would. */
        private ByteBuffer reseal(ByteBuffer b) {
            CRC32C crc = new CRC32C();
            crc.update(b.array(), 0, MetadataFormat.SLOT_SIZE - 4);
            b.order(ByteOrder.LITTLE_ENDIAN).putInt(MetadataFormat.SLOT_SIZE - 4, (int) crc.getValue());
            return b.clear();
        }

        private ByteBuffer encoded(LeafHeader h) {
            ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            return b.put(MetadataFormat.encodeHeader(h, 5)).clear();
        }

        /** The offset of the length prefix of the {@code n}-th string (0: data file name). */
        private int stringAt(ByteBuffer b, int n) {
            int pos = STRINGS;
            for (int i = 0; i < n; i++) {
                pos += 2 + Short.toUnsignedInt(b.getShort(pos));
            }
            return pos;
        }

        private void assertRefused(ByteBuffer b, String what) {
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(reseal(b));
            assertFalse(slot.valid(), what + " was accepted: " + slot.header());
            assertFalse(slot.unknownVersion(), what);
            assertTrue(slot.problem().startsWith("header fields out of range"), what + ": " + slot.problem());
        }

        @Test
        @DisplayName("a resealed unchanged slot is accepted (the mutations below are what is refused)")
        void control() {
            assertTrue(MetadataFormat.decodeHeader(reseal(encoded(NETWORK))).valid());
        }

        @Test
        @DisplayName("string lengths past their bound or past the slot")
        void lengths() {
            for (int n = 0; n < 12; n++) {
                for (int len : new int[] {0xFFFE, 4000, 3001, 1025}) {
                    ByteBuffer b = encoded(NETWORK);
                    int at = stringAt(b, n);
                    int was = Short.toUnsignedInt(b.getShort(at));
                    if (len <= was) {
                        continue;
                    }
                    b.putShort(at, (short) len);
                    assertRefused(b, "string " + n + " of length " + len);
                }
            }
        }

        @Test
        @DisplayName("invalid UTF-8, a NUL, a control character in an option value")
        void text() {
            ByteBuffer b = encoded(NETWORK);
            int spec = stringAt(b, 1) + 2;
            b.put(spec + 3, (byte) 0xC3); // a lead byte followed by ASCII
            assertRefused(b, "invalid UTF-8 in the spec");
            b = encoded(NETWORK);
            b.put(spec + 3, (byte) 0);
            assertRefused(b, "NUL in the spec");
            b = encoded(NETWORK);
            b.put(stringAt(b, 0) + 4, (byte) 0);
            assertRefused(b, "NUL in the data file name");
            b = encoded(NETWORK);
            b.put(stringAt(b, 6) + 2, (byte) '\n'); // value of the first option
            assertRefused(b, "newline in an option value");
            b = encoded(NETWORK);
            b.put(stringAt(b, 3) + 2, (byte) ' '); // identity token
            assertRefused(b, "space in the identity token");
            b = encoded(NETWORK);
            b.put(stringAt(b, 2) + 2, (byte) 'R'); // format "raw" -> "Raw"
            assertRefused(b, "upper case format");
        }

        @Test
        @DisplayName("options out of order or repeated, too many, or miscounted")
        void options() {
            Map<String, String> two = new TreeMap<>(Map.of("aa", "1", "ab", "2"));
            LeafHeader h = new LeafHeader(NETWORK.uuid(), NETWORK.virtualSize(), NETWORK.clusterSize(), "x.img", 0,
                    "/b", "raw", two, NETWORK.backingIdentity(), false, LeafHeader.JobRecord.NONE);
            ByteBuffer b = encoded(h);
            b.put(stringAt(b, 7) + 3, (byte) 'a'); // second key "ab" -> "aa"
            assertRefused(b, "a repeated option");
            b = encoded(h);
            b.put(stringAt(b, 5) + 3, (byte) 'c'); // first key "aa" -> "ac" > "ab"
            assertRefused(b, "unsorted options");
            b = encoded(h);
            b.putShort(88, (short) 17);
            assertRefused(b, "17 options");
            b = encoded(h);
            b.putShort(88, (short) 1);
            assertRefused(b, "one option counted, two stored (the rest is not zero)");
            b = encoded(h);
            b.putShort(88, (short) 3);
            assertRefused(b, "three options counted, two stored");
        }

        @Test
        @DisplayName("non-zero reserved bytes or padding, unknown flags, a negative identity size")
        void fixedFields() {
            for (int at : new int[] {52, 59, 90, 92, 4000}) { // 59: job flags beyond bit 0; 60..63 is the job number
                ByteBuffer b = encoded(NETWORK);
                b.put(at, (byte) (b.get(at) | (at == 52 ? 4 : 2))); // 52: bit 1 is the in-use flag
                assertRefused(b, "byte " + at);
            }
            ByteBuffer inUseV2 = encoded(NETWORK.withInUse(true));
            inUseV2.putInt(8, MetadataFormat.VERSION_2);
            assertRefused(inUseV2, "the in-use flag in a version 2 slot");
            ByteBuffer v2 = encoded(NETWORK);
            v2.putInt(8, MetadataFormat.VERSION_2);
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(reseal(v2));
            assertTrue(slot.valid(), "a version 2 slot is read: " + slot.problem());
            assertEquals(NETWORK, slot.header());
            ByteBuffer b = encoded(NETWORK);
            b.putLong(80, -1);
            assertRefused(b, "negative identity size");
        }
    }

    @Nested
    @DisplayName("bounds")
    class Bounds {
        @Test
        @DisplayName("a header with every field at its bound fits; the error is cut at a character boundary")
        void everythingAtItsBound() {
            assertTrue(MetadataFormat.MIN_ERROR_ROOM >= 256, "room for the error: " + MetadataFormat.MIN_ERROR_ROOM);
            Map<String, String> options = new TreeMap<>();
            for (int i = 0; i < MetadataFormat.MAX_OPTIONS; i++) {
                options.put("k" + "x".repeat(28) + String.format("%02d", i), "v".repeat(100));
            }
            int optionBytes = options.entrySet().stream().mapToInt(e -> 4 + e.getKey().length() + e.getValue().length())
                    .sum();
            String spec = "/" + "s".repeat(MetadataFormat.MAX_BACKING_BYTES - optionBytes - 1);
            LeafHeader h = new LeafHeader(UUID.randomUUID(), 1 << 20, 65536, "n".repeat(255), 1, spec,
                    "f".repeat(MetadataFormat.MAX_FORMAT_BYTES), options,
                    BackingIdentity.of("t".repeat(BackingIdentity.MAX_TOKEN_BYTES),
                            "d".repeat(BackingIdentity.MAX_DESCRIPTION_BYTES), 1 << 20),
                    false, new LeafHeader.JobRecord(JobKind.COMMIT, JobState.FAILED, 0, OnError.STOP, "é".repeat(400)));
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(h, 1));
            assertTrue(slot.valid(), slot.problem());
            String error = slot.header().job().error();
            assertTrue(error.length() * 2 >= MetadataFormat.MIN_ERROR_ROOM - 1 && error.chars().allMatch(c -> c == 'é'),
                    "error cut to " + error.length() + " characters");
            assertEquals(h.withJob(slot.header().job()), slot.header());
        }

        @Test
        @DisplayName("the longest version 1 path still upgrades: version 2 keeps its bound")
        void longestV1PathUpgrades() {
            String spec = "/" + "p".repeat(2999);
            LeafHeader h = new LeafHeader(UUID.randomUUID(), 1 << 20, 65536, "n".repeat(255), 1, spec,
                    BackingIdentity.file(Long.MAX_VALUE, Long.MIN_VALUE, Long.MIN_VALUE), false,
                    new LeafHeader.JobRecord(JobKind.STREAM, JobState.FAILED, 0, OnError.STOP, "e".repeat(600)));
            MetadataFormat.HeaderSlot v1 = MetadataFormat.decodeHeader(V1Headers.encode(h.withJob(
                    h.job()), 1));
            assertTrue(v1.valid(), v1.problem());
            MetadataFormat.HeaderSlot v2 = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(v1.header(), 2));
            assertTrue(v2.valid(), v2.problem());
            assertEquals(spec, v2.header().backingSpec());
        }

        @Test
        @DisplayName("a header out of bounds is refused when encoded, never written")
        void outOfBounds() {
            String longSpec = "/" + "x".repeat(MetadataFormat.MAX_SPEC_BYTES);
            assertThrows(IllegalArgumentException.class, () -> MetadataFormat.encodeHeader(new LeafHeader(
                    UUID.randomUUID(), 1, 4096, "a", 0, longSpec, HEADER.backingIdentity(), false,
                    LeafHeader.JobRecord.NONE), 1));
            for (Map<String, String> bad : java.util.List.of(Map.of("Bad", "1"), Map.of("k", "a\nb"),
                    Map.of("k", "v".repeat(MetadataFormat.MAX_OPTION_VALUE_BYTES + 1)))) {
                assertThrows(IllegalArgumentException.class, () -> MetadataFormat.encodeHeader(new LeafHeader(
                        UUID.randomUUID(), 1, 4096, "a", 0, "/b", "raw", bad, HEADER.backingIdentity(), false,
                        LeafHeader.JobRecord.NONE), 1), bad.toString());
            }
            assertThrows(IllegalArgumentException.class, () -> MetadataFormat.encodeHeader(new LeafHeader(
                    UUID.randomUUID(), 1, 4096, "a", 0, "/b", "qcow 2", Map.of(), HEADER.backingIdentity(), false,
                    LeafHeader.JobRecord.NONE), 1));
        }

        @Test
        @DisplayName("a NUL in the job error (a server's message, say) is replaced, never refused")
        void nulInError() {
            LeafHeader h = HEADER.withJob(new LeafHeader.JobRecord(JobKind.STREAM, JobState.FAILED, 0, OnError.STOP,
                    "bad\0reply"));
            MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(h, 1));
            assertTrue(slot.valid(), slot.problem());
            assertEquals("bad?reply", slot.header().job().error());
            assertNull(MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(HEADER.withJob(LeafHeader.JobRecord.NONE),
                    1)).header().job().error());
        }
    }

    @Test
    @DisplayName("bitmap pages round trip, and a page of another leaf or place is refused")
    void pageRoundTrip() {
        long clusters = MetadataFormat.CLUSTERS_PER_PAGE * 2L + 5;
        ClusterBitmap local = new ClusterBitmap(clusters);
        ClusterBitmap dirty = new ClusterBitmap(clusters);
        for (long c = MetadataFormat.CLUSTERS_PER_PAGE; c < clusters; c += 3) {
            local.set(c);
            if (c % 2 == 0) {
                dirty.set(c);
            }
        }
        UUID uuid = UUID.randomUUID();
        ByteBuffer page = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
        MetadataFormat.encodePage(page, 1, 9, uuid, local, dirty);
        MetadataFormat.PageSlot slot = MetadataFormat.decodePageSlot(page, 1, uuid);
        assertTrue(slot.valid(), slot.problem());
        assertEquals(9, slot.sequence());
        ClusterBitmap local2 = new ClusterBitmap(clusters);
        ClusterBitmap dirty2 = new ClusterBitmap(clusters);
        MetadataFormat.loadPage(page, 1, local2, dirty2);
        assertEquals(local.count(MetadataFormat.CLUSTERS_PER_PAGE, 2L * MetadataFormat.CLUSTERS_PER_PAGE),
                local2.count());
        assertEquals(dirty.count(MetadataFormat.CLUSTERS_PER_PAGE, 2L * MetadataFormat.CLUSTERS_PER_PAGE),
                dirty2.count());
        assertFalse(MetadataFormat.decodePageSlot(page, 2, uuid).valid(), "misplaced page");
        assertFalse(MetadataFormat.decodePageSlot(page, 1, UUID.randomUUID()).valid(), "another leaf's page");
        page.put(100, (byte) (page.get(100) ^ 1));
        assertFalse(MetadataFormat.decodePageSlot(page, 1, uuid).valid(), "flipped bit");
        assertTrue(MetadataFormat.decodePageSlot(ByteBuffer.allocate(MetadataFormat.SLOT_SIZE), 0, uuid).empty());
    }

    @Test
    @DisplayName("metadata length follows the cluster count: two header slots and two slots a page")
    void lengths() {
        assertEquals(8192 + 8192, MetadataFormat.fileLength(1));
        assertEquals(8192 + 8192, MetadataFormat.fileLength(MetadataFormat.CLUSTERS_PER_PAGE));
        assertEquals(8192 + 2 * 8192, MetadataFormat.fileLength(MetadataFormat.CLUSTERS_PER_PAGE + 1));
        // a 1 TiB disk of 64 KiB clusters: about 8 MiB of metadata
        long clusters = (1L << 40) / 65536;
        assertTrue(MetadataFormat.fileLength(clusters) < 9L << 20);
    }
}
