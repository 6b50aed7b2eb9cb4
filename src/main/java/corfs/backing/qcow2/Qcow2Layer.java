package corfs.backing.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One qcow2 image of a chain: the two-level lookup from a virtual offset to what is stored for it (QEMU
 * docs/interop/qcow2.txt, "Cluster mapping" and "Extended L2 Entries").
 *
 * <p>Threads: immutable after construction; any number of threads look up and read at once. Tables come
 * through the chain's {@link TableCache}; the L1 table is read in pages of {@value #L1_PAGE_ENTRIES}
 * entries on demand, so opening a 1 TiB image reads nothing but its header.
 *
 * <p>What a lookup checks, where QEMU checks the same ({@code qcow2_get_host_offset}): an L2 table or a
 * data cluster offset that is not cluster-aligned, an extended L2 bitmap that marks a subcluster both
 * allocated and zero or allocates subclusters of an unallocated cluster. What it checks beyond QEMU
 * (which reads past the end of the file as zeros): an L2 table past the end of the file or over the L1 or
 * refcount table. Each is an {@link Qcow2FormatException} on the read or allocation query that touches
 * it, with the layer's location and the offset; nothing is remembered, the next read touching it fails
 * again.
 */
final class Qcow2Layer implements Layer {
    static final int L1_PAGE_ENTRIES = 512;
    /** A {@link #map} call merges at most this many clusters or L2 spans, bounding its work. */
    static final int MAX_UNITS_PER_MAP = 65536;

    private final Qcow2Source source;
    private final Qcow2Header h;
    private final TableCache cache;
    private final int index;
    private final long clusterMask;
    private final int l2Entries;

    Qcow2Layer(Qcow2Source source, Qcow2Header header, TableCache cache, int index) {
        this.source = source;
        this.h = header;
        this.cache = cache;
        this.index = index;
        this.clusterMask = header.clusterSize - 1L;
        this.l2Entries = 1 << header.l2Bits;
    }

    Qcow2Header header() {
        return h;
    }

    @Override
    public long size() {
        return h.virtualSize;
    }

    @Override
    public Qcow2Source source() {
        return source;
    }

    @Override
    public LayerInfo info() {
        return new LayerInfo(source.location(), "qcow2", h.version, h.clusterSize, h.compression.label,
                h.extendedL2, h.virtualSize, h.backingName, h.backingFormat);
    }

    /** A homogeneous piece inside one cluster (or one unallocated L2 span): kind, end, host of its start. */
    private record Unit(MapKind kind, long end, long host) {
    }

    @Override
    public Mapping map(long offset, long max, Cursor cursor) throws IOException {
        assert offset >= 0 && max > 0 && offset + max <= h.virtualSize : offset + "+" + max;
        long end = offset + max;
        Unit first = unitAt(offset, cursor);
        long pos = Math.min(first.end, end);
        if (first.kind == MapKind.COMPRESSED) {
            return new Mapping(MapKind.COMPRESSED, pos - offset, first.host);
        }
        for (int units = 1; pos < end && units < MAX_UNITS_PER_MAP; units++) {
            Unit next = unitAt(pos, cursor);
            if (next.kind != first.kind || (first.kind == MapKind.DATA && next.host != first.host + (pos - offset))) {
                break;
            }
            pos = Math.min(next.end, end);
        }
        return new Mapping(first.kind, pos - offset, first.kind == MapKind.DATA ? first.host : 0);
    }

    private Unit unitAt(long v, Cursor cursor) throws IOException {
        long cluster = v >>> h.clusterBits;
        long l1Index = cluster >>> h.l2Bits;
        int l2Index = (int) (cluster & (l2Entries - 1));
        if (cursor.l1Index != l1Index) {
            long l2Offset = Qcow2Layout.l2TableOffset(l1Entry(l1Index));
            cursor.table = l2Offset == 0 ? null : l2Table(l2Offset, l1Index);
            cursor.l1Index = l1Index;
        }
        long[] table = cursor.table;
        if (table == null) {
            return new Unit(MapKind.UNALLOCATED, (l1Index + 1) << (h.clusterBits + h.l2Bits), 0);
        }
        long clusterStart = cluster << h.clusterBits;
        long clusterEnd = clusterStart + h.clusterSize;
        long inCluster = v - clusterStart;
        long entry = table[h.extendedL2 ? 2 * l2Index : l2Index];
        if (Qcow2Layout.isCompressed(entry)) {
            // spec "Extended L2 Entries": compressed clusters have no subclusters; QEMU ignores the bitmap
            return new Unit(MapKind.COMPRESSED, clusterEnd, entry);
        }
        long hostCluster = Qcow2Layout.standardOffset(entry);
        if (hostCluster != 0 && (hostCluster & clusterMask) != 0) {
            throw damage("cluster offset " + hostCluster + " of guest offset " + clusterStart + " is not cluster-aligned");
        }
        if (!h.extendedL2) {
            // QEMU honours the zero flag whatever the version (qcow2_get_cluster_type); so do we
            if (Qcow2Layout.zeroFlag(entry)) {
                return new Unit(MapKind.ZERO, clusterEnd, 0);
            }
            if (hostCluster == 0) {
                return new Unit(MapKind.UNALLOCATED, clusterEnd, 0);
            }
            return new Unit(MapKind.DATA, clusterEnd, hostCluster + inCluster);
        }
        long bitmap = table[2 * l2Index + 1];
        if (hostCluster == 0 && (bitmap & 0xffff_ffffL) != 0) {
            throw damage("L2 entry of guest offset " + clusterStart + " allocates subclusters of an unallocated cluster");
        }
        if (Qcow2Layout.bitmapContradicts(bitmap)) {
            throw damage("L2 entry of guest offset " + clusterStart + " marks subclusters both allocated and zero");
        }
        int subclusterBits = h.clusterBits - 5;
        int sc = (int) (inCluster >>> subclusterBits);
        MapKind kind = subclusterKind(bitmap, sc);
        int e = sc + 1;
        while (e < 32 && subclusterKind(bitmap, e) == kind) {
            e++;
        }
        return new Unit(kind, clusterStart + ((long) e << subclusterBits),
                kind == MapKind.DATA ? hostCluster + inCluster : 0);
    }

    /** QEMU's order (qcow2_get_subcluster_type): zero wins, then allocated, else fall through. */
    private static MapKind subclusterKind(long bitmap, int sc) {
        if (Qcow2Layout.subclusterZero(bitmap, sc)) {
            return MapKind.ZERO;
        }
        return Qcow2Layout.subclusterAllocated(bitmap, sc) ? MapKind.DATA : MapKind.UNALLOCATED;
    }

    @Override
    public int clusterSize() {
        return h.clusterSize;
    }

    @Override
    public void readCompressed(long descriptor, byte[] cluster) throws IOException {
        assert cluster.length == h.clusterSize : cluster.length;
        long at = Qcow2Layout.compressedOffset(descriptor, h.clusterBits);
        long span = Qcow2Layout.compressedSpan(descriptor, h.clusterBits);
        if (at >= h.fileSize) {
            throw damage("compressed cluster at " + at + " is beyond the end of the file (" + h.fileSize + " bytes)");
        }
        // The last sector may run past the end of the file (QEMU reads the missing tail as zeros; the
        // data itself ends earlier): read what the file has.
        int len = (int) Math.min(span, h.fileSize - at);
        byte[] src = ScratchArrays.take(2 * h.clusterSize); // the descriptor spans at most two clusters
        try {
            source.readFully(ByteBuffer.wrap(src, 0, len), at);
            try {
                h.compression.decompress(src, len, cluster);
            } catch (IOException e) {
                throw damage("compressed cluster at " + at + " (" + h.compression.label + "): " + e.getMessage(), e);
            }
        } finally {
            ScratchArrays.give(src);
        }
    }

    /** Most compressed bytes one {@link #readCompressedRun} reads in one request. */
    static final int RUN_BYTES = 1 << 20;
    /** Largest gap between two compressed clusters that still joins them in one request. */
    static final int RUN_GAP = 64 * 1024;

    /**
     * The end of the file range {@code [start, end)} grown to take in the compressed cluster
     * {@code descriptor}, or -1 if it does not belong in the same request: it starts before
     * {@code start} or past the end of the file, or lies over {@link #RUN_GAP} past {@code end}, or the
     * range would exceed {@link #RUN_BYTES}. A run starts with {@code start == end ==} the first
     * cluster's offset.
     */
    long extendRun(long start, long end, long descriptor) {
        long at = Qcow2Layout.compressedOffset(descriptor, h.clusterBits);
        if (at < start || at >= h.fileSize || at - end > RUN_GAP) {
            return -1;
        }
        long stop = at + Math.min(Qcow2Layout.compressedSpan(descriptor, h.clusterBits), h.fileSize - at);
        long newEnd = Math.max(end, stop);
        return newEnd - start > RUN_BYTES ? -1 : newEnd;
    }

    /**
     * Decompresses the whole clusters {@code descriptors[0, count)} into {@code dst}, one after the other,
     * their compressed bytes read in one request of {@code [start, end)} (built with {@link #extendRun}):
     * a stream of an image written by {@code qemu-img convert -c}, whose compressed clusters lie in guest
     * order, costs one round trip per megabyte instead of one per cluster over a network transport.
     */
    void readCompressedRun(long[] descriptors, int count, long start, long end, ByteBuffer dst) throws IOException {
        assert end - start <= RUN_BYTES && end <= h.fileSize && dst.remaining() >= count * h.clusterSize;
        byte[] run = ScratchArrays.take(RUN_BYTES);
        byte[] src = ScratchArrays.take(2 * h.clusterSize);
        byte[] cluster = ScratchArrays.take(h.clusterSize);
        try {
            source.readFully(ByteBuffer.wrap(run, 0, (int) (end - start)), start);
            for (int i = 0; i < count; i++) {
                long at = Qcow2Layout.compressedOffset(descriptors[i], h.clusterBits);
                int len = (int) Math.min(Qcow2Layout.compressedSpan(descriptors[i], h.clusterBits), h.fileSize - at);
                System.arraycopy(run, (int) (at - start), src, 0, len);
                try {
                    h.compression.decompress(src, len, cluster);
                } catch (IOException e) {
                    throw damage("compressed cluster at " + at + " (" + h.compression.label + "): " + e.getMessage(), e);
                }
                dst.put(cluster, 0, h.clusterSize);
            }
        } finally {
            ScratchArrays.give(cluster);
            ScratchArrays.give(src);
            ScratchArrays.give(run);
        }
    }

    /** The host range {@code [host, host + len)} of a data read, checked to lie inside the file. */
    void checkData(long host, long len) throws Qcow2FormatException {
        if (host > h.fileSize - len) {
            throw damage("data at " + host + " (" + len + " bytes) is beyond the end of the file (" + h.fileSize + " bytes)");
        }
    }

    private long l1Entry(long l1Index) throws IOException {
        assert l1Index < h.l1Entries;
        long page = l1Index / L1_PAGE_ENTRIES;
        long first = page * L1_PAGE_ENTRIES;
        TableCache.Key key = new TableCache.Key(index, true, page);
        long[] entries = cache.get(key);
        if (entries == null) {
            int n = (int) Math.min(L1_PAGE_ENTRIES, h.l1Entries - first);
            entries = readTable(h.l1Offset + first * 8, n);
            cache.put(key, entries);
        }
        return entries[(int) (l1Index - first)];
    }

    private long[] l2Table(long offset, long l1Index) throws IOException {
        TableCache.Key key = new TableCache.Key(index, false, offset);
        long[] table = cache.get(key);
        if (table != null) {
            return table;
        }
        String which = "L2 table at " + offset + " (L1 index " + l1Index + ")";
        if ((offset & clusterMask) != 0) {
            throw damage(which + " is not cluster-aligned");
        }
        if (offset > h.fileSize - h.clusterSize) {
            throw damage(which + " is beyond the end of the file (" + h.fileSize + " bytes)");
        }
        if (Qcow2Header.overlap(offset, h.clusterSize, h.l1Offset, h.l1Entries * 8)) {
            throw damage(which + " overlaps the L1 table");
        }
        if (Qcow2Header.overlap(offset, h.clusterSize, h.refcountTableOffset, h.refcountTableBytes)) {
            throw damage(which + " overlaps the refcount table");
        }
        table = readTable(offset, h.clusterSize / 8);
        cache.put(key, table);
        return table;
    }

    private long[] readTable(long offset, int entries) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(entries * 8);
        source.readFully(b, offset);
        b.flip();
        long[] t = new long[entries];
        b.asLongBuffer().get(t);
        return t;
    }

    private Qcow2FormatException damage(String what) {
        return new Qcow2FormatException(source.location() + ": " + what);
    }

    private Qcow2FormatException damage(String what, Throwable cause) {
        return new Qcow2FormatException(source.location() + ": " + what, cause);
    }
}
