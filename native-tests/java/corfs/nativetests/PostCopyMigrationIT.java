package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 8's end-to-end proof: examples/post-copy-migration.sh as a user runs it. The source exports its
 * disk read-only over NBD (qemu-nbd), the destination mounts a leaf over it and runs fio with verify at
 * once while a stream pulls the rest; the source is stopped when the leaf is standalone; fio verifies
 * its writes with the source gone, the rest of the disk is compared with the source, and again after a
 * remount. The script exits non-zero on any mismatch; the test also checks the kept leaf by itself.
 */
@DisplayName("post-copy block migration over NBD, end to end")
class PostCopyMigrationIT {
    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("examples/post-copy-migration.sh: workload verified and the disk equal with the source gone")
    void postCopyMigration() {
        assertTimeoutPreemptively(Duration.ofMinutes(6), () -> {
            assumeTrue(LocalServers.have("qemu-nbd") && LocalServers.have("fio"), "needs qemu-nbd and fio");
            Path keep = fx.dir().resolve("dest");
            Path script = fx.repo().resolve("examples/post-copy-migration.sh");
            Result r = fx.run(Duration.ofMinutes(5), Map.of("KEEP", keep.toString(), "CORFS", fx.launcher().toString(),
                    "TMPDIR", fx.dir().toString()), "bash", script.toString());
            assertEquals(0, r.exit(), r.toString());
            assertTrue(r.stdout().contains("migration verified"), r.toString());
            Path leaf = keep.resolve("disk.raw");
            assertTrue(Files.isRegularFile(leaf));
            Result info = fx.corfs("info", "--json", leaf.toString()).assertOk();
            assertTrue(info.stdout().contains("\"standalone\":true"), info.toString());
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }
}
