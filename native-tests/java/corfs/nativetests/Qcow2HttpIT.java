package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.http.HttpTransport;
import corfs.backing.qcow2.LayerInfo;
import corfs.backing.qcow2.LayerOpener;
import corfs.backing.qcow2.Qcow2Backing;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The qcow2 format over the HTTP transport against nginx on 127.0.0.1: a chain of three qcow2 layers
 * with relative names (one going up with {@code ../}) over a raw base, each layer fetched from the same
 * origin by range requests, read in full and compared with {@code qemu-img convert -O raw} of the same
 * files on disk; hostile images on the server naming a local file or another origin are refused.
 * Layers are opened with {@link HttpTransport}, as {@code Backings} opens them.
 */
@DisplayName("qcow2 chain over HTTP (nginx)")
class Qcow2HttpIT {
    private static final Duration GUARD = Duration.ofSeconds(180);

    @RegisterExtension
    final LocalServers servers = LocalServers.perTest();
    @TempDir
    Path dir;
    private Path www;
    private String origin;

    @BeforeEach
    void setUp() throws Exception {
        assumeTrue(LocalServers.have("nginx"), "nginx is not installed (scripts/install-deps installs it)");
        assumeTrue(LocalServers.have("qemu-img") && LocalServers.have("qemu-io"), "qemu-utils is not installed");
        www = Files.createDirectories(dir.resolve("www"));
        int port = LocalServers.freePort();
        Path prefix = Files.createDirectories(dir.resolve("nginx"));
        Files.createDirectories(prefix.resolve("tmp"));
        String conf = "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + prefix.resolve("nginx.pid") + ";\n"
                + "error_log " + prefix.resolve("error.log") + " info;\nevents { worker_connections 128; }\nhttp {\n"
                + " access_log off;\n types { }\n default_type application/octet-stream;\n"
                + " client_body_temp_path " + prefix.resolve("tmp/body") + ";\n proxy_temp_path " + prefix.resolve("tmp/proxy")
                + ";\n fastcgi_temp_path " + prefix.resolve("tmp/fcgi") + ";\n uwsgi_temp_path " + prefix.resolve("tmp/uwsgi")
                + ";\n scgi_temp_path " + prefix.resolve("tmp/scgi") + ";\n"
                + " server {\n  listen 127.0.0.1:" + port + ";\n  root " + www + ";\n }\n}\n";
        Path confFile = prefix.resolve("nginx.conf");
        Files.writeString(confFile, conf);
        String nginx = Files.isExecutable(Path.of("/usr/sbin/nginx")) ? "/usr/sbin/nginx" : "nginx";
        servers.start("nginx", List.of(nginx, "-c", confFile.toString(), "-p", prefix.toString()), prefix, port,
                Duration.ofSeconds(20));
        origin = "http://127.0.0.1:" + port;
    }

    /** The HTTP transport as Backings opens a chain's layers: the same options for each; records the SPECs. */
    static final class HttpOpener implements LayerOpener {
        final List<String> specs = Collections.synchronizedList(new ArrayList<>());

        @Override
        public Backing open(String spec) throws IOException {
            specs.add(spec);
            return new HttpTransport().open(spec, Map.of("timeout", "30"));
        }
    }

    private Qcow2Backing open(String path, HttpOpener opener) throws IOException {
        String spec = origin + path;
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

    /**
     * www/img/top.qcow2 -> layers/l2.qcow2 -> l1.qcow2 (4 KiB clusters) -> ../base/base.raw (shorter, 6 MiB),
     * zero clusters in the middle, compressed clusters in l1.
     */
    private Path makeChain() throws Exception {
        Path img = Files.createDirectories(www.resolve("img"));
        Path layers = Files.createDirectories(img.resolve("layers"));
        Files.createDirectories(img.resolve("base"));
        byte[] base = new byte[6 << 20];
        new Random(17).nextBytes(base);
        Files.write(img.resolve("base/base.raw"), base);
        byte[] text = new byte[2 << 20];
        for (int i = 0; i < text.length; i++) {
            text[i] = (byte) ("compressible layer " + (i >> 16)).charAt(i % 19);
        }
        Files.write(dir.resolve("text.raw"), text);
        run(dir, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", "text.raw",
                layers.resolve("l1.qcow2").toString());
        run(layers, "qemu-img", "resize", "-q", "-f", "qcow2", "l1.qcow2", "8M");
        run(layers, "qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "../base/base.raw", "-F", "raw", "l1.qcow2");
        run(layers, "qemu-io", "-f", "qcow2", "-c", "write -P 0x81 3M 64k", "-c", "write -z 4M 64k", "l1.qcow2");
        run(layers, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "l1.qcow2", "-F", "qcow2", "l2.qcow2", "8M");
        run(layers, "qemu-io", "-f", "qcow2", "-c", "write -P 0x91 1M 4k", "-c", "write -z 5M 8k", "-c",
                "write -P 0x92 7M 4k", "l2.qcow2");
        run(img, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "layers/l2.qcow2", "-F", "qcow2", "top.qcow2", "10M");
        run(img, "qemu-io", "-f", "qcow2", "-c", "write -P 0xa1 4M 64k", "-c", "write -P 0xa2 9M 64k", "top.qcow2");
        return img.resolve("top.qcow2");
    }

    @Test
    @DisplayName("three qcow2 layers with relative names over a raw base: every byte and extent as qemu-img says")
    void chain() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path top = makeChain();
            run(dir, "qemu-img", "convert", "-O", "raw", top.toString(), dir.resolve("expected.raw").toString());
            byte[] expected = Files.readAllBytes(dir.resolve("expected.raw"));
            String json = run(dir, "qemu-img", "map", "--output=json", top.toString());
            HttpOpener opener = new HttpOpener();
            try (Qcow2Backing b = open("/img/top.qcow2", opener)) {
                assertEquals(List.of(origin + "/img/top.qcow2", origin + "/img/layers/l2.qcow2",
                        origin + "/img/layers/l1.qcow2", origin + "/img/base/base.raw"), opener.specs);
                List<LayerInfo> chain = b.chain();
                assertEquals(List.of("qcow2", "qcow2", "qcow2", "raw"), chain.stream().map(LayerInfo::format).toList());
                assertEquals("zlib", chain.get(2).compression());
                assertEquals(expected.length, b.size());
                // 1 MiB reads from four threads at once, as a stream does
                byte[] got = new byte[expected.length];
                ExecutorService pool = Executors.newFixedThreadPool(4, r -> new Thread(r, "qcow2-http-reader"));
                try {
                    List<Future<?>> reads = new ArrayList<>();
                    for (int off = 0; off < got.length; off += 1 << 20) {
                        int at = off;
                        reads.add(pool.submit(() -> {
                            ByteBuffer dst = ByteBuffer.allocate(Math.min(1 << 20, got.length - at));
                            b.readFully(dst, at);
                            System.arraycopy(dst.array(), 0, got, at, dst.capacity());
                            return null;
                        }));
                    }
                    for (Future<?> f : reads) {
                        f.get(120, TimeUnit.SECONDS);
                    }
                } finally {
                    pool.shutdown();
                    assertTrue(pool.awaitTermination(30, TimeUnit.SECONDS));
                }
                assertArrayEquals(expected, got, "bytes differ from qemu-img convert");
                compareMap(b, json);
                BackingIdentity id = b.identity();
                assertEquals(id, b.identity());
                assertTrue(id.describe().matches("qcow2 chain [0-9a-f]{12} of 4 layer\\(s\\): top "
                        + java.util.regex.Pattern.quote(origin + "/img/top.qcow2") + ".*"),
                        id.describe());
            }
        });
    }

    /** Extents agree with qemu-img map: data, zero (present) and holes (nowhere in the chain). */
    private static void compareMap(Qcow2Backing b, String json) throws IOException {
        Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+), \"depth\": \\d+, \"present\": (true|false), "
                + "\"zero\": (?:true|false), \"data\": (true|false)").matcher(json);
        long covered = 0;
        while (m.find()) {
            long start = Long.parseLong(m.group(1));
            long end = start + Long.parseLong(m.group(2));
            Allocation.Kind want = Boolean.parseBoolean(m.group(4)) ? Allocation.Kind.DATA
                    : Boolean.parseBoolean(m.group(3)) ? Allocation.Kind.ZERO : Allocation.Kind.HOLE;
            assertEquals(covered, start);
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
    @DisplayName("a layer replaced on the server changes the chain's identity")
    void changedLayer() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path top = makeChain();
            BackingIdentity before;
            try (Qcow2Backing b = open("/img/top.qcow2", new HttpOpener())) {
                before = b.identity();
            }
            Path l1 = top.getParent().resolve("layers/l1.qcow2");
            Path copy = l1.resolveSibling("l1-new.qcow2"); // beside it, so its relative backing name resolves
            Files.copy(l1, copy);
            run(dir, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 6M 4k", copy.toString());
            Files.setLastModifiedTime(copy, FileTime.fromMillis(System.currentTimeMillis() + 60_000));
            Files.move(copy, l1, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            try (Qcow2Backing b = open("/img/top.qcow2", new HttpOpener())) {
                assertNotEquals(before, b.identity());
            }
        });
    }

    @Test
    @DisplayName("an image on the server naming a local file or another origin is refused; ../ above the root stays on it")
    void hostileNames() {
        assertTimeoutPreemptively(GUARD, () -> {
            Files.write(www.resolve("base.raw"), new byte[1 << 20]);
            String[][] cases = {
                {"passwd.qcow2", "/etc/passwd", "must not name a local file"},
                {"file.qcow2", "file:///etc/passwd", "must not name a local file"},
                {"other.qcow2", "http://127.0.0.2:" + origin.substring(origin.lastIndexOf(':') + 1) + "/base.raw",
                    "another origin"},
                {"net.qcow2", "//127.0.0.2/base.raw", "another origin"},
            };
            for (String[] c : cases) {
                run(www, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", c[1], "-F", "raw", c[0], "1M");
                HttpOpener opener = new HttpOpener();
                CorfsException e = assertThrows(CorfsException.class, () -> open("/" + c[0], opener));
                assertTrue(e.getMessage().contains(c[2]), e.getMessage());
                assertEquals(1, opener.specs.size(), "only the top was opened: " + opener.specs);
            }
            run(www, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "../../../../base.raw", "-F", "raw",
                    "up.qcow2", "1M");
            HttpOpener opener = new HttpOpener();
            try (Qcow2Backing b = open("/up.qcow2", opener)) {
                assertEquals(origin + "/base.raw", opener.specs.get(1));
                ByteBuffer dst = ByteBuffer.allocate(4096);
                b.readFully(dst, 0);
                assertEquals(0, dst.position() - 4096);
            }
        });
    }
}
