package corfs.backing.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A qcow2 header with its extensions, parsed and checked (QEMU docs/interop/qcow2.txt, "Header" and
 * "Header extensions"). Everything a read relies on is checked here, once: after {@link #read} the L1
 * and refcount tables lie inside the file, overlap neither the header nor each other, and no size
 * computed from the header overflows. Immutable.
 *
 * <p>Where the specification leaves a choice we do what QEMU's {@code qcow2_do_open} does, and say so
 * at the check; where we are stricter than QEMU (tables past the end of the file, which QEMU would read
 * as zeros; the corrupt bit, which QEMU accepts read-only) the issue asks for it and the comment says so.
 */
final class Qcow2Header {
    static final int MAGIC = 0x514649fb; // "QFI\xfb"
    static final int MIN_CLUSTER_BITS = 9;
    /** QEMU's implementation limit (the spec allows more): 2 MiB clusters. */
    static final int MAX_CLUSTER_BITS = 21;
    /** QEMU's QCOW_MAX_L1_SIZE, 32 MiB of L1 entries. */
    static final long MAX_L1_ENTRIES = (32L << 20) / 8;
    /** QEMU's QCOW_MAX_REFTABLE_SIZE, 8 MiB. */
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    /** QEMU's QCOW_MAX_SNAPSHOTS. */
    static final long MAX_SNAPSHOTS = 65536;
    /** Spec "Header", backing_file_size: not longer than 1023 bytes. */
    static final int MAX_BACKING_NAME = 1023;

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTL2 = 1L << 4;
    static final long INCOMPAT_KNOWN = (1L << 5) - 1;

    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xe2792aca;
    static final int EXT_FEATURE_TABLE = 0x6803f857;
    static final int EXT_BITMAPS = 0x23852875;
    static final int EXT_CRYPTO = 0x0537be77;
    static final int EXT_DATA_FILE = 0x44415441;

    final String location;
    final long fileSize;
    final int version;
    final int clusterBits;
    final int clusterSize;
    /** The header's size field rounded down to 512 bytes, as QEMU exposes it (total_sectors × 512). */
    final long virtualSize;
    final long l1Entries;
    final long l1Offset;
    final long refcountTableOffset;
    final long refcountTableBytes;
    final long incompatible;
    final boolean extendedL2;
    final Compression compression;
    /** L2 entries per table: cluster / 8, or cluster / 16 with extended L2 entries. */
    final int l2Bits;
    final String backingName;
    final String backingFormat;

    private Qcow2Header(Builder b) {
        location = b.location;
        fileSize = b.fileSize;
        version = b.version;
        clusterBits = b.clusterBits;
        clusterSize = 1 << b.clusterBits;
        virtualSize = b.virtualSize;
        l1Entries = b.l1Entries;
        l1Offset = b.l1Offset;
        refcountTableOffset = b.refcountTableOffset;
        refcountTableBytes = b.refcountTableBytes;
        incompatible = b.incompatible;
        extendedL2 = b.extendedL2;
        compression = b.compression;
        l2Bits = b.clusterBits - (b.extendedL2 ? 4 : 3);
        backingName = b.backingName;
        backingFormat = b.backingFormat;
    }

    private static final class Builder {
        String location;
        long fileSize;
        int version;
        int clusterBits;
        long virtualSize;
        long l1Entries;
        long l1Offset;
        long refcountTableOffset;
        long refcountTableBytes;
        long incompatible;
        boolean extendedL2;
        Compression compression = Compression.ZLIB;
        String backingName;
        String backingFormat;
    }

    /** Whether {@code source} starts with the qcow2 magic (a probe, as QEMU does without a format). */
    static boolean looksLikeQcow2(Qcow2Source source) throws IOException {
        if (source.size() < 4) {
            return false;
        }
        ByteBuffer b = ByteBuffer.allocate(4);
        source.readFully(b, 0);
        return b.getInt(0) == MAGIC;
    }

    /** Reads and checks the header of {@code source}; refuses with the reason. */
    static Qcow2Header read(Qcow2Source source) throws IOException {
        Builder b = new Builder();
        b.location = source.location();
        b.fileSize = source.size();
        String where = b.location + ": ";
        if (b.fileSize < 72) {
            throw refuse(where, "not a qcow2 image (" + b.fileSize + " bytes, shorter than a header)");
        }
        ByteBuffer h = ByteBuffer.allocate(104);
        h.limit((int) Math.min(104, b.fileSize));
        source.readFully(h, 0);
        h.clear();
        if (h.getInt(0) != MAGIC) {
            throw refuse(where, "not a qcow2 image (bad magic)");
        }
        b.version = h.getInt(4);
        if (b.version != 2 && b.version != 3) {
            throw refuse(where, "unsupported qcow2 version " + Integer.toUnsignedString(b.version));
        }
        long backingOffset = h.getLong(8);
        long backingSize = Integer.toUnsignedLong(h.getInt(16));
        long clusterBits = Integer.toUnsignedLong(h.getInt(20));
        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw refuse(where, "cluster_bits " + clusterBits + " out of range " + MIN_CLUSTER_BITS + ".."
                    + MAX_CLUSTER_BITS + " (512 B to 2 MiB clusters)");
        }
        b.clusterBits = (int) clusterBits;
        long clusterSize = 1L << clusterBits;
        long size = h.getLong(24);
        long cryptMethod = Integer.toUnsignedLong(h.getInt(32));
        b.l1Entries = Integer.toUnsignedLong(h.getInt(36));
        b.l1Offset = h.getLong(40);
        b.refcountTableOffset = h.getLong(48);
        long refcountClusters = Integer.toUnsignedLong(h.getInt(56));
        long snapshots = Integer.toUnsignedLong(h.getInt(60));
        long snapshotsOffset = h.getLong(64);

        long headerLength = 72;
        int compressionType = 0;
        if (b.version == 3) {
            if (b.fileSize < 104) {
                throw refuse(where, "version 3 header truncated (" + b.fileSize + " bytes)");
            }
            b.incompatible = h.getLong(72);
            // compatible_features (lazy refcounts) concern writers only: ignored
            long refcountOrder = Integer.toUnsignedLong(h.getInt(96));
            headerLength = Integer.toUnsignedLong(h.getInt(100));
            if (headerLength < 104) {
                throw refuse(where, "version 3 header length " + headerLength + " is shorter than 104 bytes");
            }
            if (refcountOrder > 6) {
                throw refuse(where, "refcount_order " + refcountOrder + " exceeds 6");
            }
        }
        if (headerLength > clusterSize || headerLength > b.fileSize) {
            // QEMU: "qcow2 header exceeds cluster size"
            throw refuse(where, "header length " + headerLength + " exceeds the first cluster or the file");
        }
        // The first cluster, or as much of it as the file holds: extensions and the backing name live here.
        int firstLen = (int) Math.min(clusterSize, b.fileSize);
        ByteBuffer first = ByteBuffer.allocate(firstLen);
        source.readFully(first, 0);
        first.clear();
        if (headerLength > 104) {
            compressionType = first.get(104) & 0xff; // spec "Additional fields": byte 104, present if length > 104
        }

        // --- feature bits (spec "Header", incompatible_features) ---
        Map<Long, String> featureNames = new HashMap<>();
        String backingFormat = null;
        // --- header extensions (spec "Header extensions"): from header_length to the backing name or
        // the end of the first cluster, as QEMU's qcow2_read_extensions bounds them, for version 2 too ---
        {
            long end = backingOffset != 0 ? backingOffset : clusterSize;
            end = Math.min(end, firstLen);
            long off = headerLength;
            boolean cryptoExt = false;
            while (off < end) {
                if (off + 8 > firstLen) {
                    throw refuse(where, "header extension at " + off + " runs past the first cluster");
                }
                int type = first.getInt((int) off);
                long len = Integer.toUnsignedLong(first.getInt((int) off + 4));
                off += 8;
                if (len > end - off) {
                    // QEMU: "Header extension too large"
                    throw refuse(where, "header extension 0x" + Integer.toHexString(type) + " of " + len
                            + " bytes runs past the extension area");
                }
                if (type == EXT_END) {
                    break;
                }
                int at = (int) off;
                switch (type) {
                    case EXT_BACKING_FORMAT -> {
                        if (len >= 16) { // QEMU: "ext_backing_format: len=%u too large"
                            throw refuse(where, "backing format name of " + len + " bytes is too long");
                        }
                        backingFormat = string(first, at, (int) len, where, "backing format name");
                    }
                    case EXT_FEATURE_TABLE -> {
                        for (int e = at; e + 48 <= at + len; e += 48) {
                            int kind = first.get(e) & 0xff;
                            int bit = first.get(e + 1) & 0xff;
                            if (kind == 0 && bit < 64) {
                                featureNames.put((long) bit, cString(first, e + 2, 46));
                            }
                        }
                    }
                    case EXT_CRYPTO -> cryptoExt = true;
                    case EXT_BITMAPS, EXT_DATA_FILE -> {
                        // bitmaps are for writers; the data file name matters only with the incompatible
                        // bit, which is refused below
                    }
                    default -> {
                        // spec: unknown header extensions can be safely ignored
                    }
                }
                off += (len + 7) & ~7L;
            }
            if (cryptoExt && cryptMethod == 0) {
                // QEMU: "CRYPTO header extension only expected with LUKS encryption method"
                throw refuse(where, "encryption header extension without encryption");
            }
        }
        if (cryptMethod != 0) {
            throw refuse(where, "encrypted image (crypt_method " + cryptMethod
                    + (cryptMethod == 1 ? ", AES" : cryptMethod == 2 ? ", LUKS" : "") + "): not supported");
        }
        long unknown = b.incompatible & ~INCOMPAT_KNOWN;
        if (unknown != 0) {
            List<String> bits = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                if ((unknown >>> i & 1) != 0) {
                    String name = featureNames.get((long) i);
                    bits.add("bit " + i + (name == null || name.isEmpty() ? "" : " (" + name + ")"));
                }
            }
            throw refuse(where, "unknown incompatible features: " + String.join(", ", bits));
        }
        if ((b.incompatible & INCOMPAT_CORRUPT) != 0) {
            // QEMU would still open it read-only; the issue asks to refuse it.
            throw refuse(where, "the image is marked corrupt (incompatible feature bit 1): repair it with qemu-img check -r");
        }
        if ((b.incompatible & INCOMPAT_DATA_FILE) != 0) {
            throw refuse(where, "the image uses an external data file: not supported");
        }
        // The dirty bit (lazy refcounts) only concerns refcounts, which a reader never needs.
        boolean compressionBit = (b.incompatible & INCOMPAT_COMPRESSION) != 0;
        if (compressionBit != (compressionType != 0)) {
            // QEMU validate_compression_type: the bit and the field must agree
            throw refuse(where, "compression type " + compressionType + " disagrees with incompatible bit 3");
        }
        b.compression = switch (compressionType) {
            case 0 -> Compression.ZLIB;
            case 1 -> Compression.ZSTD;
            default -> throw refuse(where, "unknown compression type " + compressionType);
        };
        b.extendedL2 = (b.incompatible & INCOMPAT_EXTL2) != 0;
        if (b.extendedL2 && clusterBits < 14) {
            throw refuse(where, "extended L2 entries need clusters of at least 16 KiB (cluster_bits " + clusterBits + ")");
        }

        // --- sizes ---
        if (size < 0) {
            throw refuse(where, "virtual size " + Long.toUnsignedString(size) + " overflows");
        }
        b.virtualSize = size & ~511L;
        int l2Bits = b.clusterBits - (b.extendedL2 ? 4 : 3);
        long clusters = (b.virtualSize >>> clusterBits) + ((b.virtualSize & (clusterSize - 1)) != 0 ? 1 : 0);
        long l1Needed = (clusters >>> l2Bits) + ((clusters & ((1L << l2Bits) - 1)) != 0 ? 1 : 0);
        if (b.l1Entries > MAX_L1_ENTRIES) {
            throw refuse(where, "L1 table of " + b.l1Entries + " entries is too large (QEMU's limit: " + MAX_L1_ENTRIES + ")");
        }
        if (l1Needed > MAX_L1_ENTRIES) {
            throw refuse(where, "virtual size " + size + " needs more L1 entries than QEMU allows");
        }
        if (b.l1Entries < l1Needed) {
            // QEMU: "L1 table is too small"
            throw refuse(where, "L1 table of " + b.l1Entries + " entries is too small for virtual size " + size);
        }
        // Entries past l1Needed address VM state of internal snapshots, which a disk read never reaches.
        long l1Bytes = b.l1Entries * 8;
        long mask = clusterSize - 1;
        checkTable(where, "L1 table", b.l1Offset, l1Bytes, mask, b.fileSize, clusterSize);
        if (refcountClusters == 0) {
            // QEMU: "Image does not contain a reference count table"
            throw refuse(where, "no refcount table");
        }
        b.refcountTableBytes = refcountClusters << clusterBits;
        if (b.refcountTableBytes > MAX_REFTABLE_BYTES) {
            throw refuse(where, "refcount table of " + refcountClusters + " clusters is too large");
        }
        checkTable(where, "refcount table", b.refcountTableOffset, b.refcountTableBytes, mask, b.fileSize, clusterSize);
        if (l1Bytes > 0 && overlap(b.l1Offset, l1Bytes, b.refcountTableOffset, b.refcountTableBytes)) {
            throw refuse(where, "the L1 table overlaps the refcount table");
        }
        if (snapshots > MAX_SNAPSHOTS) {
            throw refuse(where, snapshots + " snapshots exceed QEMU's limit of " + MAX_SNAPSHOTS);
        }
        if (snapshots > 0 && (snapshotsOffset < clusterSize || (snapshotsOffset & mask) != 0
                || snapshotsOffset >= b.fileSize)) {
            throw refuse(where, "snapshot table offset " + snapshotsOffset + " is invalid");
        }

        // --- backing file (spec "Header": backing_file_offset/size) ---
        if (backingOffset != 0) {
            if (backingOffset < 0 || backingOffset > clusterSize) {
                // QEMU: "Invalid backing file offset"
                throw refuse(where, "backing file name offset " + backingOffset + " is outside the first cluster");
            }
            if (backingSize > MAX_BACKING_NAME) {
                throw refuse(where, "backing file name of " + backingSize + " bytes is too long (max 1023)");
            }
            if (backingSize == 0) {
                throw refuse(where, "empty backing file name");
            }
            if (backingOffset + backingSize > b.fileSize) {
                throw refuse(where, "backing file name runs past the end of the file");
            }
            ByteBuffer name = ByteBuffer.allocate((int) backingSize);
            source.readFully(name, backingOffset);
            b.backingName = string(name, 0, (int) backingSize, where, "backing file name");
            if (b.backingName.indexOf('\0') >= 0) {
                throw refuse(where, "backing file name contains a NUL byte");
            }
            b.backingFormat = backingFormat;
        }
        return new Qcow2Header(b);
    }

    /** A table of {@code bytes} at {@code offset}: aligned, after the header cluster, inside the file. */
    private static void checkTable(String where, String what, long offset, long bytes, long mask, long fileSize,
                                   long clusterSize) throws Qcow2FormatException {
        if (bytes == 0) {
            return;
        }
        if ((offset & mask) != 0) {
            throw refuse(where, what + " offset " + offset + " is not cluster-aligned");
        }
        if (offset < clusterSize) {
            throw refuse(where, what + " at " + offset + " overlaps the header");
        }
        // QEMU reads a table past the end of the file as zeros; we refuse it (the issue: never outside).
        if (offset > fileSize || bytes > fileSize - offset) {
            throw refuse(where, what + " at " + offset + " (" + bytes + " bytes) runs past the end of the file ("
                    + fileSize + " bytes)");
        }
    }

    static boolean overlap(long a, long aLen, long b, long bLen) {
        return a < b + bLen && b < a + aLen;
    }

    private static String string(ByteBuffer buf, int at, int len, String where, String what)
            throws Qcow2FormatException {
        ByteBuffer slice = buf.duplicate().position(at).limit(at + len);
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(slice).toString();
        } catch (CharacterCodingException e) {
            throw refuse(where, what + " is not valid UTF-8");
        }
    }

    private static String cString(ByteBuffer buf, int at, int max) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < max; i++) {
            int c = buf.get(at + i) & 0xff;
            if (c == 0) {
                break;
            }
            s.append(c >= 0x20 && c < 0x7f ? (char) c : '?');
        }
        return s.toString();
    }

    private static Qcow2FormatException refuse(String where, String why) {
        return new Qcow2FormatException(where + why);
    }
}
