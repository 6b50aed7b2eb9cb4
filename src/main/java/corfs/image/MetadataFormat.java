package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

/**
 * The byte layout of {@code LEAF.corfs}, version 3 (versions 1 and 2 are still read). All integers
 * little-endian.
 *
 * <pre>
 * offset 0      header slot 0 (4 KiB)
 * offset 4096   header slot 1 (4 KiB)
 * offset 8192   bitmap page 0, slot 0 (4 KiB); then page 0 slot 1; page 1 slot 0; ...
 * </pre>
 *
 * <p><b>Header slot, version 3</b>:
 * <pre>
 *  0  magic "CORFSMD\0"        8  version u32 (3)        12  slot size u32 (4096)   16  generation u64
 * 24  uuid (2 x u64)           40  virtual size u64      48  cluster size u32       52  flags u32 (bit 0 standalone,
 *                                                                                        bit 1 in use)
 * 56  job kind, state, on_error, job flags (u8 each)       60  job number u32         64  job speed u64
 * 72  data file inode u64      80  backing identity size u64                         88  option count u16
 * 90  0 u16                    92  0 u32
 *     job flags: bit 0 = a commit's writer may have changed the backing since its identity was recorded
 *     (see {@link BackingChange}); job number: unsigned, each started job gets the last one plus one
 * 96  strings, each a u16 byte length and UTF-8 bytes: data file name, backing SPEC, backing format,
 *     identity token, identity description, then KEY and VALUE of each option (sorted by KEY, no
 *     duplicates), then the job error (length 0xFFFF: none)
 *     zeros up to 4092            4092  CRC32C of bytes [0, 4092)
 * </pre>
 * <b>Version 2</b> is the same layout without the in-use flag (flags bit 1 is refused there). The flag
 * is why version 3 exists: a corfs that reads only versions 1 and 2 must refuse a leaf whose dirty bits
 * may lag behind its data ({@link LeafHeader#inUse}), not trust them.
 * Every length is bounded (see the {@code MAX_} constants) so that any header whose fields are within
 * bounds fits the slot, the job error text being cut (at a character boundary) to what is left, never
 * less than {@link #MIN_ERROR_ROOM} bytes. A slot is hostile input: the decoder checks the magic, then
 * the CRC, then the version, and refuses a length past its bound or the slot, invalid UTF-8, a NUL in
 * any string, a control character where text is expected, unsorted options, or non-zero padding.
 *
 * <p><b>Header slot, version 1</b> (made by corfs before metadata version 2; read, never written): the
 * same up to offset 56, then backing identity size, mtime ns, inode (3 x u64), job kind, state,
 * on_error, job flags, job number u32 (the last two written as 0 by corfs before job numbers), job speed u64, data file inode u64, and from 104 the strings data file name,
 * backing path, job error; CRC32C last. It decodes to the same {@link LeafHeader}: SPEC = the path,
 * format raw, no options, the file identity from the three fields. The first header write of a
 * writable open writes version 3 (see {@link LeafImage#open}).
 *
 * <p>Both slots are written on every header change, one after the other with an fsync between, so a
 * torn write leaves the other slot intact; the slot with the higher generation wins (the two slots may
 * be of different versions after a crash during the upgrade).
 *
 * <p><b>Bitmap page slot</b>: magic "CBMP", page index, sequence number, the leaf's uuid (low half),
 * then the local bits and the dirty bits of {@link #CLUSTERS_PER_PAGE} clusters, CRC32C last. A page is
 * written to its older slot, so the newer one always survives a torn write; an all-zero slot was never
 * written and means "all clusters clear".
 */
public final class MetadataFormat {
    /** The version this corfs writes. */
    public static final int VERSION = 3;
    /** The version before the in-use flag, still read. */
    public static final int VERSION_2 = 2;
    /** The first version, still read. */
    public static final int VERSION_1 = 1;
    public static final int SLOT_SIZE = 4096;
    public static final long PAGES_OFFSET = 2L * SLOT_SIZE;
    public static final int WORDS_PER_BITMAP = 254;
    /** Clusters covered by one bitmap page: 254 words of local bits and 254 of dirty bits fill a slot. */
    public static final int CLUSTERS_PER_PAGE = WORDS_PER_BITMAP * 64;

    static final int MAX_ERROR_BYTES = 512;
    /** The longest backing SPEC (a path today), in UTF-8 bytes. */
    public static final int MAX_SPEC_BYTES = 3000;
    /** Kept for callers that check a backing path: the SPEC's bound. */
    static final int MAX_PATH_BYTES = MAX_SPEC_BYTES;
    /** The SPEC and the options together: SPEC bytes plus, per option, 4 + KEY bytes + VALUE bytes. */
    public static final int MAX_BACKING_BYTES = 3000;
    static final int MAX_NAME_BYTES = 255;
    public static final int MAX_FORMAT_BYTES = 16;
    public static final int MAX_OPTIONS = 16;
    public static final int MAX_OPTION_KEY_BYTES = 32;
    public static final int MAX_OPTION_VALUE_BYTES = 1024;

    private static final byte[] HEADER_MAGIC = "CORFSMD\0".getBytes(StandardCharsets.US_ASCII);
    private static final int PAGE_MAGIC = 0x504d4243; // "CBMP" little-endian
    private static final int CRC_OFFSET = SLOT_SIZE - 4;
    private static final int V1_STRINGS_OFFSET = 104;
    private static final int V2_STRINGS_OFFSET = 96;
    private static final int PAGE_LOCAL_OFFSET = 24;
    private static final int PAGE_DIRTY_OFFSET = PAGE_LOCAL_OFFSET + WORDS_PER_BITMAP * 8;
    private static final int NULL_STRING = 0xFFFF;
    private static final Pattern FORMAT = Pattern.compile("[a-z0-9][a-z0-9_-]*");
    private static final Pattern OPTION_KEY = Pattern.compile("[a-z][a-z0-9_-]*");
    /** The room a header with every field at its bound leaves for the job error text. */
    static final int MIN_ERROR_ROOM = CRC_OFFSET - (V2_STRINGS_OFFSET + 2 + MAX_NAME_BYTES + 2 + MAX_BACKING_BYTES
            + 2 + MAX_FORMAT_BYTES + 2 + BackingIdentity.MAX_TOKEN_BYTES + 2 + BackingIdentity.MAX_DESCRIPTION_BYTES
            + 2);

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

    /**
     * A decoded header slot: the header, its generation and the version it was written in, or why the
     * slot is unusable.
     */
    public record HeaderSlot(LeafHeader header, long generation, int version, String problem, boolean unknownVersion) {
        public boolean valid() {
            return problem == null;
        }
    }

    /**
     * Checks the backing fields of a header against the bounds of the layout: SPEC non-empty, without
     * NUL, at most {@link #MAX_SPEC_BYTES}; format of {@code [a-z0-9][a-z0-9_-]*}, at most
     * {@link #MAX_FORMAT_BYTES}; at most {@link #MAX_OPTIONS} options, KEY of {@code [a-z][a-z0-9_-]*} at
     * most {@link #MAX_OPTION_KEY_BYTES}, VALUE without control characters at most
     * {@link #MAX_OPTION_VALUE_BYTES}; SPEC and options together at most {@link #MAX_BACKING_BYTES}.
     *
     * @throws IllegalArgumentException saying which bound is broken
     */
    public static void checkBacking(String spec, String format, Map<String, String> options) {
        int specBytes = utf8(spec).length;
        if (spec.isEmpty() || spec.indexOf('\0') >= 0 || specBytes > MAX_SPEC_BYTES) {
            throw new IllegalArgumentException("backing spec is empty, holds a NUL or is longer than "
                    + MAX_SPEC_BYTES + " bytes");
        }
        if (format.length() > MAX_FORMAT_BYTES || !FORMAT.matcher(format).matches()) {
            throw new IllegalArgumentException("backing format '" + format + "' is not a short lower-case word");
        }
        if (options.size() > MAX_OPTIONS) {
            throw new IllegalArgumentException("more than " + MAX_OPTIONS + " backing options");
        }
        int total = specBytes;
        for (Map.Entry<String, String> o : options.entrySet()) {
            String key = o.getKey();
            String value = o.getValue();
            if (key.length() > MAX_OPTION_KEY_BYTES || !OPTION_KEY.matcher(key).matches()) {
                throw new IllegalArgumentException("backing option name '" + key + "' is not a short lower-case word");
            }
            int valueBytes = utf8(value).length;
            if (valueBytes > MAX_OPTION_VALUE_BYTES || value.chars().anyMatch(Character::isISOControl)) {
                throw new IllegalArgumentException("backing option " + key + ": value longer than "
                        + MAX_OPTION_VALUE_BYTES + " bytes or with a control character");
            }
            total += 4 + key.length() + valueBytes;
        }
        if (total > MAX_BACKING_BYTES) {
            throw new IllegalArgumentException("backing spec and options are longer than " + MAX_BACKING_BYTES
                    + " bytes together");
        }
    }

    /**
     * Encodes a header as a version 3 slot (version 2's layout with the in-use flag).
     *
     * @throws IllegalArgumentException if a backing field is out of bounds ({@link #checkBacking}) or the
     *                                  data file name is longer than {@link #MAX_NAME_BYTES}
     */
    public static ByteBuffer encodeHeader(LeafHeader h, long generation) {
        checkBacking(h.backingSpec(), h.backingFormat(), h.backingOptions());
        byte[] name = utf8(h.dataFileName());
        if (name.length > MAX_NAME_BYTES || h.dataFileName().indexOf('\0') >= 0) {
            throw new IllegalArgumentException("data file name is longer than " + MAX_NAME_BYTES + " bytes");
        }
        ByteBuffer b = ByteBuffer.allocate(SLOT_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.put(HEADER_MAGIC);
        b.putInt(VERSION);
        b.putInt(SLOT_SIZE);
        b.putLong(generation);
        b.putLong(h.uuid().getMostSignificantBits());
        b.putLong(h.uuid().getLeastSignificantBits());
        b.putLong(h.virtualSize());
        b.putInt(h.clusterSize());
        b.putInt((h.standalone() ? 1 : 0) | (h.inUse() ? 2 : 0));
        b.put((byte) h.job().kind().code());
        b.put((byte) h.job().state().code());
        b.put((byte) h.job().onError().code());
        b.put((byte) (h.job().backingWritten() ? 1 : 0)); // job flags; version 1 wrote 0 here
        b.putInt((int) h.job().id()); // job number, unsigned; version 1 wrote 0 here
        b.putLong(h.job().speed());
        b.putLong(h.dataInode());
        b.putLong(h.backingIdentity().size());
        b.putShort((short) h.backingOptions().size());
        b.putShort((short) 0);
        b.putInt(0);
        assert b.position() == V2_STRINGS_OFFSET;
        putBytes(b, name);
        putBytes(b, utf8(h.backingSpec()));
        putBytes(b, utf8(h.backingFormat()));
        putBytes(b, utf8(h.backingIdentity().token()));
        putBytes(b, utf8(h.backingIdentity().describe()));
        for (Map.Entry<String, String> o : h.backingOptions().entrySet()) { // sorted: the map is a SortedMap
            putBytes(b, utf8(o.getKey()));
            putBytes(b, utf8(o.getValue()));
        }
        String error = h.job().error();
        if (error == null) {
            b.putShort((short) NULL_STRING);
        } else {
            int room = Math.min(MAX_ERROR_BYTES, CRC_OFFSET - b.position() - 2);
            assert room >= MIN_ERROR_ROOM;
            putBytes(b, truncateUtf8(utf8(error.replace('\0', '?')), room));
        }
        b.putInt(CRC_OFFSET, crc(b, CRC_OFFSET));
        return b.clear();
    }

    /** Decodes a header slot of version 1, 2 or 3; never throws (a slot is hostile input). */
    public static HeaderSlot decodeHeader(ByteBuffer slot) {
        ByteBuffer b = slot.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < SLOT_SIZE) {
            return bad("header slot is truncated");
        }
        b = b.slice().order(ByteOrder.LITTLE_ENDIAN);
        byte[] magic = new byte[HEADER_MAGIC.length];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, HEADER_MAGIC)) {
            return bad("no corfs header magic");
        }
        if (b.getInt(CRC_OFFSET) != crc(b, CRC_OFFSET)) {
            return bad("header checksum mismatch");
        }
        int version = b.getInt();
        if (version != VERSION && version != VERSION_2 && version != VERSION_1) {
            return new HeaderSlot(null, 0, version, "metadata version " + version + " is not supported (this corfs"
                    + " reads versions " + VERSION_1 + " to " + VERSION + ")", true);
        }
        try {
            int slotSize = b.getInt();
            if (slotSize != SLOT_SIZE) {
                return bad("header slot size " + slotSize);
            }
            long generation = b.getLong();
            LeafHeader h = version == VERSION_1 ? decodeV1(b) : decodeV2(b, version == VERSION ? 3 : 1);
            return new HeaderSlot(h, generation, version, null, false);
        } catch (RuntimeException e) {
            return bad("header fields out of range (" + e.getMessage() + ")");
        }
    }

    /**
     * Versions 2 and 3, from offset 24, accepting only the header flags in {@code knownFlags}; throws
     * IllegalArgumentException (or another RuntimeException) if out of range.
     */
    private static LeafHeader decodeV2(ByteBuffer b, int knownFlags) {
        UUID uuid = new UUID(b.getLong(), b.getLong());
        long virtualSize = b.getLong();
        int clusterSize = b.getInt();
        int flags = b.getInt();
        JobKind kind = JobKind.ofCode(b.get());
        JobState state = JobState.ofCode(b.get());
        OnError onError = OnError.ofCode(b.get());
        int jobFlags = b.get();
        long jobId = Integer.toUnsignedLong(b.getInt());
        long speed = b.getLong();
        long dataInode = b.getLong();
        long identitySize = b.getLong();
        int optionCount = Short.toUnsignedInt(b.getShort());
        int zero3 = b.getShort();
        int zero4 = b.getInt();
        if (virtualSize <= 0 || !validClusterSize(clusterSize) || (flags & ~knownFlags) != 0 || speed < 0 || identitySize < 0
                || (jobFlags & ~1) != 0 || zero3 != 0 || zero4 != 0) {
            throw new IllegalArgumentException("fixed fields");
        }
        if (optionCount > MAX_OPTIONS) {
            throw new IllegalArgumentException(optionCount + " backing options");
        }
        String dataName = getText(b, MAX_NAME_BYTES, "data file name");
        String spec = getText(b, MAX_SPEC_BYTES, "backing spec");
        String format = getText(b, MAX_FORMAT_BYTES, "backing format");
        String token = getText(b, BackingIdentity.MAX_TOKEN_BYTES, "identity token");
        String description = getText(b, BackingIdentity.MAX_DESCRIPTION_BYTES, "identity description");
        TreeMap<String, String> options = new TreeMap<>();
        String previous = null;
        for (int i = 0; i < optionCount; i++) {
            String key = getText(b, MAX_OPTION_KEY_BYTES, "option name");
            String value = getText(b, MAX_OPTION_VALUE_BYTES, "option value");
            if (previous != null && key.compareTo(previous) <= 0) {
                throw new IllegalArgumentException("backing options not sorted or repeated");
            }
            options.put(key, value);
            previous = key;
        }
        String error = b.getShort(b.position()) == (short) NULL_STRING ? skipNull(b)
                : getText(b, MAX_ERROR_BYTES, "job error");
        while (b.position() < CRC_OFFSET) {
            if (b.get() != 0) {
                throw new IllegalArgumentException("bytes after the strings");
            }
        }
        if (dataName.isEmpty()) {
            throw new IllegalArgumentException("empty data file name");
        }
        checkBacking(spec, format, options);
        BackingIdentity identity = BackingIdentity.of(token, description, identitySize);
        return new LeafHeader(uuid, virtualSize, clusterSize, dataName, dataInode, spec, format, options, identity,
                (flags & 1) != 0, new LeafHeader.JobRecord(kind, state, speed, onError, error, jobId,
                (jobFlags & 1) != 0), (flags & 2) != 0);
    }

    /** Version 1, from offset 24, exactly as corfs before version 2 read it. */
    private static LeafHeader decodeV1(ByteBuffer b) {
        UUID uuid = new UUID(b.getLong(), b.getLong());
        long virtualSize = b.getLong();
        int clusterSize = b.getInt();
        int flags = b.getInt();
        BackingIdentity identity = BackingIdentity.file(b.getLong(), b.getLong(), b.getLong());
        JobKind kind = JobKind.ofCode(b.get());
        JobState state = JobState.ofCode(b.get());
        OnError onError = OnError.ofCode(b.get());
        boolean backingWritten = (b.get() & 1) != 0; // 0 from a corfs that did not record it
        long jobId = Integer.toUnsignedLong(b.getInt()); // likewise
        long speed = b.getLong();
        long dataInode = b.getLong();
        assert b.position() == V1_STRINGS_OFFSET;
        String dataName = getV1String(b);
        String backingPath = getV1String(b);
        String error = getV1String(b);
        if (virtualSize <= 0 || !validClusterSize(clusterSize) || (flags & ~1) != 0 || speed < 0
                || dataName == null || backingPath == null || backingPath.isEmpty() || backingPath.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("fixed fields");
        }
        return new LeafHeader(uuid, virtualSize, clusterSize, dataName, dataInode, backingPath, identity,
                (flags & 1) != 0, new LeafHeader.JobRecord(kind, state, speed, onError, error, jobId, backingWritten));
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
        return new HeaderSlot(null, 0, 0, problem, false);
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

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static void putBytes(ByteBuffer b, byte[] bytes) {
        b.putShort((short) bytes.length);
        b.put(bytes);
    }

    /** The longest prefix of {@code bytes} of at most {@code max} bytes that ends at a character boundary. */
    private static byte[] truncateUtf8(byte[] bytes, int max) {
        if (bytes.length <= max) {
            return bytes;
        }
        int cut = max;
        while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) {
            cut--;
        }
        return java.util.Arrays.copyOf(bytes, cut);
    }

    private static String skipNull(ByteBuffer b) {
        b.getShort();
        return null;
    }

    /** A version 2 string: bounded, inside the slot, valid UTF-8, no NUL. */
    private static String getText(ByteBuffer b, int maxBytes, String what) {
        int len = Short.toUnsignedInt(b.getShort());
        if (len > maxBytes || b.position() + len > CRC_OFFSET) {
            throw new IllegalArgumentException(what + " length " + len);
        }
        byte[] bytes = new byte[len];
        b.get(bytes);
        String s;
        try {
            s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(what + " is not UTF-8");
        }
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " holds a NUL");
        }
        return s;
    }

    /** A version 1 string, read as version 1 did. */
    private static String getV1String(ByteBuffer b) {
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
