package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.UUID;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("MetadataFormat: encode, decode, detect corruption")
class MetadataFormatTest {
    private static final LeafHeader HEADER = new LeafHeader(UUID.randomUUID(), 10_000_000_000L, 65536, "vm.img", 123_456L,
            "/srv/images/base.raw", new BackingIdentity(10_000_000_000L, 1234567890123L, 42), false,
            new LeafHeader.JobRecord(JobKind.STREAM, JobState.PAUSED, 8 << 20, OnError.SKIP, "backing read failed"));

    @Test
    @DisplayName("a header survives a round trip with every field")
    void headerRoundTrip() {
        MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(MetadataFormat.encodeHeader(HEADER, 7));
        assertTrue(slot.valid(), slot.problem());
        assertEquals(HEADER, slot.header());
        assertEquals(7, slot.generation());
    }

    @Test
    @DisplayName("flipping any bit of a header slot is detected")
    void everyFlipDetected() {
        ByteBuffer good = MetadataFormat.encodeHeader(HEADER, 3);
        for (int i = 0; i < MetadataFormat.SLOT_SIZE; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
                b.put(good.duplicate()).flip();
                b.put(i, (byte) (b.get(i) ^ (1 << bit)));
                assertFalse(MetadataFormat.decodeHeader(b).valid(), "flip of byte " + i + " bit " + bit);
            }
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
