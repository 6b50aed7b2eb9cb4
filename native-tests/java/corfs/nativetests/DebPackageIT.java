package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 11: the Debian package, installed on this machine and purged again. {@code scripts/package-deb}
 * builds {@code target/corfs_VERSION_all.deb}; {@code apt-get install ./corfs_*.deb} installs it (its
 * dependencies, a Java runtime, libfuse2 and fuse3, are already there: scripts/install-deps); then
 * {@code mount -t fuse.corfs} mounts a leaf through the packaged helper, {@code umount} unmounts it, the man
 * page and completion are where Debian puts them, and {@code apt-get purge} leaves none of the package's
 * files. Skips when corfs is installed already (not ours to replace or remove).
 */
@DisplayName("Debian package: build, apt-get install, mount -t fuse.corfs, purge")
class DebPackageIT {
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(8);
    private static final Duration APT = Duration.ofMinutes(5);
    private static final int MIB = 1 << 20;

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private boolean installed() {
        Result r = fx.run(Duration.ofSeconds(30), "dpkg-query", "-W", "-f=${Status}", "corfs");
        return r.exit() == 0 && r.stdout().contains("installed") && !r.stdout().contains("not-installed");
    }

    @Test
    @DisplayName("the .deb installs with apt-get, mounts with mount -t fuse.corfs, and purges without a trace")
    void installMountPurge() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            assumeTrue(fx.run(Duration.ofSeconds(10), "id", "-u").stdout().trim().equals("0"), "needs root");
            assumeTrue(Files.isExecutable(Path.of("/usr/bin/apt-get")), "no apt-get");
            assumeFalse(installed(), "corfs is installed on this machine already: not touching it");
            for (String f : List.of("/usr/bin/corfs", "/usr/sbin/mount.fuse.corfs", "/usr/sbin/umount.fuse.corfs")) {
                assumeFalse(Files.exists(Path.of(f), LinkOption.NOFOLLOW_LINKS), f + " exists: not replacing it");
            }
            Result built = fx.run(APT, fx.repo().resolve("scripts/package-deb").toString()).assertOk();
            Path deb;
            try (Stream<Path> s = Files.list(fx.repo().resolve("target"))) {
                deb = s.filter(p -> p.getFileName().toString().matches("corfs_.+_all\\.deb")).findFirst()
                        .orElseThrow(() -> new AssertionError("no target/corfs_*_all.deb: " + built));
            }
            Path copy = fx.dir().resolve(deb.getFileName());
            Files.copy(deb, copy); // the test's own copy: a build running meanwhile may rewrite target/
            Result fields = fx.run(Duration.ofSeconds(30), "dpkg-deb", "-f", copy.toString(), "Package", "Architecture",
                    "Depends").assertOk();
            assertTrue(fields.stdout().contains("Architecture: all"), fields.toString());
            assertTrue(fields.stdout().contains("java17-runtime-headless") && fields.stdout().contains("libfuse2")
                    && fields.stdout().contains("fuse3"), fields.toString());

            fx.onTeardown("apt-get purge corfs", () -> {
                if (installed()) {
                    fx.run(APT, "apt-get", "purge", "-y", "-q", "corfs").assertOk();
                }
            });
            fx.run(APT, "apt-get", "install", "-y", "-q", "--no-install-recommends", copy.toString()).assertOk();
            assertTrue(installed());
            List<String> files = new ArrayList<>();
            for (String line : fx.run(Duration.ofSeconds(30), "dpkg", "-L", "corfs").assertOk().stdout().lines().toList()) {
                if (Files.isRegularFile(Path.of(line), LinkOption.NOFOLLOW_LINKS)) {
                    files.add(line);
                }
            }
            for (String f : List.of("/usr/bin/corfs", "/usr/sbin/mount.fuse.corfs", "/usr/sbin/umount.fuse.corfs",
                    "/usr/share/corfs/corfs.jar", "/usr/share/man/man1/corfs-mount.1.gz",
                    "/usr/share/bash-completion/completions/corfs", "/usr/share/doc/corfs/copyright",
                    "/usr/share/doc/corfs/examples/systemd/fstab", "/usr/share/doc/corfs/examples/systemd/mnt-vm1.mount",
                    "/usr/share/doc/corfs/examples/libvirt/vm1.xml")) {
                assertTrue(files.contains(f), f + " is not in the package: " + files);
            }
            Result v = fx.run(Duration.ofSeconds(60), "/usr/bin/corfs", "--version").assertOk();
            assertTrue(v.stdout().startsWith("corfs ") && v.stdout().contains("libfuse 2.9"), v.toString());
            Result man = fx.run(Duration.ofSeconds(60), "man", "-w", "corfs-mount").assertOk();
            assertEquals("/usr/share/man/man1/corfs-mount.1.gz", man.stdout().trim());

            // mount(8) finds the packaged helper in /sbin (= /usr/sbin), and umount(8) its umount helper.
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 3);
            Path leaf = fx.createLeaf(backing, "disk.raw");
            Path mnt = fx.newMountPoint("mnt");
            fx.run(Duration.ofSeconds(120), "mount", "-t", "fuse.corfs", leaf.toString(), mnt.toString(), "-o",
                    "defaults,nofail,_netdev").assertOk();
            assertEquals("fuse.corfs", CorfsFixture.mountType(mnt));
            fx.assertSameContent(mnt.resolve("disk.raw"), backing);
            List<Long> daemons = CorfsFixture.daemonPidsFor(mnt);
            fx.run(Duration.ofSeconds(120), "umount", mnt.toString()).assertOk();
            assertFalse(CorfsFixture.isMounted(mnt));
            for (long pid : daemons) {
                assertFalse(CorfsFixture.isLiveProcess(pid), "umount returned before the daemon exited");
            }

            fx.run(APT, "apt-get", "purge", "-y", "-q", "corfs").assertOk();
            assertFalse(installed(), "still installed after purge");
            List<String> left = files.stream().filter(f -> Files.exists(Path.of(f), LinkOption.NOFOLLOW_LINKS)).toList();
            assertEquals(List.of(), left, "purge left files behind");
            for (String d : List.of("/usr/share/corfs", "/usr/share/doc/corfs")) {
                assertFalse(Files.exists(Path.of(d)), d + " left behind");
            }
        });
    }
}
