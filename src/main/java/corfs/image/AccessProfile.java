package corfs.image;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.io.AtomicReplace;
import corfs.io.FileOps;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * An access profile in its portable form: the extents a guest fetched from the backing, in the order it
 * first touched them, with the time of that first touch, and the identity of the backing they were read
 * from. {@code corfs profile export} writes one, {@code corfs profile merge} combines several, and a
 * prefetch job reads one and fetches its extents in this order.
 *
 * <h2>File format (version 1, US-ASCII text, one item per line, '\n' ends every line)</h2>
 * <pre>
 * corfs-profile 1
 * backing_identity TOKEN       (the backing's identity token: printable ASCII, no spaces)
 * backing_size BYTES
 * cluster_size BYTES           (a power of two, 512 to 2 MiB)
 * OFFSET LENGTH FIRST_MS       (zero or more: decimal bytes and milliseconds since the mount)
 * </pre>
 * Extents are in profile order; each lies within the backing's size, is cluster-aligned (its length a
 * multiple of the cluster size, except one ending at the backing's size), and no two overlap. Lines
 * starting with '#' and blank lines are ignored.
 *
 * <h2>Hostile input</h2>
 * A profile is a file a user hands corfs, perhaps from elsewhere: {@link #read} refuses anything that
 * breaks the format (one line message naming the file and the line), reads at most {@link #MAX_FILE_BYTES}
 * and {@link #MAX_ENTRIES} entries, never follows a symbolic link, and checks overlap in
 * O(n log n) time. Messages never quote the file's text: a daemon running as root may be asked to read a
 * file its requester cannot, and the message reaches the requester. {@link #write} replaces its target atomically and never writes through a planted link.
 */
public record AccessProfile(String identityToken, long backingSize, int clusterSize, List<Entry> entries) {
    public static final String MAGIC = "corfs-profile 1";
    /**
     * Far more than a boot touches (a real one: 1,307 reads), and small enough that a profile a user (or
     * another user, through a sidecar) hands a daemon with a 256 MiB heap cannot exhaust it: 16 M extents
     * took 5 GB of heap. A bigger file is refused.
     */
    public static final int MAX_ENTRIES = 1 << 18;
    public static final long MAX_FILE_BYTES = 16L << 20;
    private static final AtomicReplace EXPORT = AtomicReplace.durable(".corfs-profile-", "rw-r--r--")
            .refusing("profile", false);

    /** One extent of the profile: {@code length} bytes at {@code offset}, first touched {@code firstMillis} after mount. */
    public record Entry(long offset, long length, long firstMillis) {
        public long end() {
            return offset + length;
        }
    }

    public AccessProfile {
        entries = List.copyOf(entries);
        try {
            validate(identityToken, backingSize, clusterSize, entries, "profile");
        } catch (CorfsException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
    }

    /**
     * The profile of clusters in profile order: {@code clusters[i]} first touched {@code millis[i]} ms after
     * mount, each cluster at most once, for {@code i < count}. Consecutive entries whose clusters are
     * adjacent and increasing become one extent, with the time of its first cluster; the extent of the last
     * cluster ends at the backing's size.
     *
     * @throws IllegalArgumentException if a cluster repeats or lies outside the backing
     */
    public static AccessProfile fromClusters(String identityToken, long backingSize, int clusterSize, long[] clusters,
                                             long[] millis, int count) {
        List<Entry> entries = new ArrayList<>();
        int i = 0;
        while (i < count) {
            int j = i + 1;
            while (j < count && clusters[j] == clusters[j - 1] + 1) {
                j++;
            }
            long offset = clusters[i] * clusterSize;
            long end = Math.min(backingSize, (clusters[j - 1] + 1) * clusterSize);
            entries.add(new Entry(offset, end - offset, millis[i]));
            i = j;
        }
        return new AccessProfile(identityToken, backingSize, clusterSize, entries);
    }

    /** Most clusters {@link #merge} expands its inputs to, all inputs together (256 MB of working memory). */
    public static final int MAX_MERGE_CLUSTERS = 1 << 25;

    /**
     * Combines profiles of several boots of one backing: every cluster any of them touched, ordered by the
     * median of its first-touch times over the inputs that touched it (the mean of the middle two, rounded
     * down, for an even count; times above 2^31-1 ms count as 2^31-1), ties by offset, then merged into
     * extents as {@link #fromClusters} does. A cluster of an extent has the extent's time.
     *
     * @param sources names of the inputs, for messages (same order as {@code profiles})
     * @throws CorfsException INVALID_ARGUMENT naming the first input whose backing identity, size or cluster
     *         size differs from the first's, or when the inputs are too large to merge
     */
    public static AccessProfile merge(List<AccessProfile> profiles, List<String> sources) throws CorfsException {
        if (profiles.isEmpty() || profiles.size() != sources.size()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "merge needs at least one profile");
        }
        AccessProfile first = profiles.get(0);
        long clusterCount = (first.backingSize() + first.clusterSize() - 1) / first.clusterSize();
        long total = 0;
        for (int k = 0; k < profiles.size(); k++) {
            AccessProfile p = profiles.get(k);
            if (!p.identityToken().equals(first.identityToken()) || p.backingSize() != first.backingSize()
                    || p.clusterSize() != first.clusterSize()) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + sources.get(k) + " is of another "
                        + (p.identityToken().equals(first.identityToken()) ? "backing size or cluster size"
                        : "backing") + " than " + sources.get(0) + ": refusing to merge them");
            }
            for (Entry e : p.entries()) {
                total += (e.length() + p.clusterSize() - 1) / p.clusterSize();
            }
        }
        if (clusterCount > (1L << 32) || total > MAX_MERGE_CLUSTERS) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "the profiles name " + total + " clusters in all, more"
                    + " than merge handles (" + MAX_MERGE_CLUSTERS + ")");
        }
        // (cluster << 31 | ms), sorted: each cluster's times together and ascending.
        long[] touches = new long[(int) total];
        int n = 0;
        int cs = first.clusterSize();
        for (AccessProfile p : profiles) {
            for (Entry e : p.entries()) {
                long ms = Math.min(Integer.MAX_VALUE, e.firstMillis());
                for (long c = e.offset() / cs; c * cs < e.end(); c++) {
                    touches[n++] = c << 31 | ms;
                }
            }
        }
        java.util.Arrays.sort(touches);
        // (median << 32 | cluster), sorted: profile order, ties by offset.
        long[] order = new long[n];
        int m = 0;
        for (int i = 0; i < n; ) {
            long cluster = touches[i] >>> 31;
            int j = i;
            while (j < n && touches[j] >>> 31 == cluster) {
                j++;
            }
            int k = j - i;
            long lo = touches[i + (k - 1) / 2] & Integer.MAX_VALUE;
            long hi = touches[i + k / 2] & Integer.MAX_VALUE;
            order[m++] = ((lo + hi) / 2) << 32 | cluster;
            i = j;
        }
        java.util.Arrays.sort(order, 0, m);
        long[] clusters = new long[m];
        long[] millis = new long[m];
        for (int i = 0; i < m; i++) {
            clusters[i] = order[i] & 0xffff_ffffL;
            millis[i] = order[i] >>> 32;
        }
        return fromClusters(first.identityToken(), first.backingSize(), cs, clusters, millis, m);
    }

    /** Bytes the profile names (what a prefetch of an empty leaf fetches at most). */
    public long totalBytes() {
        long sum = 0;
        for (Entry e : entries) {
            sum += e.length();
        }
        return sum;
    }

    /**
     * Reads a profile file.
     *
     * @throws CorfsException NOT_FOUND if it does not exist, INVALID_ARGUMENT if it is not a regular file
     *         (or a link), too big or not a valid profile (the message names the file and the line)
     */
    public static AccessProfile read(Path file) throws IOException {
        byte[] bytes;
        try {
            bytes = FileOps.system().readRegularFile(file, (int) Math.min(Integer.MAX_VALUE - 8, MAX_FILE_BYTES + 1));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new CorfsException(Reason.NOT_FOUND, "profile " + file + " does not exist");
        } catch (FileOps.NotRegularFileException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + file + " is not a regular file");
        }
        if (bytes.length > MAX_FILE_BYTES) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + file + " is larger than "
                    + MAX_FILE_BYTES + " bytes");
        }
        return parse(bytes, file.toString());
    }

    /** Parses the text of a profile; {@code source} names it in messages. */
    public static AccessProfile parse(byte[] bytes, String source) throws CorfsException {
        String token = null;
        long backingSize = -1;
        int clusterSize = -1;
        List<Entry> entries = new ArrayList<>();
        int lineNo = 0;
        int pos = 0;
        boolean magicSeen = false;
        while (pos < bytes.length) {
            int nl = pos;
            while (nl < bytes.length && bytes[nl] != '\n') {
                nl++;
            }
            lineNo++;
            String line = lineOf(bytes, pos, nl, source, lineNo);
            pos = nl + 1;
            if (!magicSeen) {
                if (!line.equals(MAGIC)) {
                    throw bad(source, lineNo, "not a corfs profile (the first line must be '" + MAGIC + "')");
                }
                magicSeen = true;
                continue;
            }
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split(" ", -1);
            switch (f[0]) {
                case "backing_identity" -> {
                    if (f.length != 2 || token != null) {
                        throw bad(source, lineNo, "expected one 'backing_identity TOKEN' line");
                    }
                    token = f[1];
                }
                case "backing_size" -> {
                    if (f.length != 2 || backingSize >= 0) {
                        throw bad(source, lineNo, "expected one 'backing_size BYTES' line");
                    }
                    backingSize = number(f[1], source, lineNo);
                }
                case "cluster_size" -> {
                    if (f.length != 2 || clusterSize >= 0) {
                        throw bad(source, lineNo, "expected one 'cluster_size BYTES' line");
                    }
                    long cs = number(f[1], source, lineNo);
                    clusterSize = (int) Math.min(cs, Integer.MAX_VALUE);
                }
                default -> {
                    if (f.length != 3) {
                        throw bad(source, lineNo, "expected 'OFFSET LENGTH FIRST_MS'");
                    }
                    if (entries.size() >= MAX_ENTRIES) {
                        throw bad(source, lineNo, "more than " + MAX_ENTRIES + " extents");
                    }
                    entries.add(new Entry(number(f[0], source, lineNo), number(f[1], source, lineNo),
                            number(f[2], source, lineNo)));
                }
            }
        }
        if (!magicSeen) {
            throw bad(source, 1, "empty file: not a corfs profile");
        }
        if (token == null || backingSize < 0 || clusterSize < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + source
                    + " lacks a backing_identity, backing_size or cluster_size line");
        }
        validate(token, backingSize, clusterSize, entries, "profile " + source);
        return new AccessProfile(token, backingSize, clusterSize, entries);
    }

    /** The file's text. */
    public byte[] toBytes() {
        StringBuilder sb = new StringBuilder(64 + entries.size() * 28);
        sb.append(MAGIC).append('\n')
                .append("backing_identity ").append(identityToken).append('\n')
                .append("backing_size ").append(backingSize).append('\n')
                .append("cluster_size ").append(clusterSize).append('\n');
        for (Entry e : entries) {
            sb.append(e.offset()).append(' ').append(e.length()).append(' ').append(e.firstMillis()).append('\n');
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * Writes the profile to {@code file}, replacing it atomically: a temporary file of unpredictable name
     * in the same directory, created with O_EXCL|O_NOFOLLOW (mode 0644), forced, then renamed over it. An
     * existing {@code file} must be a regular file ({@link corfs.io.ReplaceTarget}: not a link, a device...).
     */
    public void write(Path file) throws IOException {
        EXPORT.write(file, toBytes());
    }

    private static void validate(String token, long backingSize, int clusterSize, List<Entry> entries, String what)
            throws CorfsException {
        if (token == null || token.isEmpty() || token.length() > corfs.backing.BackingIdentity.MAX_TOKEN_BYTES
                || !token.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": the backing identity is empty, too long or not printable");
        }
        if (backingSize < 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": negative backing size");
        }
        if (clusterSize < 512 || clusterSize > (2 << 20) || Integer.bitCount(clusterSize) != 1) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": cluster size " + clusterSize
                    + " is not a power of two from 512 to 2 MiB");
        }
        if (entries.size() > MAX_ENTRIES) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": more than " + MAX_ENTRIES + " extents");
        }
        long mask = clusterSize - 1L;
        for (Entry e : entries) {
            if (e.offset() < 0 || e.length() <= 0 || e.firstMillis() < 0 || e.offset() >= backingSize
                    || e.length() > backingSize - e.offset()) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": extent " + e.offset() + "+" + e.length()
                        + " lies outside the " + backingSize + "-byte backing");
            }
            if ((e.offset() & mask) != 0 || ((e.length() & mask) != 0 && e.end() != backingSize)) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": extent " + e.offset() + "+" + e.length()
                        + " is not aligned to the " + clusterSize + "-byte cluster");
            }
        }
        Entry[] sorted = entries.toArray(new Entry[0]);
        java.util.Arrays.sort(sorted, java.util.Comparator.comparingLong(Entry::offset));
        for (int i = 1; i < sorted.length; i++) {
            if (sorted[i].offset() < sorted[i - 1].end()) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, what + ": extents " + sorted[i - 1].offset() + "+"
                        + sorted[i - 1].length() + " and " + sorted[i].offset() + "+" + sorted[i].length() + " overlap");
            }
        }
    }

    private static String lineOf(byte[] bytes, int from, int to, String source, int lineNo) throws CorfsException {
        if (to - from > 4096) {
            throw bad(source, lineNo, "line too long");
        }
        for (int i = from; i < to; i++) {
            int b = bytes[i] & 0xff;
            if (b < 0x20 || b >= 0x7f) {
                throw bad(source, lineNo, "not printable ASCII");
            }
        }
        return new String(bytes, from, to - from, StandardCharsets.US_ASCII);
    }

    private static long number(String s, String source, int lineNo) throws CorfsException {
        if (s.isEmpty() || s.length() > 19 || !s.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw bad(source, lineNo, "a field is not a decimal number"); // never echo the file's text
        }
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw bad(source, lineNo, "a number is too large");
        }
    }

    private static CorfsException bad(String source, int lineNo, String why) {
        return new CorfsException(Reason.INVALID_ARGUMENT, "profile " + source + " line " + lineNo + ": " + why);
    }
}
