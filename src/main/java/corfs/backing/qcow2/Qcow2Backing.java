package corfs.backing.qcow2;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingSpec;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The qcow2 FORMAT over any transport: a {@link Backing} whose bytes are the virtual disk of a qcow2 image
 * and its backing chain, decoded by {@link Qcow2Image}. The container (the top qcow2 file's raw bytes) is
 * a backing of some transport (file, NBD, HTTP(S), S3); each backing file name is resolved within that
 * transport ({@link ChainNames}) and opened through the caller's {@link LayerOpener}, raw bases included.
 *
 * <ul>
 * <li>{@link #size()} is the virtual size; {@link #readFully} reads through the chain;
 * {@link #allocation} says DATA, ZERO (zero clusters and subclusters, a raw base's holes) or HOLE
 * (allocated nowhere in the chain, or past the end of a shorter backing): never transferred.</li>
 * <li>{@link #identity()} covers every layer: a changed layer anywhere changes it.</li>
 * <li>Read-only: {@link #openWriter()} is refused with READ_ONLY.</li>
 * </ul>
 *
 * <p>Threads: as many readers at once as the container serves ({@link #maxInFlight()}); no lock is held
 * during I/O or decompression, and each compressed cluster is decompressed by the thread that reads it
 * (see {@link Qcow2Image}), so readers decompress in parallel. A read whose caller gave up (a
 * {@code TimeoutBacking} deadline) finishes on its own thread; it leaves the caches consistent.
 *
 * <p>Ownership: owns the container and every layer it opened, from the call to {@link #open} on: a failed
 * open closes them all; {@link #close} (idempotent) closes them all.
 */
public final class Qcow2Backing implements Backing {
    /** The format's name in a leaf's metadata and {@code --backing-format}. */
    public static final String FORMAT = "qcow2";
    /** The {@code --backing-opt} keys of the format (the transport's come on top). */
    public static final Set<String> OPTION_KEYS = Set.of("l2-cache");
    static final long MIN_L2_CACHE = 64L << 10;
    static final long MAX_L2_CACHE = 1L << 30;
    private static final Pattern SIZE = Pattern.compile("([0-9]{1,13})([kKmMgG]?)");
    private static final int QCOW2_MAGIC = 0x514649fb;

    private final Backing container;
    private final Qcow2Image image;

    private Qcow2Backing(Backing container, Qcow2Image image) {
        this.container = container;
        this.image = image;
    }

    /**
     * Opens the qcow2 image whose bytes {@code container} holds, with its whole chain.
     *
     * @param spec      the SPEC {@code container} was opened from, unredacted: the base that relative
     *                  backing names are resolved against (never shown)
     * @param container the top image's bytes; owned from now on, closed if the open fails
     * @param opener    opens each lower layer's SPEC in the same transport, with the same options
     * @param options   the leaf's backing options; only {@link #OPTION_KEYS} are read here
     * @throws CorfsException INVALID_ARGUMENT for a bad option or a backing name refused by
     *                        {@link ChainNames}, IO ({@link Qcow2FormatException}) for an image refused or
     *                        damaged, the opener's reason for a layer it cannot open
     */
    public static Qcow2Backing open(String spec, Backing container, LayerOpener opener, Map<String, String> options)
            throws IOException {
        BackingSource top = new BackingSource(spec, container);
        try {
            Qcow2Options qopts = Qcow2Options.DEFAULT.withL2CacheBytes(l2CacheBytes(options));
            Qcow2Image image = Qcow2Image.open(top, (from, name) -> {
                String next = ChainNames.resolve(((BackingSource) from).spec(), name);
                return new BackingSource(next, opener.open(next));
            }, qopts);
            return new Qcow2Backing(container, image);
        } catch (IOException | RuntimeException e) {
            try {
                top.close(); // the layers below were closed by Qcow2Image.open
            } catch (IOException | RuntimeException closing) {
                e.addSuppressed(closing);
            }
            throw e;
        }
    }

    /**
     * {@link #open(String, Backing, LayerOpener, Map)} with the container's {@link Backing#location()} as
     * the SPEC: right for a local file (its location is its path); a URL's location is redacted, so
     * credentials in it (user information) would not reach the lower layers: pass the SPEC instead.
     */
    public static Qcow2Backing open(Backing container, LayerOpener opener, Map<String, String> options)
            throws IOException {
        return open(container.location(), container, opener, options);
    }

    /**
     * Whether {@code b} starts like a qcow2 image (magic and a version of at least 2, QEMU's
     * {@code qcow2_probe}): for {@code create}'s detection. Reads 8 bytes; never closes {@code b}.
     */
    public static boolean looksLikeQcow2(Backing b) throws IOException {
        if (b.size() < 8) {
            return false;
        }
        ByteBuffer header = ByteBuffer.allocate(8);
        b.readFully(header, 0);
        return header.getInt(0) == QCOW2_MAGIC && header.getInt(4) >= 2;
    }

    /**
     * Checks the format's options: {@code l2-cache=SIZE} (bytes, or with a suffix K, M or G, powers of
     * 1024; from 64K to 1G). Keys that are not the format's are left to the transport.
     *
     * @throws CorfsException INVALID_ARGUMENT naming the option
     */
    public static void validate(Map<String, String> options) throws CorfsException {
        l2CacheBytes(options);
    }

    /** The metadata cache budget of {@code options}, or the default (4 MiB). */
    static long l2CacheBytes(Map<String, String> options) throws CorfsException {
        String v = options.get("l2-cache");
        if (v == null) {
            return Qcow2Options.DEFAULT.l2CacheBytes();
        }
        Matcher m = SIZE.matcher(v.trim());
        long bytes = -1;
        if (m.matches()) {
            int shift = switch (m.group(2).toUpperCase(Locale.ROOT)) {
                case "K" -> 10;
                case "M" -> 20;
                case "G" -> 30;
                default -> 0;
            };
            long n = Long.parseLong(m.group(1));
            bytes = n > (Long.MAX_VALUE >> shift) ? -1 : n << shift;
        }
        if (bytes < MIN_L2_CACHE || bytes > MAX_L2_CACHE) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "l2-cache=" + v + " is not a size from 64K to 1G"
                    + " (bytes, or with a suffix K, M or G)");
        }
        return bytes;
    }

    /**
     * Each image of the chain, top first, for {@code corfs info}: location (redacted), format, version,
     * cluster size, compression, extended L2, virtual size, backing name (redacted) and backing format.
     */
    public List<LayerInfo> chain() {
        List<LayerInfo> out = new ArrayList<>();
        for (LayerInfo i : image.chain()) {
            out.add(new LayerInfo(BackingSpec.redact(i.location()), i.format(), i.version(), i.clusterSize(),
                    i.compression(), i.extendedL2(), i.virtualSize(), BackingSpec.redact(i.backingName()),
                    i.backingFormat()));
        }
        return out;
    }

    /** The top image's location (its container's, redacted). */
    @Override
    public String location() {
        return container.location();
    }

    /** The virtual size. */
    @Override
    public long size() {
        return image.virtualSize();
    }

    /**
     * {@code qcow2:SIZE:SHA256} over every layer's identity token in chain order (the top's included), so
     * that a layer changed anywhere changes it; described as the chain's length and its top and bottom.
     */
    @Override
    public BackingIdentity identity() throws IOException {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every JDK", e);
        }
        List<Qcow2Source> sources = image.sources();
        for (Qcow2Source s : sources) {
            sha.update(((BackingSource) s).backing().identity().token().getBytes(StandardCharsets.UTF_8));
            sha.update((byte) '\n');
        }
        String hash = HexFormat.of().formatHex(sha.digest());
        String token = "qcow2:" + size() + ":" + hash;
        List<LayerInfo> chain = chain();
        // the hash's head in the description, so "changed (now ..., recorded ...)" shows a difference
        StringBuilder d = new StringBuilder("qcow2 chain " + hash.substring(0, 12) + " of " + chain.size()
                + " layer(s): top ")
                .append(chain.get(0).location());
        if (chain.size() > 1) {
            LayerInfo bottom = chain.get(chain.size() - 1);
            d.append(", bottom ").append(bottom.location()).append(" (").append(bottom.format()).append(')');
        }
        return BackingIdentity.of(token, fit(d.toString()), size());
    }

    /** A description without control characters, cut to {@link BackingIdentity#MAX_DESCRIPTION_BYTES}. */
    private static String fit(String s) {
        StringBuilder out = new StringBuilder();
        int bytes = 0;
        int limit = BackingIdentity.MAX_DESCRIPTION_BYTES - 3;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.isISOControl(cp)) {
                cp = '?';
            }
            int n = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8).length;
            if (bytes + n > limit && i < s.length()) {
                return out.append("...").toString();
            }
            bytes += n;
            out.appendCodePoint(cp);
        }
        return out.toString();
    }

    /** The container's: decoding adds no round trips of its own beyond metadata lookups. */
    @Override
    public int maxInFlight() {
        return container.maxInFlight();
    }

    @Override
    public void readFully(ByteBuffer dst, long offset) throws IOException {
        checkRange(offset, dst.remaining());
        image.read(dst, offset);
    }

    @Override
    public corfs.backing.Allocation allocation(long offset, long max) throws IOException {
        if (max <= 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "allocation at " + offset + " with max " + max);
        }
        checkRange(offset, 1);
        Allocation a = image.allocation(offset, max);
        corfs.backing.Allocation.Kind kind = switch (a.kind()) {
            case DATA -> corfs.backing.Allocation.Kind.DATA;
            case ZERO -> corfs.backing.Allocation.Kind.ZERO;
            case HOLE -> corfs.backing.Allocation.Kind.HOLE;
        };
        return new corfs.backing.Allocation(kind, a.length());
    }

    private void checkRange(long offset, long length) throws CorfsException {
        long size = size();
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "range " + offset + "+" + length + " is outside the"
                    + " virtual disk of qcow2 backing " + location() + " (" + size + " bytes)");
        }
    }

    /** Always refused: corfs decodes qcow2 read-only. */
    @Override
    public Writer openWriter() throws IOException {
        throw new CorfsException(Reason.READ_ONLY, "commit into a qcow2 backing is refused: export the chain"
                + " writable with qemu-nbd and use an NBD backing");
    }

    /** Closes every layer, the container included; idempotent. */
    @Override
    public void close() throws IOException {
        image.close();
    }

    @Override
    public String toString() {
        return "Qcow2Backing[" + location() + ", " + image.chain().size() + " layer(s)]";
    }
}
