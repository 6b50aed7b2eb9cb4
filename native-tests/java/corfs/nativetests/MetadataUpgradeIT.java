package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.image.MetadataFormat;
import corfs.image.V1Headers;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7: metadata upgrades. A leaf made and used by an old release (its header slots in the
 * version 1 layout, written by the tests' copy of that encoder; the bitmap pages are the same in every
 * version) mounts read-only without being written, mounts writable and is of the current version
 * ({@link MetadataFormat#VERSION}) after the unmount, with its data, and still mounts.
 */
@DisplayName("a version 1 leaf mounts, is upgraded by a writable mount, and still mounts")
class MetadataUpgradeIT {
    private static final int MIB = 1 << 20;
    private static final int SIZE = 8 * MIB;
    /** A hang guard only: about a dozen CLI runs, each a JVM start, on a loaded machine. */
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(10);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private void assertVersion(Path leaf, int version) {
        String json = fx.corfs("info", "--json", leaf.toString()).assertOk().stdout();
        assertTrue(json.contains("\"version\":" + version + ","), json);
        assertTrue(json.contains("\"format\":\"raw\""), json);
    }

    @Test
    @DisplayName("read-only mount leaves it version 1; writable mount upgrades it; data and bits survive")
    void upgrade() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 11);
            Path leaf = fx.createLeaf(backing, "vm.raw");
            byte[] model = Files.readAllBytes(backing);
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("vm.raw");

            // used as the previous release would: some copy-on-read, some writes
            fx.mount(mnt, leaf);
            CorfsFixture.pread(img, 3L * MIB, MIB);
            patch(img, model, 100_000, 5000, 1);
            fx.umount(mnt);
            V1Headers.downgrade(leaf);
            byte[] v1Meta = Files.readAllBytes(CorfsFixture.metadataOf(leaf));

            fx.mount(mnt, List.of("--read-only"), leaf);
            assertArrayEquals(model, Files.readAllBytes(img), "read-only mount of the version 1 leaf");
            fx.umount(mnt);
            assertVersion(leaf, 1);
            assertArrayEquals(v1Meta, Files.readAllBytes(CorfsFixture.metadataOf(leaf)),
                    "a read-only mount or info wrote the version 1 metadata");

            fx.mount(mnt, leaf);
            assertArrayEquals(model, Files.readAllBytes(img), "writable mount of the version 1 leaf");
            patch(img, model, 5L * MIB + 3, 70_000, 2);
            fx.umount(mnt);
            assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 0));
            assertEquals(MetadataFormat.VERSION, V1Headers.versionOf(leaf, 1));
            assertVersion(leaf, MetadataFormat.VERSION);
            fx.corfs("check", leaf.toString()).assertOk();

            fx.mount(mnt, leaf);
            assertArrayEquals(model, Files.readAllBytes(img), "the upgraded leaf");
            fx.umount(mnt);
        });
    }

    private static void patch(Path img, byte[] model, long offset, int length, long seed) throws IOException {
        byte[] data = new byte[length];
        new Random(seed).nextBytes(data);
        CorfsFixture.pwrite(img, offset, data);
        System.arraycopy(data, 0, model, (int) offset, length);
    }
}
