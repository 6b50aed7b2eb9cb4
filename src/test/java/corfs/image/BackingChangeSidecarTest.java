package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.backing.FileBacking;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A pending prefetch ({@code LEAF.corfs-prefetch}) is recorded over one backing identity; once the leaf's
 * recorded identity changes (set-backing --force, a commit), every mount would refuse it: it is dropped then.
 */
@DisplayName("a pending prefetch of the previous backing is dropped when the leaf's backing identity changes")
class BackingChangeSidecarTest {
    private static final int CLUSTER = 65536;
    private static final int SIZE = 4 << 20;

    @TempDir
    Path dir;

    private Path leafWithPendingPrefetch() throws Exception {
        byte[] content = new byte[SIZE];
        new Random(3).nextBytes(content);
        Path base = Files.write(dir.resolve("base.raw"), content);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, base, CLUSTER, true);
        PrefetchRecord.save(leaf, new AccessProfile(FileBacking.identityOf(base).token(), SIZE, CLUSTER,
                List.of(new AccessProfile.Entry(CLUSTER, 2L * CLUSTER, 5))));
        assertTrue(Files.exists(PrefetchRecord.pathOf(leaf)));
        return leaf;
    }

    @Test
    @DisplayName("set-backing --force to a copy: dropped, and the verdict says so")
    void setBackingForce() throws Exception {
        Path leaf = leafWithPendingPrefetch();
        Path copy = Files.copy(dir.resolve("base.raw"), dir.resolve("copy.raw"));
        LeafImages.SetBackingResult r = LeafImages.setBacking(leaf, copy.toString(), Map.of(), true);
        assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)), "a prefetch every mount would refuse");
        assertTrue(r.verdict().contains("pending prefetch"), r.verdict());
    }

    @Test
    @DisplayName("set-backing to the same identity keeps it")
    void sameIdentityKeeps() throws Exception {
        Path leaf = leafWithPendingPrefetch();
        LeafImages.setBacking(leaf, dir.resolve("base.raw").toString(), Map.of(), false);
        assertTrue(Files.exists(PrefetchRecord.pathOf(leaf)));
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
            image.updateHeader(h -> h.withJob(h.job())); // another header change: kept too
        }
        assertTrue(Files.exists(PrefetchRecord.pathOf(leaf)));
    }

    @Test
    @DisplayName("a commit recording the backing's new identity: dropped")
    void commitIdentity() throws Exception {
        Path leaf = leafWithPendingPrefetch();
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
            image.updateHeader(h -> h.withBackingIdentity(BackingIdentity.of("file:other", "after a commit", SIZE)));
        }
        assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)));
    }
}
