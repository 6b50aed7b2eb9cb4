package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.nbd.NbdTransport;
import corfs.backing.qcow2.LayerOpener;
import corfs.backing.qcow2.Qcow2Backing;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The qcow2 format over NBD: the qcow2 file exported as raw bytes ({@code qemu-nbd -f raw}, or nbdkit's
 * file plugin serving a folder, one export per file), decoded by corfs. An NBD export has no folder, so
 * a chain over NBD names its layers by absolute NBD URLs on the same server; a relative name is refused
 * with what to do instead.
 * Layers are opened with {@link NbdTransport}, as {@code Backings} opens them.
 */
@DisplayName("qcow2 over NBD (qemu-nbd, nbdkit)")
class Qcow2NbdIT {
    private static final Duration GUARD = Duration.ofSeconds(180);

    @RegisterExtension
    final NbdServers servers = new NbdServers();
    private Path dir;

    @BeforeEach
    void setUp() throws IOException {
        assumeTrue(NbdServers.installed("qemu-img") && NbdServers.installed("qemu-io"), "qemu-utils is not installed");
        dir = Files.createDirectories(servers.dir().resolve("img"));
    }

    /** The NBD transport as Backings opens a chain's layers: the same options for each; records the SPECs. */
    static final class NbdOpener implements LayerOpener {
        final List<String> specs = Collections.synchronizedList(new ArrayList<>());

        @Override
        public Backing open(String spec) throws IOException {
            specs.add(spec);
            return new NbdTransport().open(spec, Map.of());
        }
    }

    private static Qcow2Backing open(String spec, NbdOpener opener) throws IOException {
        return Qcow2Backing.open(spec, opener.open(spec), opener, Map.of());
    }

    private static String run(Path cwd, String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timed out: " + String.join(" ", cmd));
        String text = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), () -> String.join(" ", cmd) + " failed: " + text);
        return text;
    }

    /** Every byte as {@code qemu-img convert -O raw} of {@code image}, every extent as {@code qemu-img map}. */
    private void verify(Qcow2Backing b, String image) throws Exception {
        Path out = dir.resolve("expected.raw");
        run(dir, "qemu-img", "convert", "-O", "raw", image, out.toString());
        byte[] expected = Files.readAllBytes(out);
        Files.delete(out);
        assertEquals(expected.length, b.size());
        byte[] got = new byte[expected.length];
        for (int off = 0; off < got.length; off += 1 << 20) {
            ByteBuffer dst = ByteBuffer.wrap(got, off, Math.min(1 << 20, got.length - off));
            b.readFully(dst, off);
        }
        assertArrayEquals(expected, got, "bytes differ from qemu-img convert");
        String json = run(dir, "qemu-img", "map", "--output=json", image);
        Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+), \"depth\": \\d+, \"present\": (true|false), "
                + "\"zero\": (?:true|false), \"data\": (true|false)").matcher(json);
        long covered = 0;
        while (m.find()) {
            long start = Long.parseLong(m.group(1));
            long end = start + Long.parseLong(m.group(2));
            Allocation.Kind want = Boolean.parseBoolean(m.group(4)) ? Allocation.Kind.DATA
                    : Boolean.parseBoolean(m.group(3)) ? Allocation.Kind.ZERO : Allocation.Kind.HOLE;
            for (long pos = start; pos < end; ) {
                Allocation a = b.allocation(pos, end - pos);
                assertEquals(want, a.kind(), "allocation at " + pos);
                pos += a.length();
            }
            covered = end;
        }
        assertEquals(b.size(), covered);
    }

    @Test
    @DisplayName("qemu-nbd -f raw on a zstd-compressed qcow2 with zero clusters: corfs decodes it")
    void qemuNbdRaw() {
        assertTimeoutPreemptively(GUARD, () -> {
            byte[] data = new byte[8 << 20];
            Random r = new Random(4);
            for (int i = 0; i < data.length; i += 65536) {
                if (i % (3 * 65536) == 0) {
                    byte[] chunk = new byte[65536];
                    r.nextBytes(chunk);
                    System.arraycopy(chunk, 0, data, i, chunk.length);
                } else if (i % (3 * 65536) == 65536) {
                    for (int k = 0; k < 65536; k++) {
                        data[i + k] = (byte) ("nbd qcow2 " + (i >> 16)).charAt(k % 10);
                    }
                }
            }
            Files.write(dir.resolve("src.raw"), data);
            run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", "src.raw",
                    "z.qcow2");
            run(dir, "qemu-io", "-f", "qcow2", "-c", "write -z 2M 1M", "-c", "write -P 0x3e 5M 4k", "z.qcow2");
            NbdServers.Server s = servers.qemuNbd(dir.resolve("z.qcow2"), false, "-r");
            NbdOpener opener = new NbdOpener();
            try (Qcow2Backing b = open(s.uri(""), opener)) {
                assertEquals("zstd", b.chain().get(0).compression());
                verify(b, dir.resolve("z.qcow2").toString());
            }
        });
    }

    @Test
    @DisplayName("nbdkit serving a folder: a chain named by NBD URLs on the same server reads through; a relative name is refused")
    void chainOnOneServer() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(NbdServers.installed("nbdkit"), "nbdkit is not installed");
            byte[] base = new byte[6 << 20];
            new Random(6).nextBytes(base);
            Files.write(dir.resolve("base.raw"), base);
            NbdServers.Server s = servers.nbdkit(false, "-r", "file", "dir=" + dir);
            String baseUri = s.uri("base.raw");
            run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", baseUri, "-F", "raw", "mid.qcow2", "8M");
            run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", s.uri("mid.qcow2"), "-F", "qcow2", "top.qcow2", "8M");
            // the layers' data, written with qemu-io over a local twin of the chain (the server is read-only)
            Path twin = Files.createDirectories(servers.dir().resolve("twin"));
            Files.copy(dir.resolve("base.raw"), twin.resolve("base.raw"));
            run(twin, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "mid.qcow2", "8M");
            run(twin, "qemu-io", "-f", "qcow2", "-c", "write -P 0x71 1M 64k", "-c", "write -z 3M 64k", "-c",
                    "write -P 0x72 7M 4k", "mid.qcow2");
            run(twin, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "8M");
            run(twin, "qemu-io", "-f", "qcow2", "-c", "write -P 0x73 2M 64k", "top.qcow2");
            for (String layer : new String[] {"mid.qcow2", "top.qcow2"}) {
                String name = layer.equals("mid.qcow2") ? baseUri : s.uri("mid.qcow2");
                run(twin, "qemu-img", "rebase", "-u", "-f", "qcow2", "-b", name, "-F",
                        layer.equals("mid.qcow2") ? "raw" : "qcow2", layer);
                Files.copy(twin.resolve(layer), dir.resolve(layer), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
            NbdOpener opener = new NbdOpener();
            try (Qcow2Backing b = open(s.uri("top.qcow2"), opener)) {
                assertEquals(List.of(s.uri("top.qcow2"), s.uri("mid.qcow2"), baseUri), opener.specs);
                verify(b, dir.resolve("top.qcow2").toString());
            }
            run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw", "rel.qcow2", "8M");
            NbdOpener refused = new NbdOpener();
            CorfsException e = assertThrows(CorfsException.class, () -> open(s.uri("rel.qcow2"), refused));
            assertTrue(e.getMessage().contains("an NBD export has no folder"), e.getMessage());
            assertEquals(1, refused.specs.size());
        });
    }
}
