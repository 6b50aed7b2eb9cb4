package corfs.image;

import corfs.CorfsException;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingSpec;
import corfs.backing.Deadline;
import corfs.backing.FileBacking;
import corfs.io.FileOps;

import java.io.IOException;
import java.nio.file.Files;
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
                    h.job().kind(), h.job().state(), h.job().speed(), h.job().onError(), h.job().error());
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
                    out.add(new Extent(from, to - from, true, d, false));
                } else {
                    addSplitByUnreadable(out, from, to, unreadable);
                }
                c = end;
            }
            return out;
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
        Path backing;
        try {
            backing = Path.of(header.backingPath());
        } catch (CorfsException e) {
            problems.add(e.getMessage());
            return problems;
        }
        Path backingPath = backing;
        // stat goes to the server on NFS: bounded, so check answers even when the backing hangs
        BackingIdentity now = Deadline.within("stat of backing " + backing, BACKING_DEADLINE_MS,
                () -> Files.exists(backingPath) ? FileBacking.identityOf(backingPath) : null, null);
        if (now == null) {
            if (!header.standalone()) {
                problems.add("backing " + backing + " is missing and the leaf is not standalone");
            }
        } else {
            if (now.size() != header.virtualSize()) {
                problems.add("backing " + backing + " is " + now.size() + " bytes, the leaf " + header.virtualSize());
            } else if (BackingChange.judge(header, now) == BackingChange.Verdict.CHANGED) {
                problems.add(BackingChange.problem(header, now));
            }
        }
        return problems;
    }
}
