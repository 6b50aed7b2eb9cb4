package corfs.image;

import corfs.CorfsException;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.Backings;
import corfs.backing.BackingSpec;
import corfs.backing.Deadline;
import corfs.backing.FileBacking;
import corfs.io.FileOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The offline operations of the CLI on a leaf (create, info, map, check): nothing here is mounted. */
public final class LeafImages {
    /** How long check waits for the backing's stat, like the mount's default backing timeout. */
    private static final long BACKING_DEADLINE_MS = 30_000;
    private LeafImages() {
    }

    /** Metadata path of a leaf: LEAF.corfs beside it. */
    public static Path metadataPath(Path leaf) {
        return LeafImage.metadataPathOf(leaf);
    }

    /** See {@link LeafImage#create}. */
    public static void create(Path leaf, Path backing, int clusterSize, boolean force) throws IOException {
        LeafImage.create(leaf, backing, clusterSize, force);
    }

    /**
     * Creates {@code leaf} over the backing a SPEC names: checks SPEC and options without I/O, opens the
     * backing (bounded by its {@code timeout}, default {@link #BACKING_DEADLINE_MS}), takes its identity
     * and size, closes it, and writes the leaf. A local file is checked as
     * {@link LeafImage#checkLocalBacking} does and recorded as an absolute path. Nothing is written when
     * the backing cannot be reached.
     *
     * @param format the backing's format, or null to detect it (qcow2 by its header, else raw)
     * @return the format recorded
     */
    public static String create(Path leaf, String spec, String format, java.util.Map<String, String> options,
                                int clusterSize, boolean force) throws IOException {
        return create(leaf, spec, format, options, clusterSize, force, null);
    }

    /**
     * {@link #create(Path, String, String, java.util.Map, int, boolean)}, recording {@code prefetch} (an
     * access profile file, or null) as the new leaf's pending prefetch ({@link PrefetchRecord}), which
     * every later mount runs until it completes. The profile is read before anything is made and checked
     * against the backing's identity and size ({@link PrefetchRecord#check}); a mismatch refuses the
     * create with nothing made. Without {@code prefetch}, a pending prefetch left by an earlier leaf of
     * that name is removed.
     */
    public static String create(Path leaf, String spec, String format, java.util.Map<String, String> options,
                                int clusterSize, boolean force, Path prefetch) throws IOException {
        AccessProfile profile = prefetch == null ? null : AccessProfile.read(prefetch);
        spec = BackingSpec.fromUserInput(spec);
        Backings backings = new Backings(FileOps.system());
        backings.validate(spec, format, options);
        java.util.Optional<Path> local = BackingSpec.localFile(spec);
        Path localFile = null;
        String recordedSpec = spec;
        if (local.isPresent()) {
            localFile = LeafImage.checkLocalBacking(local.get());
            recordedSpec = localFile.toString();
        }
        String opened = recordedSpec;
        OpenedBacking b = OpenedBacking.openBounded(backings, opened, format, options);
        try {
            Path leafAbs = leaf.toAbsolutePath().normalize();
            if (profile != null) {
                PrefetchRecord.check(profile, prefetch.toString(), leafAbs.getFileName().toString(), b.identity,
                        b.identity.size());
            }
            LeafImage.create(leaf, new LeafImage.NewBacking(recordedSpec, b.format, options, b.identity, localFile),
                    clusterSize, force);
            try {
                PrefetchRecord.remove(leafAbs);
                if (profile != null) {
                    PrefetchRecord.save(leafAbs, profile);
                }
            } catch (IOException | RuntimeException e) {
                for (Path made : List.of(leafAbs, LeafImage.metadataPathOf(leafAbs))) {
                    try {
                        Files.deleteIfExists(made);
                    } catch (IOException cleanup) {
                        e.addSuppressed(cleanup);
                    }
                }
                throw e;
            }
            return b.format;
        } finally {
            b.close();
        }
    }

    /** What {@link #setBacking} did: the new SPEC (redacted), and how the content was found the same. */
    public record SetBackingResult(String spec, String verdict) {
    }

    /** Clusters of the leaf compared with a new backing whose identity differs from the recorded one. */
    private static final int SAMPLED_CLUSTERS = 16;

    /**
     * Records a new location of the leaf's backing (a migration source that changed address, an image
     * moved from NFS to HTTP), keeping the format. The leaf must not be mounted. The new backing must
     * have the leaf's size and the recorded identity (an NBD fingerprint, the same ETag), or
     * {@code force}. Up to {@value #SAMPLED_CLUSTERS} of the leaf's local clean clusters (copies of the
     * old backing) are compared with a backing of another identity: any difference refuses, also with
     * {@code force}; a match is reported (it cannot prove sameness: clones share clusters).
     */
    public static SetBackingResult setBacking(Path leaf, String spec, java.util.Map<String, String> options,
                                              boolean force) throws IOException {
        spec = BackingSpec.fromUserInput(spec);
        Backings backings = new Backings(FileOps.system());
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
            LeafHeader h = image.header();
            String format = h.backingFormat();
            backings.validate(spec, format, options);
            if (h.job().backingWritten()) {
                throw new CorfsException(CorfsException.Reason.BUSY, leaf + ": a commit into the current backing was"
                        + " interrupted; mount the leaf once (it records the backing's new identity) before moving it");
            }
            String recordedSpec = spec;
            java.util.Optional<Path> local = BackingSpec.localFile(spec);
            if (local.isPresent()) {
                recordedSpec = LeafImage.checkLocalBacking(local.get()).toString();
                if (recordedSpec.equals(image.dataPath().toString())) {
                    throw new CorfsException(CorfsException.Reason.INVALID_ARGUMENT, "the leaf cannot be its own backing");
                }
            }
            String opened = recordedSpec;
            OpenedBacking b = OpenedBacking.openBounded(backings, opened, format, options);
            try {
                String shown = BackingSpec.redact(spec);
                if (b.identity.size() != h.virtualSize()) {
                    throw new CorfsException(CorfsException.Reason.INVALID_ARGUMENT, "backing " + shown + " is "
                            + b.identity.size() + " bytes, the leaf " + h.virtualSize() + ": not the same disk");
                }
                String verdict;
                if (b.identity.equals(h.backingIdentity())) {
                    verdict = "same identity (" + b.identity.describe() + ")";
                } else {
                    // Content sampling can prove two disks differ, never that they are the same (clones of
                    // one template share most clusters): a difference is refused even with --force, a
                    // match only tells the operator what --force would accept.
                    String compared = compareLocalClusters(image, b.backing, deadlineMillis(options));
                    String problem = "backing " + shown + ": identity differs from the recorded one ("
                            + b.identity.describe() + " now, " + h.backingIdentity().describe() + " recorded)"
                            + " and its content " + compared;
                    if (compared.startsWith("differs")) {
                        throw new CorfsException(CorfsException.Reason.INVALID_ARGUMENT, problem
                                + ": not the disk the leaf was made from");
                    }
                    if (!force) {
                        throw new CorfsException(CorfsException.Reason.INVALID_ARGUMENT, problem
                                + ". Use --force if you know it is the same disk");
                    }
                    verdict = "forced: identity differs, content " + compared;
                }
                String finalSpec = recordedSpec;
                boolean pending = Files.exists(PrefetchRecord.pathOf(image.dataPath()), LinkOption.NOFOLLOW_LINKS);
                image.updateHeader(x -> x.withBacking(finalSpec, format, options, b.identity)); // drops a stale one
                if (pending && !Files.exists(PrefetchRecord.pathOf(image.dataPath()), LinkOption.NOFOLLOW_LINKS)) {
                    verdict += "; the pending prefetch, recorded over the previous backing, is dropped";
                }
                return new SetBackingResult(BackingSpec.redact(finalSpec), verdict);
            } finally {
                b.close();
            }
        }
    }

    /**
     * Compares up to {@value #SAMPLED_CLUSTERS} local clean clusters of the leaf, spread over the disk,
     * with the same ranges of {@code backing}. Returns "matches ...", "differs ..." or "could not be
     * compared ...", to follow "its content" in a message.
     */
    private static String compareLocalClusters(LeafImage image, Backing backing, long deadlineMs) throws IOException {
        ClusterBitmap local = image.local();
        ClusterBitmap dirty = image.dirty();
        long clusters = image.clusters();
        int cs = image.header().clusterSize();
        long size = image.header().virtualSize();
        List<Long> clean = new ArrayList<>();
        long stride = Math.max(1, clusters / (SAMPLED_CLUSTERS * 4L));
        for (long c = local.nextSet(0, clusters); c < clusters && clean.size() < SAMPLED_CLUSTERS * 4;
                c = local.nextSet(c + stride, clusters)) {
            if (!dirty.get(c)) {
                clean.add(c);
            }
            if (c + stride >= clusters) {
                break;
            }
        }
        if (clean.isEmpty()) {
            return "could not be compared (the leaf has no local clean cluster)";
        }
        int step = Math.max(1, clean.size() / SAMPLED_CLUSTERS);
        int compared = 0;
        for (int k = 0; k < clean.size() && compared < SAMPLED_CLUSTERS; k += step, compared++) {
            long off = clean.get(k) * cs;
            int len = (int) Math.min(cs, size - off);
            java.nio.ByteBuffer mine = java.nio.ByteBuffer.allocate(len);
            while (mine.hasRemaining()) {
                if (image.data().read(mine, off + mine.position()) < 0) {
                    break; // a truncated data file: the comparison below fails
                }
            }
            java.nio.ByteBuffer theirs = java.nio.ByteBuffer.allocate(len);
            Deadline.within("read of backing at " + off, deadlineMs, () -> {
                backing.readFully(theirs, off);
                return Boolean.TRUE;
            }, null);
            if (!mine.flip().equals(theirs.flip())) {
                return "differs from the leaf's local copy at offset " + off;
            }
        }
        return "matches the leaf's local copy in " + compared + " sampled cluster(s)";
    }

    /**
     * The layers of a qcow2 backing, top first (location redacted, format, version, cluster size,
     * compression, extended L2, backing name), read by opening the backing (bounded by its timeout).
     * Empty for a raw backing.
     */
    public static List<corfs.backing.qcow2.LayerInfo> chain(Path leaf) throws IOException {
        LeafHeader h;
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            h = image.header();
        }
        if (!Backings.QCOW2.equals(h.backingFormat())) {
            return List.of();
        }
        Backings backings = new Backings(FileOps.system());
        OpenedBacking b = OpenedBacking.openBounded(backings, h.backingSpec(), h.backingFormat(),
                h.backingOptions());
        try {
            return ((corfs.backing.qcow2.Qcow2Backing) b.backing).chain();
        } finally {
            b.close();
        }
    }

    /** The per-call deadline of a backing's options ({@code timeout=SECONDS}), else the default. */
    static long deadlineMillis(java.util.Map<String, String> options) throws CorfsException {
        long seconds = Backings.parseTimeoutSeconds(options);
        return seconds > 0 ? seconds * 1000 : BACKING_DEADLINE_MS;
    }

    /** A backing opened at create: its format (detected when not given) and identity. */
    private static final class OpenedBacking {
        final Backing backing;
        final String format;
        final BackingIdentity identity;

        private OpenedBacking(Backing backing, String format, BackingIdentity identity) {
            this.backing = backing;
            this.format = format;
            this.identity = identity;
        }

        /**
         * {@link #open} bounded by the options' {@code timeout} (default {@link #BACKING_DEADLINE_MS}): a
         * server that does not answer fails the command instead of hanging it.
         */
        static OpenedBacking openBounded(Backings backings, String spec, String format,
                                         java.util.Map<String, String> options) throws IOException {
            return Deadline.within("open of backing " + BackingSpec.redact(spec), deadlineMillis(options),
                    () -> open(backings, spec, format, options), OpenedBacking::close);
        }

        static OpenedBacking open(Backings backings, String spec, String format, java.util.Map<String, String> options)
                throws IOException {
            Backing b = backings.open(spec, format, options);
            try {
                String f = format == null ? backings.detectFormat(b) : format;
                if (!f.equals(format)) {
                    b = backings.decode(b, spec, f, options);
                }
                return new OpenedBacking(b, f, b.identity());
            } catch (IOException | RuntimeException e) {
                try {
                    b.close();
                } catch (IOException | RuntimeException closing) {
                    e.addSuppressed(closing);
                }
                throw e;
            }
        }

        void close() {
            try {
                backing.close();
            } catch (IOException | RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(LeafImages.class).warn("closing backing {}: {}", backing.location(),
                        e.toString());
            }
        }
    }

    /**
     * Reads the metadata without taking the lock (the leaf may be mounted; then the figures may lag a
     * second). Never writes: a version 1 leaf stays version 1. The SPEC comes back redacted.
     */
    public static LeafInfo info(Path leaf) throws IOException {
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            LeafHeader h = image.header();
            long clusters = image.clusters();
            return new LeafInfo(image.dataPath().toString(), image.metadataPath().toString(), image.metadataVersion(),
                    h.virtualSize(), h.clusterSize(), clusters, image.bytesIn(image.local()), image.bytesIn(image.dirty()),
                    image.sparseData().allocatedBytes(), h.standalone(), BackingSpec.redact(h.backingSpec()),
                    h.backingFormat(), h.backingOptions(), h.backingIdentity(),
                    h.job().kind(), h.job().state(), h.job().speed(), h.job().onError(), h.job().error(),
                    image.uncleanStop());
        }
    }

    /** The leaf's extents in order, adjacent clusters of one state merged. */
    public static List<Extent> map(Path leaf) throws IOException {
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            List<Extent> out = new ArrayList<>();
            long size = image.header().virtualSize();
            long cs = image.header().clusterSize();
            ClusterBitmap local = image.local();
            ClusterBitmap dirty = image.dirty();
            long clusters = image.clusters();
            List<long[]> unreadable = UnreadableLedger.load(image.dataPath());
            long c = 0;
            while (c < clusters) {
                boolean l = local.get(c);
                boolean d = dirty.get(c);
                long end = c + 1;
                if (!l) {
                    end = local.nextSet(c, clusters);
                } else if (d) {
                    end = dirty.nextClear(c, clusters);
                } else {
                    end = Math.min(local.nextClear(c, clusters), dirty.nextSet(c, clusters));
                }
                long from = c * cs;
                long to = Math.min(size, end * cs);
                if (l) {
                    addSplitByHoles(out, from, to, d, image.sparseData());
                } else {
                    addSplitByUnreadable(out, from, to, unreadable);
                }
                c = end;
            }
            return out;
        }
    }

    /** Adds the local extent [from, to), split where the leaf's data file has holes (SEEK_DATA/SEEK_HOLE). */
    private static void addSplitByHoles(List<Extent> out, long from, long to, boolean dirty,
                                        corfs.io.FileOps.SparseFile data) throws IOException {
        long pos = from;
        while (pos < to) {
            long next = data.nextData(pos);
            long dataAt = next < 0 ? to : Math.min(to, next);
            if (dataAt > pos) {
                out.add(new Extent(pos, dataAt - pos, true, dirty, false, true));
                pos = dataAt;
                continue;
            }
            long holeAt = Math.min(to, Math.max(pos + 1, data.nextHole(pos)));
            out.add(new Extent(pos, holeAt - pos, true, dirty, false, false));
            pos = holeAt;
        }
    }

    /** Adds [from, to) of not-local data, split where the ledger says the backing was unreadable. */
    private static void addSplitByUnreadable(List<Extent> out, long from, long to, List<long[]> unreadable) {
        long pos = from;
        for (long[] u : unreadable) {
            long a = Math.max(pos, u[0]);
            long b = Math.min(to, u[0] + u[1]);
            if (a >= b) {
                continue;
            }
            if (a > pos) {
                out.add(new Extent(pos, a - pos, false, false, false));
            }
            out.add(new Extent(a, b - a, false, false, true));
            pos = b;
        }
        if (pos < to) {
            out.add(new Extent(pos, to - pos, false, false, false));
        }
    }

    /**
     * Verifies the metadata (header slots, checksums, every bitmap page, the data file's size and name)
     * and the backing's presence and identity. Never changes anything. Returns the problems; empty if
     * clean.
     */
    public static List<String> check(Path leaf) throws IOException {
        List<String> problems = new ArrayList<>();
        LeafHeader header;
        try (LeafImage image = LeafImage.openForCheck(leaf)) {
            header = image.header();
            long dataSize = image.data().size();
            if (dataSize != header.virtualSize()) {
                // local clusters past the data file's end lost their data (truncated behind corfs's back)
                long firstBeyond = Math.min(image.clusters(), dataSize / header.clusterSize());
                long lost = image.local().count(firstBeyond, image.clusters());
                problems.add("leaf data file " + image.dataPath() + " is " + dataSize + " bytes, expected "
                        + header.virtualSize() + " (truncated or replaced)" + (lost == 0 ? ""
                        : ": " + lost + " local cluster(s) lie wholly or partly beyond its end, their data is lost"));
            }
            if (!header.standalone() && image.local().count() == image.clusters()) {
                problems.add("every cluster is local but the leaf is not marked standalone (a crash before the"
                        + " flag was written): 'corfs check --repair' or the next mount records it");
            }
        } catch (CorruptMetadataException e) {
            problems.add(e.getMessage());
            return problems;
        } catch (CorfsException e) {
            problems.add(e.getMessage());
            return problems;
        }
        java.util.Optional<Path> localFile = BackingSpec.RAW.equals(header.backingFormat())
                ? BackingSpec.localFile(header.backingSpec()) : java.util.Optional.empty();
        String shown = BackingSpec.redact(header.backingSpec());
        BackingIdentity now;
        if (localFile.isPresent()) {
            Path backingPath = localFile.get();
            // stat goes to the server on NFS: bounded, so check answers even when the backing hangs
            now = Deadline.within("stat of backing " + backingPath, BACKING_DEADLINE_MS,
                    () -> Files.exists(backingPath) ? FileBacking.identityOf(backingPath) : null, null);
            if (now == null && !header.standalone()) {
                problems.add("backing " + backingPath + " is missing and the leaf is not standalone");
            }
        } else {
            Backings backings = new Backings(FileOps.system());
            try {
                OpenedBacking b = OpenedBacking.openBounded(backings, header.backingSpec(), header.backingFormat(),
                        header.backingOptions());
                now = b.identity;
                b.close();
            } catch (IOException e) {
                now = null;
                if (!header.standalone()) {
                    problems.add("backing " + shown + " cannot be opened and the leaf is not standalone: "
                            + e.getMessage());
                }
            }
        }
        if (now != null) {
            if (now.size() != header.virtualSize()) {
                problems.add("backing " + shown + " is " + now.size() + " bytes, the leaf " + header.virtualSize());
            } else if (BackingChange.judge(header, now) == BackingChange.Verdict.CHANGED) {
                problems.add(BackingChange.problem(header, now));
            }
        }
        return problems;
    }
}
