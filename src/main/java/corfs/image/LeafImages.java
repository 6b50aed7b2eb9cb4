package corfs.image;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** API SKELETON (being implemented): the offline operations of the CLI on a leaf. */
public final class LeafImages {
    private LeafImages() { }
    /** Metadata path of a leaf: LEAF.corfs beside it. */
    public static Path metadataPath(Path leaf) { return leaf.resolveSibling(leaf.getFileName() + ".corfs"); }
    /**
     * Creates LEAF (sparse raw, backing's size, mode 0600) and LEAF.corfs. clusterSize: power of two 4K..2M.
     * Refuses (CorfsException with a one-line message) an existing LEAF or LEAF.corfs unless force, a missing or
     * unreadable backing, a bad cluster size.
     */
    public static void create(Path leaf, Path backing, int clusterSize, boolean force) throws IOException { throw new UnsupportedOperationException(); }
    /** Reads the metadata (refuses corrupt/unknown version with CorfsException). */
    public static LeafInfo info(Path leaf) throws IOException { throw new UnsupportedOperationException(); }
    /** The leaf's extents in order, adjacent clusters of one state merged. */
    public static List<Extent> map(Path leaf) throws IOException { throw new UnsupportedOperationException(); }
    /** Verifies the metadata and the data file; never changes anything. Empty list = clean. */
    public static List<String> check(Path leaf) throws IOException { throw new UnsupportedOperationException(); }
}
