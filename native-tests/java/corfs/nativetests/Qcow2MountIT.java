package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 9 through a real mount: qcow2 images made here by qemu-img and qemu-io (nothing binary checked
 * in), each created as a leaf with format detection, mounted, compared byte for byte with
 * {@code qemu-img convert -O raw}, streamed to standalone (the leaf file then equals the raw image, its
 * holes kept: {@code corfs map} shows them as local-zero), and the same over nginx and over NBD
 * ({@code qemu-nbd -f raw} serving the qcow2 file's bytes, so corfs decodes it).
 */
@DisplayName("qcow2 backings through a mount: file, HTTP, NBD")
class Qcow2MountIT {
    private static final Duration GUARD = Duration.ofMinutes(6);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();
    @RegisterExtension
    final LocalServers servers = LocalServers.perTest();

    private void sh(String script) {
        fx.sh("cd '" + fx.dir() + "' && " + script).assertOk();
    }

    /** The corpus: name of each top image in fx.dir(). */
    private List<String> corpus() {
        assumeTrue(LocalServers.have("qemu-img") && LocalServers.have("qemu-io"), "qemu-utils is not installed");
        String writes = "-c 'write -P 0x11 0 100k' -c 'write -P 0x22 5M 1M' -c 'write -P 0x33 31M 4k'"
                + " -c 'write -z 20M 2M' -c 'write -P 0x44 12345k 3k'";
        sh("head -c 6M /dev/urandom > data.raw && truncate -s 32M data.raw");
        sh("qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 32M && qemu-io -f qcow2 " + writes + " v2.qcow2");
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            sh("qemu-img create -q -f qcow2 -o cluster_size=" + cs + " v3-" + cs + ".qcow2 32M && qemu-io -f qcow2 "
                    + writes + " v3-" + cs + ".qcow2");
        }
        sh("qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib data.raw zlib.qcow2");
        sh("qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd data.raw zstd.qcow2");
        sh("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=65536 -b data.raw -F raw ext.qcow2"
                + " && qemu-io -f qcow2 -c 'write -P 0x61 1k 512' -c 'write -z 200k 8k' -c 'write -P 0x63 1M 2k'"
                + " -c 'write -z 1030k 2k' ext.qcow2");
        sh("qemu-img create -q -f qcow2 -o preallocation=metadata pre.qcow2 16M"
                + " && qemu-io -f qcow2 -c 'write -P 0x31 1M 70k' -c 'write -z 4M 128k' pre.qcow2");
        // a chain of three layers with relative names over a raw base
        sh("mkdir -p chain && cd chain && head -c 4M /dev/urandom > base.raw && truncate -s 16M base.raw"
                + " && qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2"
                + " && qemu-io -f qcow2 -c 'write -P 0x71 1M 1M' -c 'write -z 3M 64k' mid.qcow2"
                + " && qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2"
                + " && qemu-io -f qcow2 -c 'write -P 0x72 1536k 8k' -c 'write -P 0x73 15M 4k' top.qcow2");
        return List.of("v2.qcow2", "v3-512.qcow2", "v3-4096.qcow2", "v3-65536.qcow2", "v3-2097152.qcow2",
                "zlib.qcow2", "zstd.qcow2", "ext.qcow2", "pre.qcow2", "chain/top.qcow2");
    }

    /** Leaf over SPEC, mounted: equals the raw conversion; streamed: the leaf file equals it, holes kept. */
    private void checkThroughMount(String spec, Path raw, String tag) {
        Path leaf = fx.dir().resolve("leaf-" + tag + ".raw");
        Result created = fx.corfs("create", "--backing", spec, leaf.toString()).assertOk();
        assertTrue(created.stdout().contains("(qcow2, detected)"), created.toString());
        Path mnt = uncheckedMountPoint("mnt-" + tag);
        fx.mount(mnt, leaf);
        Path exposed = mnt.resolve(leaf.getFileName());
        fx.assertSameContent(exposed, raw);
        fx.corfs("stream", mnt.toString(), "--wait").assertOk();
        fx.umount(mnt);
        fx.assertSameContent(leaf, raw);
        Result map = fx.corfs("map", leaf.toString()).assertOk();
        assertTrue(map.stdout().contains("local-zero"), "the zero ranges stayed holes: " + map);
        fx.corfs("check", leaf.toString()).assertOk();
    }

    private Path uncheckedMountPoint(String name) {
        try {
            return fx.newMountPoint(name);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    @DisplayName("every corpus image from a local file: cmp, stream to standalone, holes kept; info shows the chain")
    void localFiles() {
        assertTimeoutPreemptively(GUARD, () -> {
            List<String> images = corpus();
            int k = 0;
            for (String img : images) {
                sh("qemu-img convert -O raw " + img + " expect-" + k + ".raw");
                checkThroughMount(fx.dir().resolve(img).toString(), fx.dir().resolve("expect-" + k + ".raw"), "f" + k);
                k++;
            }
            Result info = fx.corfs("info", "--json", fx.dir().resolve("leaf-f" + (k - 1) + ".raw").toString()).assertOk();
            assertTrue(info.stdout().contains("\"backing_name\":\"mid.qcow2\"")
                    && info.stdout().contains("\"backing_name\":\"base.raw\""), info.toString());
        });
    }

    @Test
    @DisplayName("the chain with relative names over nginx, and a compressed image over NBD (qemu-nbd -f raw)")
    void overHttpAndNbd() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(Nginx.installed() && LocalServers.have("qemu-nbd"), "needs nginx and qemu-nbd");
            corpus();
            sh("qemu-img convert -O raw chain/top.qcow2 expect-chain.raw && qemu-img convert -O raw zstd.qcow2"
                    + " expect-zstd.raw");
            int port = LocalServers.freePort();
            Nginx.start(servers, "nginx", fx.dir(), fx.dir(), port, null, "");
            checkThroughMount("http://127.0.0.1:" + port + "/chain/top.qcow2", fx.dir().resolve("expect-chain.raw"),
                    "http");
            int nbd = LocalServers.freePort();
            servers.start("qemu-nbd", List.of("qemu-nbd", "--read-only", "--persistent", "--format=raw",
                    "--bind=127.0.0.1", "--port=" + nbd, "--export-name=img", fx.dir().resolve("zstd.qcow2").toString()),
                    fx.dir(), nbd, Duration.ofSeconds(20));
            checkThroughMount("nbd://127.0.0.1:" + nbd + "/img", fx.dir().resolve("expect-zstd.raw"), "nbd");
        });
    }

    @Test
    @DisplayName("a sparse 1 TiB qcow2: mounts at once, reads right, streams to a leaf that stays sparse")
    void sparseTerabyte() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("qemu-img"), "qemu-utils is not installed");
            sh("qemu-img create -q -f qcow2 big.qcow2 1T && qemu-io -f qcow2 -c 'write -P 0x5a 0 64k'"
                    + " -c 'write -P 0xa5 700G 1M' -c 'write -P 0x3c 1099511562240 64k' big.qcow2");
            Path leaf = fx.dir().resolve("big.raw");
            fx.corfs("create", "--backing", fx.dir().resolve("big.qcow2").toString(), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            Path exposed = mnt.resolve("big.raw");
            assertEquals(1L << 40, Files.size(exposed));
            byte[] at700 = CorfsFixture.pread(exposed, 700L << 30, 1 << 20);
            for (byte b : at700) {
                assertEquals((byte) 0xa5, b);
            }
            byte[] between = CorfsFixture.pread(exposed, 300L << 30, 65536);
            for (byte b : between) {
                assertEquals(0, b);
            }
            fx.corfs("stream", mnt.toString(), "--wait").assertOk();
            fx.umount(mnt);
            long allocated = Long.parseLong(fx.run(Duration.ofSeconds(10), "stat", "-c", "%b", leaf.toString())
                    .assertOk().stdout().strip()) * 512;
            assertTrue(allocated < (16L << 20), "a 1 TiB leaf with 1.1 MiB of data allocates " + allocated);
            byte[] last = CorfsFixture.pread(leaf, (1L << 40) - 65536, 65536);
            for (byte b : last) {
                assertEquals((byte) 0x3c, b);
            }
        });
    }
}
