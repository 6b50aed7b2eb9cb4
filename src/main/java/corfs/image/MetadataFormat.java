package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * The byte layout of {@code LEAF.corfs}, version 1. All integers little-endian.
 *
 * <pre>
 * offset 0      header slot 0 (4 KiB)
 * offset 4096   header slot 1 (4 KiB)
 * offset 8192   bitmap page 0, slot 0 (4 KiB); then page 0 slot 1; page 1 slot 0; ...
 * </pre>
 *
 * <p><b>Header slot</b>: magic "CORFSMD\0", version, generation, uuid, sizes, backing identity, flags,
 * job record (kind, state, on_error, job flags: bit 0 = a commit's writer may have changed the backing since
 * its identity was recorded; the job number, unsigned 32 bits; speed), the data file's inode, three length-prefixed strings (data file name, backing path, job error), CRC32C of bytes
 * [0, 4092) in the last four bytes. Both slots are written on every header change, one after the other
 * with an fsync between, so a torn write leaves the other slot intact; the slot with the higher
 * generation wins.
 *
 * <p><b>Bitmap page slot</b>: magic "CBMP", page index, sequence number, the leaf's uuid (low half),
 * then the local bits and the dirty bits of {@link #CLUSTERS_PER_PAGE} clusters, CRC32C last. A page is
 * written to its older slot, so the newer one always survives a torn write; an all-zero slot was never
 * written and means "all clusters clear".
 */
public final class MetadataFormat {
    public static final int VERSION = 1;
    public static final int SLOT_SIZE = 4096;
    public static final long PAGES_OFFSET = 2L * SLOT_SIZE;
    public static final int WORDS_PER_BITMAP = 254;
    /** Clusters covered by one bitmap page: 254 words of local bits and 254 of dirty bits fill a slot. */
    public static final int CLUSTERS_PER_PAGE = WORDS_PER_BITMAP * 64;

    private static final byte[] HEADER_MAGIC = "CORFSMD\0".getBytes(StandardCharsets.US_ASCII);
    private static final int PAGE_MAGIC = 0x504d4243; // "CBMP" little-endian
    private static final int CRC_OFFSET = SLOT_SIZE - 4;
    private static final int STRINGS_OFFSET = 104;
    private static final int PAGE_LOCAL_OFFSET = 24;
    private static final int PAGE_DIRTY_OFFSET = PAGE_LOCAL_OFFSET + WORDS_PER_BITMAP * 8;
    private static final int NULL_STRING = 0xFFFF;
    static final int MAX_ERROR_BYTES = 512;
    static final int MAX_PATH_BYTES = 3000;
    static final int MAX_NAME_BYTES = 255;

    private MetadataFormat() {
    }

    public static long pageCount(long clusters) {
        return (clusters + CLUSTERS_PER_PAGE - 1) / CLUSTERS_PER_PAGE;
    }

    /** The exact length of a metadata file for {@code clusters} clusters. */
    public static long fileLength(long clusters) {
        return PAGES_OFFSET + pageCount(clusters) * 2 * SLOT_SIZE;
    }

    public static long pageSlotOffset(long page, int slot) {
        return PAGES_OFFSET + (page * 2 + slot) * SLOT_SIZE;
    }

    // ---- header ----

    /** A decoded header slot: the header and its generation, or why the slot is unusable. */
    public record HeaderSlot(LeafHeader header, long generation, String problem, boolean unknownVersion) {
        public boolean valid() {
            return problem == null;
        }
    }

    public static ByteBuffer encodeHeader(LeafHeader h, long generation) {
        ByteBuffer b = ByteBuffer.allocate(SLOT_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.put(HEADER_MAGIC);
        b.putInt(VERSION);
        b.putInt(SLOT_SIZE);
        b.putLong(generation);
        b.putLong(h.uuid().getMostSignificantBits());
        b.putLong(h.uuid().getLeastSignificantBits());
        b.putLong(h.virtualSize());
        b.putInt(h.clusterSize());
        b.putInt(h.standalone() ? 1 : 0);
        b.putLong(h.backingIdentity().size());
        b.putLong(h.backingIdentity().mtimeNanos());
        b.putLong(h.backingIdentity().inode());
        b.put((byte) h.job().kind().code());
        b.put((byte) h.job().state().code());
        b.put((byte) h.job().onError().code());
        b.put((byte) (h.job().backingWritten() ? 1 : 0)); // job flags; version 1 wrote 0 here
        b.putInt((int) h.job().id()); // job number, unsigned; version 1 wrote 0 here
        b.putLong(h.job().speed());
        b.putLong(h.dataInode());
        assert b.position() == STRINGS_OFFSET;
        putString(b, h.dataFileName(), MAX_NAME_BYTES);
        putString(b, h.backingPath(), MAX_PATH_BYTES);
        putString(b, h.job().error(), MAX_ERROR_BYTES);
        b.putInt(CRC_OFFSET, crc(b, CRC_OFFSET));
        return b.clear();
    }

    public static HeaderSlot decodeHeader(ByteBuffer slot) {
        ByteBuffer b = slot.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < SLOT_SIZE) {
            return bad("header slot is truncated");
        }
        byte[] magic = new byte[HEADER_MAGIC.length];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, HEADER_MAGIC)) {
            return bad("no corfs header magic");
        }
        if (b.getInt(CRC_OFFSET) != crc(b, CRC_OFFSET)) {
            return bad("header checksum mismatch");
        }
        int version = b.getInt();
        if (version != VERSION) {
            return new HeaderSlot(null, 0, "metadata version " + version + " is not supported (this corfs reads version "
                    + VERSION + ")", true);
        }
        try {
            int slotSize = b.getInt();
            if (slotSize != SLOT_SIZE) {
                return bad("header slot size " + slotSize);
            }
            long generation = b.getLong();
            UUID uuid = new UUID(b.getLong(), b.getLong());
            long virtualSize = b.getLong();
            int clusterSize = b.getInt();
            int flags = b.getInt();
            BackingIdentity identity = new BackingIdentity(b.getLong(), b.getLong(), b.getLong());
            JobKind kind = JobKind.ofCode(b.get());
            JobState state = JobState.ofCode(b.get());
            OnError onError = OnError.ofCode(b.get());
            boolean backingWritten = (b.get() & 1) != 0;
            long jobId = Integer.toUnsignedLong(b.getInt());
            long speed = b.getLong();
            long dataInode = b.getLong();
            String dataName = getString(b);
            String backingPath = getString(b);
            String error = getString(b);
            if (virtualSize <= 0 || !validClusterSize(clusterSize) || (flags & ~1) != 0 || speed < 0
                    || dataName == null || backingPath == null) {
                return bad("header fields out of range");
            }
            LeafHeader h = new LeafHeader(uuid, virtualSize, clusterSize, dataName, dataInode, backingPath, identity,
                    (flags & 1) != 0, new LeafHeader.JobRecord(kind, state, speed, onError, error, jobId,
                    backingWritten));
            return new HeaderSlot(h, generation, null, false);
        } catch (RuntimeException e) {
            return bad("header fields out of range (" + e.getMessage() + ")");
        }
    }

    public static boolean validClusterSize(int size) {
        return size >= 4096 && size <= (2 << 20) && Integer.bitCount(size) == 1;
    }

    // ---- bitmap pages ----

    /** A decoded page slot: its sequence number, or why it is unusable; {@code empty} if never written. */
    public record PageSlot(long sequence, boolean empty, String problem) {
        public boolean valid() {
            return problem == null;
        }
    }

    /**
     * Encodes page {@code page} from the bitmaps, which may change meanwhile. The local bits are copied
     * before the dirty bits, and a dirty bit is stored only with its local bit: the snapshot never holds
     * dirty without local, nor (for a cluster whose dirty bit was raised before its local bit) local
     * without dirty.
     */
    public static void encodePage(ByteBuffer dst, long page, long sequence, UUID uuid,
                                  ClusterBitmap local, ClusterBitmap dirty) {
        long[] dirtyWords = new long[WORDS_PER_BITMAP];
        long[] localWords = new long[WORDS_PER_BITMAP];
        int firstWord = Math.toIntExact(page * WORDS_PER_BITMAP);
        // Local words first, then dirty, and dirty only where local: a write raises a cluster's dirty bit
        // before its local bit (LeafImage#markDirty), so a copy that sees the local bit sees the dirty
        // one too, and a dirty bit raised ahead of its local one is never stored.
        local.copyWords(firstWord, localWords, 0, WORDS_PER_BITMAP);
        dirty.copyWords(firstWord, dirtyWords, 0, WORDS_PER_BITMAP);
        for (int w = 0; w < WORDS_PER_BITMAP; w++) {
            dirtyWords[w] &= localWords[w];
        }
        ByteBuffer b = dst.clear().order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(PAGE_MAGIC);
        b.putInt((int) page);
        b.putLong(sequence);
        b.putLong(uuid.getLeastSignificantBits());
        for (long w : localWords) {
            b.putLong(w);
        }
        for (long w : dirtyWords) {
            b.putLong(w);
        }
        while (b.position() < CRC_OFFSET) {
            b.put((byte) 0);
        }
        b.putInt(CRC_OFFSET, crc(b, CRC_OFFSET));
        b.clear();
    }

    public static PageSlot decodePageSlot(ByteBuffer slot, long page, UUID uuid) {
        ByteBuffer b = slot.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (isAllZero(b)) {
            return new PageSlot(0, true, null);
        }
        if (b.getInt(0) != PAGE_MAGIC) {
            return new PageSlot(0, false, "no bitmap page magic");
        }
        if (b.getInt(CRC_OFFSET) != crc(b, CRC_OFFSET)) {
            return new PageSlot(0, false, "checksum mismatch");
        }
        if (b.getInt(4) != (int) page) {
            return new PageSlot(0, false, "holds page " + b.getInt(4) + " (misplaced)");
        }
        if (b.getLong(16) != uuid.getLeastSignificantBits()) {
            return new PageSlot(0, false, "belongs to another leaf");
        }
        return new PageSlot(b.getLong(8), false, null);
    }

    /** Loads a valid page slot's bits into the bitmaps. */
    public static void loadPage(ByteBuffer slot, long page, ClusterBitmap local, ClusterBitmap dirty) {
        ByteBuffer b = slot.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        long[] localWords = new long[WORDS_PER_BITMAP];
        long[] dirtyWords = new long[WORDS_PER_BITMAP];
        b.position(PAGE_LOCAL_OFFSET);
        for (int i = 0; i < WORDS_PER_BITMAP; i++) {
            localWords[i] = b.getLong();
        }
        b.position(PAGE_DIRTY_OFFSET);
        for (int i = 0; i < WORDS_PER_BITMAP; i++) {
            dirtyWords[i] = b.getLong();
        }
        int firstWord = Math.toIntExact(page * WORDS_PER_BITMAP);
        local.loadWords(firstWord, localWords, 0, WORDS_PER_BITMAP);
        dirty.loadWords(firstWord, dirtyWords, 0, WORDS_PER_BITMAP);
    }

    // ---- helpers ----

    private static HeaderSlot bad(String problem) {
        return new HeaderSlot(null, 0, problem, false);
    }

    private static int crc(ByteBuffer b, int length) {
        CRC32C crc = new CRC32C();
        ByteBuffer view = b.duplicate();
        view.clear().limit(length);
        crc.update(view);
        return (int) crc.getValue();
    }

    private static boolean isAllZero(ByteBuffer b) {
        for (int i = 0; i < SLOT_SIZE; i += 8) {
            if (b.getLong(i) != 0) {
                return false;
            }
        }
        return true;
    }

    private static void putString(ByteBuffer b, String s, int maxBytes) {
        if (s == null) {
            b.putShort((short) NULL_STRING);
            return;
        }
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > maxBytes) {
            bytes = java.util.Arrays.copyOf(bytes, maxBytes); // only the error text is ever this long
        }
        b.putShort((short) bytes.length);
        b.put(bytes);
    }

    private static String getString(ByteBuffer b) {
        int len = Short.toUnsignedInt(b.getShort());
        if (len == NULL_STRING) {
            return null;
        }
        if (len > MAX_PATH_BYTES || b.position() + len > CRC_OFFSET) {
            throw new IllegalArgumentException("string length " + len);
        }
        byte[] bytes = new byte[len];
        b.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
