package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7, item 9: a leaf made fully local by the guest (copy-on-read, writes), with no stream job, is
 * standalone: after an unmount it mounts and reads right without its backing.
 */
@DisplayName("a leaf made fully local without a stream is standalone")
class StandaloneIT {
    private static final long SIZE = 16L << 20;

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("dd the whole disk, a write, unmount, remove the backing, mount again: cmp equal")
    void copyOnReadOfEverything() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            Path backing = fx.makeBacking("base.raw", SIZE, 9);
            Path model = fx.dir().resolve("model.raw");
            Files.copy(backing, model);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path img = mnt.resolve("disk.raw");
            fx.mount(mnt, leaf);
            byte[] data = new byte[12345];
            new Random(9).nextBytes(data);
            fx.dd(img, 3 * 65536 + 100, data, true).assertOk();
            CorfsFixture.pwrite(model, 3 * 65536 + 100, data);
            fx.run(Duration.ofSeconds(60), "dd", "if=" + img, "of=/dev/null", "bs=1M", "status=none").assertOk();
            Map<String, String> s = fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(30), "standalone",
                    st -> "yes".equals(st.get("standalone")));
            assertEquals(Long.toString(SIZE), s.get("local_bytes"), s.toString());
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();

            Files.delete(backing);
            fx.mount(mnt, leaf);
            assertEquals("yes", fx.status(mnt, "disk.raw").get("standalone"));
            fx.assertSameContent(img, model);
            fx.umount(mnt);
            fx.assertSameContent(leaf, model); // and the leaf alone is the raw disk
        });
    }
}
