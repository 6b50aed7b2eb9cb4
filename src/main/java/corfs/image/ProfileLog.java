package corfs.image;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingIdentity;
import corfs.io.AtomicReplace;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.zip.CRC32C;

/**
 * The recorded access profile of one leaf, kept beside it in {@code LEAF.corfs-profile}: the clusters
 * the guest waited for the backing to deliver, in the order it first did, each once, with the
 * milliseconds since the mount that fetched it. {@code corfs profile show|export} read it (also while
 * the leaf is mounted: they see it as of the last flush); a mount appends to it.
 *
 * <h2>File format (version 1, big-endian)</h2>
 * <pre>
 * header, {@value #HEADER_BYTES} bytes:
 *   0   8  magic "CORFSPRF"
 *   8   4  version (1)
 *   12  4  cluster size (a power of two, 512 to 2 MiB)
 *   16  8  backing size in bytes
 *   24  2  length N of the backing identity token (1..200)
 *   26  N  the token (printable ASCII); zeros up to byte 252
 *   252 4  CRC-32C of bytes 0..251
 * then records, {@value #RECORD_BYTES} bytes each, append-only:
 *   0   8  cluster index (below ceil(backing size / cluster size))
 *   8   4  milliseconds since the mount that fetched it (0..2^31-1)
 *   12  4  CRC-32C of the header's CRC (4 bytes) followed by bytes 0..11
 * </pre>
 *
 * <h2>Crash behaviour</h2>
 * A new file is written whole (header only) to a temporary file of unpredictable name created with
 * O_EXCL|O_NOFOLLOW, mode 0600, forced, and renamed over the old one; from then on records are only
 * appended at the end of what was valid, and forced with fdatasync by the flusher. A reader keeps
 * everything up to the first record that is torn, fails its checksum, names a cluster out of range or
 * one already named, and drops the rest: a crash loses at most the records appended since the last
 * flush and never makes the file unreadable. A mount opening the file truncates such a tail away before
 * it appends.
 *
 * <h2>Hostile input</h2>
 * The file lies in a directory others may write. It is opened with O_NOFOLLOW and used only when it is a
 * regular file; nothing is allocated by a size read from it (records are read in fixed chunks, at most
 * one per cluster of the disk); a header that is not ours, of another version, of another cluster size or
 * backing makes a mount start a new, empty profile (logged) and {@link #read} refuse it. Messages never
 * quote the file's content.
 *
 * <h2>Threads</h2>
 * One writer: {@link #append} and {@link #close} are called by one thread at a time (the recorder
 * serialises them). {@link #read} opens its own channel and may run at any time, in any process.
 */
public final class ProfileLog implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ProfileLog.class);
    public static final String SUFFIX = ".corfs-profile";
    public static final int VERSION = 1;
    public static final int HEADER_BYTES = 256;
    public static final int RECORD_BYTES = 16;
    private static final byte[] MAGIC = "CORFSPRF".getBytes(StandardCharsets.US_ASCII);
    private static final int CRC_AT = HEADER_BYTES - 4;
    private static final int READ_CHUNK = 64 * RECORD_BYTES * 64; // 64 KiB, a whole number of records
    /** The temporary name does not grow with the leaf's (LeafImage.DERIVED_SUFFIXES bounds the names). */
    private static final AtomicReplace REPLACE = AtomicReplace.durable(".corfs-profile-", "rw-------");

    /** What a profile is about: the backing it was read from and the cluster size of the leaf. */
    public record Header(String identityToken, long backingSize, int clusterSize) {
        public Header {
            if (identityToken == null || identityToken.isEmpty() || identityToken.length() > BackingIdentity.MAX_TOKEN_BYTES
                    || !identityToken.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
                throw new IllegalArgumentException("backing identity token is empty, too long or not printable");
            }
            if (backingSize < 0 || clusterSize < 512 || clusterSize > (2 << 20) || Integer.bitCount(clusterSize) != 1) {
                throw new IllegalArgumentException("bad backing size or cluster size");
            }
        }

        /** The header of a leaf's profile: its recorded backing identity, its size and cluster size. */
        public static Header of(LeafHeader h) {
            return new Header(h.backingIdentity().token(), h.virtualSize(), h.clusterSize());
        }

        public long clusters() {
            return (backingSize + clusterSize - 1) / clusterSize;
        }
    }

    /**
     * A profile as read: {@code count} clusters in profile order ({@code clusters[i]} first fetched
     * {@code millis[i]} ms after its mount). {@code droppedBytes}: bytes after the valid records (a torn
     * or damaged tail), 0 when the file ends cleanly.
     */
    public record Contents(Header header, long[] clusters, int[] millis, int count, long droppedBytes) {
        public long validBytes() {
            return HEADER_BYTES + (long) count * RECORD_BYTES;
        }

        /** In the portable form ({@link AccessProfile#fromClusters}): what {@code corfs profile export} writes. */
        public AccessProfile toAccessProfile() {
            long[] ms = new long[count];
            for (int i = 0; i < count; i++) {
                ms[i] = millis[i];
            }
            return AccessProfile.fromClusters(header.identityToken(), header.backingSize(), header.clusterSize(),
                    clusters, ms, count);
        }
    }

    private final Path path;
    private final FileChannel channel;
    private final Contents loaded;
    private final int headerCrc;
    private long end;
    private final AtomicBoolean closed = new AtomicBoolean();

    private ProfileLog(Path path, FileChannel channel, Contents loaded, int headerCrc) {
        this.path = path;
        this.channel = channel;
        this.loaded = loaded;
        this.headerCrc = headerCrc;
        this.end = loaded.validBytes();
    }

    public static Path pathOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + SUFFIX);
    }

    /**
     * Reads a leaf's recorded profile without changing anything (show, export; the leaf may be mounted),
     * when it describes the leaf's disk: {@code virtualSize} bytes in clusters of {@code clusterSize} (its
     * backing identity may differ: recorded before a set-backing or a commit). A header of another size or
     * cluster size is refused before anything is allocated by what it says (a mount of the leaf would
     * discard it, and a forged one claiming a disk of 2^62 bytes asked for a bitmap of 2^53 bits).
     *
     * @throws CorfsException NOT_FOUND when there is none, INVALID_ARGUMENT when it is not a regular file,
     *         its header is not a valid version-1 header, or describes another disk
     */
    public static Contents read(Path leaf, long virtualSize, int clusterSize) throws IOException {
        return read(leaf, h -> h.backingSize() == virtualSize && h.clusterSize() == clusterSize ? null
                : "it describes another backing size or cluster size (" + h.backingSize() + " bytes in clusters of "
                + h.clusterSize() + ") than the leaf's (" + virtualSize + " bytes in clusters of " + clusterSize
                + "); the leaf's next mount starts a new profile");
    }

    /**
     * Reads a leaf's recorded profile whatever disk its header describes: for callers that wrote it (tests);
     * a header whose cluster count a bitmap cannot hold is refused. Users' commands use
     * {@link #read(Path, long, int)}.
     */
    public static Contents read(Path leaf) throws IOException {
        return read(leaf, h -> null);
    }

    private static Contents read(Path leaf, Function<Header, String> shapeProblem)
            throws IOException {
        Path p = pathOf(leaf);
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            throw new CorfsException(Reason.NOT_FOUND, leaf + " has no recorded profile (" + p + " does not exist)");
        }
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + p + " is not a regular file");
        }
        String untrusted = Sidecars.untrusted(p, leaf);
        if (untrusted != null) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + p + " is not used: " + untrusted);
        }
        try (FileChannel ch = FileChannel.open(p, Set.<OpenOption>of(StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS))) {
            ByteBuffer hb = ByteBuffer.allocate(HEADER_BYTES);
            readAt(ch, hb, 0);
            String problem = headerProblem(hb);
            if (problem != null) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + p + ": " + problem);
            }
            Header h = parseHeader(hb);
            String other = shapeProblem.apply(h);
            if (other == null && (h.clusters() + 63) / 64 > Integer.MAX_VALUE) {
                other = "its header describes a disk of more clusters than corfs handles";
            }
            if (other != null) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + p + ": " + other);
            }
            return readRecords(ch, h, hb.getInt(CRC_AT));
        }
    }

    /**
     * Opens a leaf's profile for appending at mount time. Keeps the valid records of an existing file that
     * describes the same backing ({@code expected}), cutting a torn tail; otherwise (none, not a regular
     * file, a damaged header, another backing identity, size or cluster size) starts a new empty one,
     * saying why in the log.
     *
     * @throws IOException when no profile can be created or opened here (the caller records nothing)
     */
    public static ProfileLog openForAppend(Path leaf, Header expected) throws IOException {
        Path p = pathOf(leaf);
        String why = null;
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            return create(p, expected);
        }
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
            why = "it is not a regular file";
        } else if ((why = Sidecars.untrusted(p, leaf)) != null) {
            // someone else's file: started anew below (the entry replaced, nothing written into it)
        } else {
            FileChannel ch = FileChannel.open(p, Set.<OpenOption>of(StandardOpenOption.READ, StandardOpenOption.WRITE,
                    LinkOption.NOFOLLOW_LINKS));
            try {
                ByteBuffer hb = ByteBuffer.allocate(HEADER_BYTES);
                readAt(ch, hb, 0);
                why = headerProblem(hb);
                if (why == null) {
                    Header found = parseHeader(hb);
                    if (!found.identityToken().equals(expected.identityToken())) {
                        why = "the leaf's backing identity changed since it was recorded";
                    } else if (!found.equals(expected)) {
                        why = "it describes another backing size or cluster size";
                    } else {
                        Contents c = readRecords(ch, found, hb.getInt(CRC_AT));
                        if (c.droppedBytes() > 0) {
                            LOG.info("{}: dropped {} bytes after the {} valid records of its profile (a torn or"
                                    + " damaged tail)", leaf.getFileName(), c.droppedBytes(), c.count());
                            ch.truncate(c.validBytes());
                            ch.force(false);
                        }
                        ProfileLog log = new ProfileLog(p, ch, c, hb.getInt(CRC_AT));
                        ch = null;
                        return log;
                    }
                }
            } finally {
                if (ch != null) {
                    ch.close();
                }
            }
        }
        LOG.info("{}: discarding its recorded profile ({}); recording a new one", leaf.getFileName(), why);
        return create(p, expected);
    }

    /** A new profile of {@code header} with no records, replacing whatever is at {@code p} atomically. */
    private static ProfileLog create(Path p, Header header) throws IOException {
        ByteBuffer hb = headerBytes(header);
        REPLACE.write(p, hb.duplicate());
        FileChannel ch = FileChannel.open(p, Set.<OpenOption>of(StandardOpenOption.READ, StandardOpenOption.WRITE,
                LinkOption.NOFOLLOW_LINKS));
        return new ProfileLog(p, ch, new Contents(header, new long[0], new int[0], 0, 0), hb.getInt(CRC_AT));
    }

    /** The records found when it was opened. */
    public Contents loaded() {
        return loaded;
    }

    public Path path() {
        return path;
    }

    /**
     * Appends {@code n} records and makes them durable (fdatasync). On failure nothing after the last
     * durable end counts: the next append writes there again.
     */
    public void append(long[] clusters, int[] millis, int n) throws IOException {
        if (closed.get()) {
            throw new CorfsException(Reason.IO, "profile " + path + " is closed");
        }
        if (n == 0) {
            return;
        }
        long clusterCount = loaded.header().clusters();
        ByteBuffer b = ByteBuffer.allocate(n * RECORD_BYTES);
        CRC32C crc = new CRC32C();
        for (int i = 0; i < n; i++) {
            assert clusters[i] >= 0 && clusters[i] < clusterCount : "cluster out of range";
            int at = i * RECORD_BYTES;
            b.putLong(at, clusters[i]).putInt(at + 8, Math.max(0, millis[i]));
            b.putInt(at + 12, recordCrc(crc, b, at));
        }
        writeAt(channel, b, end);
        channel.force(false);
        end += (long) n * RECORD_BYTES;
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            channel.close();
        }
    }

    // ------------------------------------------------------------------ format

    static ByteBuffer headerBytes(Header h) {
        ByteBuffer b = ByteBuffer.allocate(HEADER_BYTES);
        byte[] token = h.identityToken().getBytes(StandardCharsets.US_ASCII);
        b.put(MAGIC).putInt(VERSION).putInt(h.clusterSize()).putLong(h.backingSize()).putShort((short) token.length)
                .put(token);
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, CRC_AT);
        b.putInt(CRC_AT, (int) crc.getValue());
        return b.clear();
    }

    /** Why {@code hb} (a whole header) is not a valid version-1 header, or null. */
    private static String headerProblem(ByteBuffer hb) {
        if (hb.position() < HEADER_BYTES) {
            return "it is shorter than its header";
        }
        if (!Arrays.equals(hb.array(), 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            return "it is not a corfs profile";
        }
        CRC32C crc = new CRC32C();
        crc.update(hb.array(), 0, CRC_AT);
        if ((int) crc.getValue() != hb.getInt(CRC_AT)) {
            return "its header fails its checksum";
        }
        if (hb.getInt(8) != VERSION) {
            return "it is of another version";
        }
        int tokenLength = hb.getShort(24) & 0xffff;
        if (tokenLength < 1 || tokenLength > BackingIdentity.MAX_TOKEN_BYTES) {
            return "its header is damaged";
        }
        try {
            parseHeader(hb);
        } catch (IllegalArgumentException e) {
            return "its header is damaged";
        }
        return null;
    }

    private static Header parseHeader(ByteBuffer hb) {
        int tokenLength = hb.getShort(24) & 0xffff;
        String token = new String(hb.array(), 26, Math.min(tokenLength, CRC_AT - 26), StandardCharsets.US_ASCII);
        return new Header(token, hb.getLong(16), hb.getInt(12));
    }

    /** The valid records after the header, in fixed chunks; stops at the first bad one. */
    private static Contents readRecords(FileChannel ch, Header h, int headerCrc) throws IOException {
        long clusterCount = h.clusters();
        long size = ch.size();
        ClusterBitmap seen = new ClusterBitmap(clusterCount);
        long[] clusters = new long[16];
        int[] millis = new int[16];
        int n = 0;
        ByteBuffer chunk = ByteBuffer.allocate(READ_CHUNK);
        CRC32C crc = new CRC32C();
        long pos = HEADER_BYTES;
        boolean bad = false;
        while (!bad && pos + RECORD_BYTES <= size && n < clusterCount) {
            chunk.clear();
            readAt(ch, chunk, pos);
            int whole = chunk.position() / RECORD_BYTES;
            if (whole == 0) {
                break;
            }
            for (int i = 0; i < whole && n < clusterCount; i++) {
                int at = i * RECORD_BYTES;
                long cluster = chunk.getLong(at);
                int ms = chunk.getInt(at + 8);
                if (chunk.getInt(at + 12) != recordCrc(crc, chunk, at, headerCrc) || cluster < 0
                        || cluster >= clusterCount || ms < 0 || !seen.set(cluster)) {
                    bad = true;
                    break;
                }
                if (n == clusters.length) {
                    int grown = (int) Math.min(Integer.MAX_VALUE - 8L, Math.min(clusterCount, 2L * n));
                    clusters = Arrays.copyOf(clusters, grown);
                    millis = Arrays.copyOf(millis, grown);
                }
                clusters[n] = cluster;
                millis[n] = ms;
                n++;
                pos += RECORD_BYTES;
            }
        }
        return new Contents(h, clusters, millis, n, Math.max(0, size - pos));
    }

    private int recordCrc(CRC32C crc, ByteBuffer b, int at) {
        return recordCrc(crc, b, at, headerCrc);
    }

    private static int recordCrc(CRC32C crc, ByteBuffer b, int at, int headerCrc) {
        crc.reset();
        crc.update(headerCrc >>> 24);
        crc.update(headerCrc >>> 16);
        crc.update(headerCrc >>> 8);
        crc.update(headerCrc);
        crc.update(b.array(), b.arrayOffset() + at, 12);
        return (int) crc.getValue();
    }

    /** Reads into {@code b} from {@code pos} until it is full or the file ends. */
    private static void readAt(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        long p = pos;
        while (b.hasRemaining()) {
            int r = ch.read(b, p);
            if (r < 0) {
                return;
            }
            p += r;
        }
    }

    private static void writeAt(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        long p = pos;
        while (b.hasRemaining()) {
            p += ch.write(b, p);
        }
    }
}
