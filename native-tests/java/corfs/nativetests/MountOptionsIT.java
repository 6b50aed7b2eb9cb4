package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Issue 7: {@code -o ro} is {@code --read-only}, {@code -o rw} the default; backing_timeout is whole seconds. */
@DisplayName("mount -o ro, rw, backing_timeout")
class MountOptionsIT {
    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("-o ro gives 0400 files and a usable control file; -o rw mounts read-write; bad timeouts are 64")
    void roRwTimeout() {
        assertTimeoutPreemptively(Duration.ofMinutes(2), () -> {
            Path backing = fx.makeBacking("base.raw", 1 << 20, 3);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            for (String bad : new String[] {"1e-9", "5d", "0x1p3", "0.5"}) {
                Result r = fx.tryMount(mnt, List.of("-o", "backing_timeout=" + bad), leaf);
                assertEquals(64, r.exit(), bad + ": " + r);
                assertTrue(r.stderr().contains("whole seconds"), r.toString());
                assertFalse(CorfsFixture.isMounted(mnt));
            }

            fx.mount(mnt, List.of("-o", "ro"), leaf);
            Path img = mnt.resolve("disk.raw");
            assertEquals(0400, (Integer) Files.getAttribute(img, "unix:mode") & 0777, "image mode with -o ro");
            Result w = fx.run(Duration.ofSeconds(30), "sh", "-c", "/bin/echo x | dd of=\"$1\" conv=notrunc 2>&1",
                    "sh", img.toString());
            assertTrue(w.exit() != 0 && w.stdout().contains("Read-only"), w.toString());
            Result c = fx.control(mnt, "pause");
            // the control file takes the command (no job: EALREADY), it is not a read-only file
            assertTrue(c.stderr().contains("already in progress"), c.toString());
            fx.umount(mnt);

            fx.mount(mnt, List.of("-o", "rw"), leaf);
            assertEquals(0600, (Integer) Files.getAttribute(img, "unix:mode") & 0777, "image mode with -o rw");
            fx.dd(img, 0, new byte[4096], true).assertOk();
            fx.umount(mnt);
        });
    }
}
