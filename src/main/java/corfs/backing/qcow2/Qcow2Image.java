package corfs.backing.qcow2;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A read-only qcow2 image with its backing chain, read as QEMU reads it (QEMU docs/interop/qcow2.txt):
 * the virtual disk as a flat run of bytes, and what each range is (data, zero, hole).
 *
 * <p>Reading: a cluster allocated in a layer is read there (uncompressed, or decompressed from zlib or
 * zstd); the zero flag and zero subclusters read as zeros without looking further down; anything else
 * falls through to the layer's backing, and past the end of the chain, or past the end of a shorter
 * backing, reads as zeros (spec "Cluster mapping", last paragraph).
 *
 * <p>Chain: each qcow2 header may name a backing file, opened through the {@link Qcow2Source.Resolver}
 * (relative names against the naming image's location), in the format of its backing format extension
 * ({@code raw} or {@code qcow2}); without that extension the format is probed by magic, as QEMU does. At
 * most {@link Qcow2Options#maxChainDepth()} images; a chain that returns to an image already in it is
 * refused.
 *
 * <p>Threads: immutable after {@link #open}; {@link #read} and {@link #allocation} run on any number of
 * threads at once, with no lock held during I/O or decompression (the metadata cache takes its monitor
 * only for a lookup). Every compressed cluster is decompressed by the thread that reads it, so many
 * clusters decompress in parallel; the last few read in part stay decompressed
 * ({@link DecompressedClusters}) for the reads that take a large cluster piece by piece, while a read
 * of a whole cluster decompresses it through a reused array ({@link ScratchArrays}) and keeps nothing.
 *
 * <p>Ownership: the image owns the top source and the backing sources it opened, and closes them all
 * ({@link #close} is idempotent). If {@link #open} fails, it closes the backing sources it opened, and
 * the caller still owns the top source.
 *
 * <p>Damage: open refuses, with the layer and the reason, what makes the whole image unreadable (see
 * {@link Qcow2Header}); damage in a table or a compressed cluster gives an {@link Qcow2FormatException}
 * on every read that touches it, and never a read outside any source.
 */
public final class Qcow2Image implements AutoCloseable {
    private static final byte[] ZEROS = new byte[64 * 1024];
    /** Decompressed clusters kept for reads smaller than a cluster (two 2 MiB clusters). */
    static final long DECOMPRESSED_CACHE_BYTES = 4L << 20;

    private final List<Layer> layers;
    private final List<LayerInfo> chain;
    private final TableCache cache;
    private final DecompressedClusters decompressed = new DecompressedClusters(DECOMPRESSED_CACHE_BYTES);
    private final long virtualSize;
    private final AtomicBoolean closed = new AtomicBoolean();

    private Qcow2Image(List<Layer> layers, List<LayerInfo> chain, TableCache cache) {
        this.layers = List.copyOf(layers);
        this.chain = List.copyOf(chain);
        this.cache = cache;
        this.virtualSize = layers.get(0).size();
    }

    /**
     * Opens {@code top} as qcow2 and its whole backing chain; refuses (with the reason) a damaged or
     * unsupported image anywhere in the chain.
     */
    public static Qcow2Image open(Qcow2Source top, Qcow2Source.Resolver resolver, Qcow2Options options)
            throws IOException {
        TableCache cache = new TableCache(options.l2CacheBytes());
        List<Layer> layers = new ArrayList<>();
        List<LayerInfo> infos = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        Qcow2Source source = top;
        String format = "qcow2";
        try {
            while (true) {
                if (!seen.add("location " + source.location()) || !seen.add("identity " + source.identity())) {
                    throw new Qcow2FormatException("backing chain loops: " + source.location() + " is already in it");
                }
                if (format.equals("raw")) {
                    RawLayer raw = new RawLayer(source);
                    layers.add(raw);
                    infos.add(raw.info());
                    break;
                }
                Qcow2Layer layer = new Qcow2Layer(source, Qcow2Header.read(source), cache, layers.size());
                layers.add(layer);
                Qcow2Header h = layer.header();
                if (h.backingName == null) {
                    infos.add(layer.info());
                    break;
                }
                if (layers.size() >= options.maxChainDepth()) {
                    throw new Qcow2FormatException(source.location() + ": backing chain deeper than "
                            + options.maxChainDepth() + " images");
                }
                String recorded = h.backingFormat;
                if (recorded != null && !recorded.equals("raw") && !recorded.equals("qcow2")) {
                    throw new Qcow2FormatException(source.location() + ": backing format '" + recorded
                            + "' is not supported (raw or qcow2)");
                }
                Qcow2Source next;
                try {
                    next = resolver.open(source, h.backingName);
                } catch (IOException e) {
                    // the name may hold a credential (a URL's user:password@): shown redacted; the cause's
                    // reason (a refused name, a missing file) is kept
                    String message = source.location() + ": cannot open backing file '"
                            + ChainNames.shown(h.backingName) + "': " + e.getMessage();
                    throw e instanceof corfs.CorfsException c && !(e instanceof Qcow2FormatException)
                            ? new corfs.CorfsException(c.reason(), message, e) : new Qcow2FormatException(message, e);
                }
                source = next;
                if (recorded == null) {
                    // No backing format extension: QEMU probes the backing's format; so do we, between the
                    // two formats we read, and say so in the chain.
                    format = Qcow2Header.looksLikeQcow2(next) ? "qcow2" : "raw";
                    recorded = "probed:" + format;
                } else {
                    format = recorded;
                }
                LayerInfo i = layer.info();
                infos.add(new LayerInfo(i.location(), i.format(), i.version(), i.clusterSize(), i.compression(),
                        i.extendedL2(), i.virtualSize(), i.backingName(), recorded));
            }
        } catch (IOException | RuntimeException e) {
            closeQuietly(layers, source, top, e);
            throw e;
        }
        return new Qcow2Image(layers, infos, cache);
    }

    /** Opens a local qcow2 file and its chain of local files with the default options. */
    public static Qcow2Image openFile(java.nio.file.Path path, Qcow2Options options) throws IOException {
        FileQcow2Source top = FileQcow2Source.open(path);
        try {
            return open(top, FileQcow2Source.resolver(), options);
        } catch (IOException | RuntimeException e) {
            top.close();
            throw e;
        }
    }

    private static void closeQuietly(List<Layer> layers, Qcow2Source current, Qcow2Source top, Throwable failure) {
        Set<Qcow2Source> toClose = Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Layer l : layers) {
            toClose.add(l.source());
        }
        toClose.add(current);
        toClose.remove(top);
        for (Qcow2Source s : toClose) {
            try {
                s.close();
            } catch (IOException | RuntimeException e) {
                failure.addSuppressed(e);
            }
        }
    }

    /** The virtual disk's size: the top image's, rounded down to 512 bytes as QEMU exposes it. */
    public long virtualSize() {
        return virtualSize;
    }

    /** Each image of the chain, top first. */
    public List<LayerInfo> chain() {
        return chain;
    }

    /** Each layer's source, top first. */
    List<Qcow2Source> sources() {
        List<Qcow2Source> sources = new ArrayList<>(layers.size());
        for (Layer l : layers) {
            sources.add(l.source());
        }
        return sources;
    }

    /** Each layer's identity now, top first (the hook for the chain's recorded identity). */
    public List<String> identity() throws IOException {
        List<String> ids = new ArrayList<>();
        for (Layer l : layers) {
            ids.add(l.source().identity());
        }
        return ids;
    }

    /** Metadata cache bytes held now (for tests and status). */
    public long cachedMetadataBytes() {
        return cache.usedBytes();
    }

    /**
     * Reads exactly {@code dst.remaining()} bytes of the virtual disk at {@code offset}; the range lies
     * within {@link #virtualSize()}. Damage the read touches throws; nothing is zero-filled instead.
     */
    public void read(ByteBuffer dst, long offset) throws IOException {
        checkRange(offset, dst.remaining());
        ensureOpen();
        int start = dst.position();
        readFrom(0, dst, offset);
        assert dst.position() == dst.limit() : start;
    }

    /**
     * What {@code [offset, offset + max)} begins with, through the whole chain: a kind and its length
     * (at least 1, at most {@code max} and the end of the disk; maybe shorter than the run). {@code offset}
     * lies within {@link #virtualSize()}. A raw layer is data except where its source knows it reads as
     * zeros ({@link Qcow2Source#rawAllocation}, a sparse file's holes): ZERO there, as {@code qemu-img map}
     * shows it ("present", "zero").
     */
    public Allocation allocation(long offset, long max) throws IOException {
        if (max <= 0) {
            throw new IllegalArgumentException("max must be positive: " + max);
        }
        checkRange(offset, 1);
        ensureOpen();
        return allocationFrom(0, offset, Math.min(max, virtualSize - offset));
    }

    private Allocation allocationFrom(int depth, long offset, long max) throws IOException {
        Layer layer = layers.get(depth);
        if (offset >= layer.size()) {
            return new Allocation(Allocation.Kind.HOLE, max);
        }
        if (layer instanceof RawLayer) {
            // a raw layer's own holes read as zeros; QEMU's map shows them "present", "zero" (not a hole of
            // the chain: the raw layer is allocated everywhere as far as the format goes)
            long want = Math.min(max, layer.size() - offset);
            Allocation a = layer.source().rawAllocation(offset, want);
            return new Allocation(a.kind() == Allocation.Kind.DATA ? Allocation.Kind.DATA : Allocation.Kind.ZERO,
                    Math.min(a.length(), want));
        }
        Layer.Mapping m = layer.map(offset, Math.min(max, layer.size() - offset));
        return switch (m.kind()) {
            case DATA, COMPRESSED -> new Allocation(Allocation.Kind.DATA, m.length());
            case ZERO -> new Allocation(Allocation.Kind.ZERO, m.length());
            case UNALLOCATED -> depth + 1 < layers.size()
                    ? allocationFrom(depth + 1, offset, m.length())
                    : new Allocation(Allocation.Kind.HOLE, m.length());
        };
    }

    private void readFrom(int depth, ByteBuffer dst, long offset) throws IOException {
        Layer layer = layers.get(depth);
        Layer.Cursor cursor = new Layer.Cursor();
        long pos = offset;
        while (dst.hasRemaining()) {
            if (pos >= layer.size()) {
                zero(dst);
                return;
            }
            Layer.Mapping m = layer.map(pos, Math.min(dst.remaining(), layer.size() - pos), cursor);
            int n = (int) m.length();
            ByteBuffer part = dst.slice(dst.position(), n);
            switch (m.kind()) {
                case DATA -> {
                    if (layer instanceof Qcow2Layer q) {
                        q.checkData(m.host(), n);
                    }
                    layer.source().readFully(part, m.host());
                    if (part.hasRemaining()) {
                        throw new IOException(layer.source().location() + ": short read at " + m.host());
                    }
                }
                case COMPRESSED -> {
                    int clusterSize = layer.clusterSize();
                    DecompressedClusters.Key key = new DecompressedClusters.Key(depth, m.host());
                    byte[] cluster = n == clusterSize ? null : decompressed.get(key);
                    if (cluster != null) {
                        part.put(cluster, (int) (pos & (clusterSize - 1)), n);
                    } else if (n == clusterSize && layer instanceof Qcow2Layer q && dst.remaining() > n) {
                        // whole clusters (a stream, a large read): the following whole compressed clusters that
                        // lie close in the file are read in one request; nothing is kept decompressed
                        n = readCompressedRun(q, cursor, m.host(), pos, dst);
                    } else if (n == clusterSize) {
                        // the whole cluster (a stream, a large read): nobody reads it piecewise, so it is not
                        // kept, and the array it passes through is reused
                        byte[] scratch = ScratchArrays.take(clusterSize);
                        try {
                            layer.readCompressed(m.host(), scratch);
                            part.put(scratch, 0, n);
                        } finally {
                            ScratchArrays.give(scratch);
                        }
                    } else {
                        cluster = new byte[clusterSize];
                        layer.readCompressed(m.host(), cluster);
                        decompressed.put(key, cluster);
                        part.put(cluster, (int) (pos & (clusterSize - 1)), n);
                    }
                }
                case ZERO -> zero(part);
                case UNALLOCATED -> {
                    if (depth + 1 < layers.size()) {
                        readFrom(depth + 1, part, pos);
                    } else {
                        zero(part);
                    }
                }
            }
            dst.position(dst.position() + n);
            pos += n;
        }
    }

    /** Most clusters one compressed run decompresses (its output, at most 64 clusters, goes to the caller). */
    private static final int MAX_RUN_CLUSTERS = 64;

    /**
     * Decompresses into {@code dst} (from its position, at least two whole clusters remaining) the
     * whole compressed cluster at {@code pos} and those after it that {@link Qcow2Layer#extendRun} joins
     * in one request; returns the bytes written (a multiple of the cluster size). {@code dst}'s position
     * is left where it was: the caller advances it.
     */
    private static int readCompressedRun(Qcow2Layer q, Layer.Cursor cursor, long first, long pos, ByteBuffer dst)
            throws IOException {
        int cs = q.clusterSize();
        long start = Qcow2Layout.compressedOffset(first, q.header().clusterBits);
        long end = q.extendRun(start, start, first);
        long[] descriptors = new long[MAX_RUN_CLUSTERS];
        descriptors[0] = first;
        int count = 1;
        if (end >= 0) {
            long next = pos + cs;
            while (count < MAX_RUN_CLUSTERS && dst.remaining() - (long) count * cs >= cs && next + cs <= q.size()) {
                Layer.Mapping m = q.map(next, cs, cursor);
                if (m.kind() != Layer.MapKind.COMPRESSED || m.length() != cs) {
                    break;
                }
                long grown = q.extendRun(start, end, m.host());
                if (grown < 0) {
                    break;
                }
                end = grown;
                descriptors[count++] = m.host();
                next += cs;
            }
        }
        ByteBuffer out = dst.slice(dst.position(), count * cs);
        if (end < 0) { // starts past the end of the file: the single-cluster path names the damage
            byte[] cluster = ScratchArrays.take(cs);
            try {
                q.readCompressed(first, cluster);
                out.put(cluster, 0, cs);
            } finally {
                ScratchArrays.give(cluster);
            }
        } else {
            q.readCompressedRun(descriptors, count, start, end, out);
        }
        return count * cs;
    }

    private static void zero(ByteBuffer b) {
        while (b.hasRemaining()) {
            b.put(ZEROS, 0, Math.min(ZEROS.length, b.remaining()));
        }
    }

    private void checkRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset > virtualSize - length) {
            throw new IllegalArgumentException("range " + offset + "+" + length + " outside the virtual disk ("
                    + virtualSize + " bytes)");
        }
    }

    private void ensureOpen() throws IOException {
        if (closed.get()) {
            throw new IOException("qcow2 image " + chain.get(0).location() + " is closed");
        }
    }

    /** Closes every source of the chain; idempotent. */
    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        IOException first = null;
        for (Layer l : layers) {
            try {
                l.source().close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "Qcow2Image" + chain;
    }
}
