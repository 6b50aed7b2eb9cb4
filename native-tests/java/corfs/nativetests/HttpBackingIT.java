package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.CorfsException;
import corfs.backing.Allocation;
import corfs.backing.Backing;
import corfs.backing.http.BackingChangedException;
import corfs.backing.http.HttpTransport;
import corfs.backing.http.HttpOptions;
import corfs.backing.http.HttpRangeReader;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The HTTP(S) transport against real servers started here on 127.0.0.1: nginx (a private config, never
 * the system's) over HTTP and over HTTPS with a CA made by openssl in the test, and Python's http.server
 * as the server without range support. Every byte read is compared with the served file.
 */
@DisplayName("HTTP(S) backing transport against nginx and python3")
class HttpBackingIT {
    private static final Duration GUARD = Duration.ofSeconds(90);
    private static final int SIZE = 4 << 20;

    @RegisterExtension
    final LocalServers servers = LocalServers.perTest();
    @TempDir
    Path dir;
    private Path www;
    private byte[] content;

    @BeforeEach
    void setUp() throws IOException {
        assumeTrue(LocalServers.have("nginx"), "nginx is not installed (scripts/install-deps installs it)");
        www = Files.createDirectories(dir.resolve("www"));
        content = new byte[SIZE];
        new Random(8).nextBytes(content);
        Files.write(www.resolve("img.raw"), content);
    }

    /** nginx on {@code port}: plain, or TLS (with HTTP/2) from dir/tls; a few fixed locations for the tests. */
    private LocalServers.Server nginx(String name, int port, boolean tls, String extra) throws Exception {
        Path prefix = Files.createDirectories(dir.resolve(name));
        Files.createDirectories(prefix.resolve("tmp"));
        String listen = "listen 127.0.0.1:" + port + (tls ? " ssl http2;\n ssl_certificate " + dir.resolve("tls/server.pem")
                + ";\n ssl_certificate_key " + dir.resolve("tls/server.key") + ";" : ";");
        String conf = "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + prefix.resolve("nginx.pid") + ";\n"
                + "error_log " + prefix.resolve("error.log") + " info;\nevents { worker_connections 128; }\nhttp {\n"
                + " access_log off;\n types { }\n default_type application/octet-stream;\n"
                + " client_body_temp_path " + prefix.resolve("tmp/body") + ";\n proxy_temp_path " + prefix.resolve("tmp/proxy")
                + ";\n fastcgi_temp_path " + prefix.resolve("tmp/fcgi") + ";\n uwsgi_temp_path " + prefix.resolve("tmp/uwsgi")
                + ";\n scgi_temp_path " + prefix.resolve("tmp/scgi") + ";\n"
                + " map $http_authorization $denied { default 1; \"Bearer s3cret-t0ken\" 0; }\n"
                + " server {\n " + listen + "\n root " + www + ";\n"
                + "  location = /moved { return 301 /img.raw; }\n"
                + "  location = /forbidden { return 403; }\n  location = /gone { return 410; }\n"
                + "  location /private/ { if ($denied) { return 403; } alias " + www + "/; }\n"
                + extra + " }\n}\n";
        Path confFile = prefix.resolve("nginx.conf");
        Files.writeString(confFile, conf);
        return servers.start(name, List.of(nginxBinary(), "-c", confFile.toString(), "-p", prefix.toString()), prefix,
                port, Duration.ofSeconds(20));
    }

    private static String nginxBinary() {
        return Files.isExecutable(Path.of("/usr/sbin/nginx")) ? "/usr/sbin/nginx" : "nginx";
    }

    private static HttpOptions opts(int timeoutSeconds) {
        return new HttpOptions(Duration.ofSeconds(timeoutSeconds), 4, null, null);
    }

    private void assertRange(HttpRangeReader r, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        r.readFully(b, offset);
        assertArrayEquals(Arrays.copyOfRange(content, (int) offset, (int) offset + length), b.array(), "at " + offset);
    }

    /** 128 random ranges, 32 in flight, and the whole file in 1 MiB reads, each compared byte for byte. */
    private void assertEverything(HttpRangeReader r) throws Exception {
        Random rnd = new Random(3);
        for (int round = 0; round < 4; round++) {
            List<CompletableFuture<Void>> reads = new ArrayList<>();
            List<ByteBuffer> bufs = new ArrayList<>();
            List<Integer> offs = new ArrayList<>();
            for (int i = 0; i < 32; i++) {
                int len = 1 + rnd.nextInt(200_000);
                int off = rnd.nextInt(SIZE - len + 1);
                ByteBuffer b = ByteBuffer.allocateDirect(len);
                bufs.add(b);
                offs.add(off);
                reads.add(r.read(b, off));
            }
            CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
            for (int i = 0; i < bufs.size(); i++) {
                byte[] got = new byte[bufs.get(i).capacity()];
                bufs.get(i).flip().get(got);
                assertArrayEquals(Arrays.copyOfRange(content, offs.get(i), offs.get(i) + got.length), got);
            }
        }
        for (int off = 0; off < SIZE; off += 1 << 20) {
            assertRange(r, off, 1 << 20);
        }
    }

    @Test
    @DisplayName("nginx over HTTP: size, ETag, every range exact; a 301 followed; 403/404/410 named")
    void http() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            String base = "http://127.0.0.1:" + port;
            try (HttpRangeReader r = HttpRangeReader.open(URI.create(base + "/img.raw"), opts(30))) {
                assertEquals(SIZE, r.size());
                assertTrue(r.object().etag() != null, "nginx sends an ETag");
                assertEquals(HttpClient.Version.HTTP_1_1, r.httpVersion());
                long t0 = System.nanoTime();
                assertEverything(r);
                System.out.printf("http: 128 random ranges + 4 MiB sequential in %d ms%n",
                        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
            }
            try (HttpRangeReader r = HttpRangeReader.open(URI.create(base + "/moved"), opts(30))) {
                assertRange(r, SIZE - 4096, 4096);
            }
            for (String[] c : new String[][] {{"/nothing", "HTTP 404"}, {"/forbidden", "HTTP 403"}, {"/gone", "HTTP 410"}}) {
                CorfsException e = assertThrows(CorfsException.class,
                        () -> HttpRangeReader.open(URI.create(base + c[0]), opts(10)));
                assertTrue(e.getMessage().contains(c[1]), e.getMessage());
            }
        });
    }

    @Test
    @DisplayName("header-file: nginx serves /private/ only with the Authorization it holds")
    void headerFile() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            URI uri = URI.create("http://127.0.0.1:" + port + "/private/img.raw");
            CorfsException e = assertThrows(CorfsException.class, () -> HttpRangeReader.open(uri, opts(10)));
            assertTrue(e.getMessage().contains("HTTP 403"), e.getMessage());
            Path headers = dir.resolve("headers");
            Files.writeString(headers, "Authorization: Bearer s3cret-t0ken\n");
            try (HttpRangeReader r = HttpRangeReader.open(uri, new HttpOptions(Duration.ofSeconds(10), 2, null, headers))) {
                assertRange(r, 12345, 100_000);
            }
        });
    }

    @Test
    @DisplayName("nginx over HTTPS with HTTP/2: trusted with ca=, refused with another CA, https->http refused")
    void https() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("openssl"), "openssl is not installed");
            Path tls = Files.createDirectories(dir.resolve("tls"));
            Tls.makeCa(tls, "ca");
            Tls.makeCa(tls, "other-ca");
            Tls.makeServerCert(tls, "ca", "server");
            int plain = LocalServers.freePort();
            int port = LocalServers.freePort();
            nginx("nginx-tls", port, true, "  location = /down { return 302 http://127.0.0.1:" + plain + "/img.raw; }\n");
            URI uri = URI.create("https://127.0.0.1:" + port + "/img.raw");
            HttpOptions trusted = new HttpOptions(Duration.ofSeconds(30), 4, tls.resolve("ca.pem"), null);
            try (HttpRangeReader r = HttpRangeReader.open(uri, trusted)) {
                assertEquals(HttpClient.Version.HTTP_2, r.httpVersion());
                long t0 = System.nanoTime();
                assertEverything(r);
                System.out.printf("https (h2): 128 random ranges + 4 MiB sequential in %d ms%n",
                        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
                Path next = dir.resolve("next.raw");
                Files.write(next, new byte[SIZE]);
                Files.setLastModifiedTime(next, FileTime.fromMillis(System.currentTimeMillis() + 60_000));
                Files.move(next, www.resolve("img.raw"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                CorfsException changed = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0));
                assertInstanceOf(BackingChangedException.class, changed, changed.getMessage());
            }
            CorfsException e = assertThrows(CorfsException.class, () -> HttpRangeReader.open(uri,
                    new HttpOptions(Duration.ofSeconds(10), 4, tls.resolve("other-ca.pem"), null)));
            assertTrue(e.getMessage().contains("TLS"), e.getMessage());
            CorfsException down = assertThrows(CorfsException.class, () -> HttpRangeReader.open(
                    URI.create("https://127.0.0.1:" + port + "/down"), trusted));
            assertTrue(down.getMessage().contains("https to plain http"), down.getMessage());
        });
    }

    @Test
    @DisplayName("python3 -m http.server, which ignores Range, is refused at open with that reason")
    void noRangeSupport() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("python3"), "python3 is not installed");
            int port = LocalServers.freePort();
            servers.start("python-http", List.of("python3", "-m", "http.server", String.valueOf(port), "--bind",
                    "127.0.0.1", "--directory", www.toString()), dir, port, Duration.ofSeconds(20));
            CorfsException e = assertThrows(CorfsException.class, () -> HttpRangeReader.open(
                    URI.create("http://127.0.0.1:" + port + "/img.raw"), opts(10)));
            assertTrue(e.getMessage().contains("does not honour range requests"), e.getMessage());
        });
    }

    @Test
    @DisplayName("the file replaced on nginx mid-read: every read returns old data or 'backing changed', sticky")
    void replacedMidRead() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            try (HttpRangeReader r = HttpRangeReader.open(URI.create("http://127.0.0.1:" + port + "/img.raw"), opts(30))) {
                byte[] other = content.clone();
                for (int i = 0; i < other.length; i += 512) {
                    other[i] ^= 0x5a;
                }
                Path next = dir.resolve("next.raw");
                Files.write(next, other);
                Files.setLastModifiedTime(next, FileTime.fromMillis(System.currentTimeMillis() + 60_000));
                Random rnd = new Random(5);
                int ok = 0;
                int changed = 0;
                for (int i = 0; i < 400; i++) {
                    if (i == 100) {
                        Files.move(next, www.resolve("img.raw"), StandardCopyOption.REPLACE_EXISTING,
                                StandardCopyOption.ATOMIC_MOVE);
                    }
                    int len = 1 + rnd.nextInt(65536);
                    int off = rnd.nextInt(SIZE - len + 1);
                    ByteBuffer b = ByteBuffer.allocate(len);
                    try {
                        r.readFully(b, off);
                        assertArrayEquals(Arrays.copyOfRange(content, off, off + len), b.array(), "mixed data at " + off);
                        ok++;
                    } catch (CorfsException e) {
                        assertInstanceOf(BackingChangedException.class, e, e.getMessage());
                        changed++;
                    }
                }
                assertTrue(ok >= 100, "reads before the replacement: " + ok);
                assertTrue(changed >= 300, "reads after it must all fail: " + changed);
            }
        });
    }

    @Test
    @DisplayName("nginx killed mid-read: EIO by the deadline, then the same reader works once it is back")
    void killedMidRead() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            LocalServers.Server nginx = nginx("nginx", port, false, "");
            try (HttpRangeReader r = HttpRangeReader.open(URI.create("http://127.0.0.1:" + port + "/img.raw"),
                    new HttpOptions(Duration.ofSeconds(3), 4, null, null))) {
                assertRange(r, 0, 1 << 20);
                List<CompletableFuture<Void>> reads = new ArrayList<>();
                for (int i = 0; i < 16; i++) {
                    reads.add(r.read(ByteBuffer.allocate(SIZE / 2), (long) (i % 2) * (SIZE / 2)));
                }
                servers.kill(nginx);
                long t0 = System.nanoTime();
                int failed = 0;
                for (CompletableFuture<Void> f : reads) {
                    try {
                        f.get(30, TimeUnit.SECONDS);
                    } catch (java.util.concurrent.ExecutionException e) {
                        assertInstanceOf(CorfsException.class, e.getCause());
                        failed++;
                    }
                }
                CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(100), 0));
                assertTrue(e.getMessage().contains("within 3 s"), e.getMessage());
                System.out.printf("killed: %d of 16 in-flight reads failed, all settled in %d ms%n", failed,
                        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
                servers.restart(nginx, Duration.ofSeconds(20));
                assertRange(r, SIZE - (1 << 20), 1 << 20);
            }
        });
    }

    // ---- through the Backing interface (HttpTransport -> HttpBacking), as a mount will use it ----

    private void assertBackingRange(Backing b, long offset, int length) throws IOException {
        ByteBuffer dst = ByteBuffer.allocate(length);
        b.readFully(dst, offset);
        assertEquals(length, dst.position());
        assertArrayEquals(Arrays.copyOfRange(content, (int) offset, (int) offset + length), dst.array(), "at " + offset);
    }

    @Test
    @DisplayName("Backing over nginx: split reads exact at odd offsets from 8 threads; UNKNOWN allocation; READ_ONLY writer")
    void backingReads() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            String spec = "http://127.0.0.1:" + port + "/img.raw";
            try (Backing b = new HttpTransport().open(spec, Map.of("connections", "4", "timeout", "30"))) {
                assertEquals(SIZE, b.size());
                assertEquals(4, b.maxInFlight());
                assertEquals(spec, b.location());
                assertTrue(b.identity().token().startsWith("http:size=" + SIZE + ":etag=\""), b.identity().token());
                assertEquals(new Allocation(Allocation.Kind.UNKNOWN, SIZE - 5), b.allocation(5, Long.MAX_VALUE));
                CorfsException w = assertThrows(CorfsException.class, b::openWriter);
                assertEquals(CorfsException.Reason.READ_ONLY, w.reason());
                assertTrue(w.getMessage().contains("HTTP(S) backing is read-only"), w.getMessage());
                ExecutorService pool = Executors.newFixedThreadPool(8, r -> new Thread(r, "it-reader"));
                try {
                    List<Future<?>> all = new ArrayList<>();
                    for (int t = 0; t < 8; t++) {
                        Random rnd = new Random(t);
                        all.add(pool.submit(() -> {
                            for (int i = 0; i < 12; i++) {
                                int len = 1 + rnd.nextInt(1_300_000);
                                int off = rnd.nextInt(SIZE - len + 1);
                                assertBackingRange(b, off, len);
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : all) {
                        f.get(60, TimeUnit.SECONDS);
                    }
                } finally {
                    pool.shutdownNow();
                }
                assertBackingRange(b, 0, SIZE);
                assertBackingRange(b, 4095, (1 << 20) + 3);
            }
        });
    }

    @Test
    @DisplayName("Backing over nginx: the file replaced mid-use gives 'backing changed' on every later call, never mixed data")
    void backingReplaced() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            try (Backing b = new HttpTransport().open("http://127.0.0.1:" + port + "/img.raw", Map.of())) {
                byte[] other = content.clone();
                for (int i = 0; i < other.length; i += 512) {
                    other[i] ^= 0x5a;
                }
                Path next = dir.resolve("next.raw");
                Files.write(next, other);
                Files.setLastModifiedTime(next, FileTime.fromMillis(System.currentTimeMillis() + 60_000));
                Random rnd = new Random(9);
                int changed = 0;
                for (int i = 0; i < 60; i++) {
                    if (i == 20) {
                        Files.move(next, www.resolve("img.raw"), StandardCopyOption.REPLACE_EXISTING,
                                StandardCopyOption.ATOMIC_MOVE);
                    }
                    int len = 1 + rnd.nextInt(1 << 20);
                    int off = rnd.nextInt(SIZE - len + 1);
                    ByteBuffer dst = ByteBuffer.allocate(len);
                    try {
                        b.readFully(dst, off);
                        assertTrue(i < 20, "a read after the replacement succeeded");
                        assertArrayEquals(Arrays.copyOfRange(content, off, off + len), dst.array(), "mixed data at " + off);
                    } catch (CorfsException e) {
                        assertInstanceOf(BackingChangedException.class, e, e.getMessage());
                        assertTrue(e.getMessage().contains("backing changed"), e.getMessage());
                        changed++;
                    }
                }
                assertEquals(40, changed);
                assertInstanceOf(BackingChangedException.class, assertThrows(CorfsException.class, b::identity));
                assertInstanceOf(BackingChangedException.class, assertThrows(CorfsException.class, () -> b.allocation(0, 1)));
            }
        });
    }

    @Test
    @DisplayName("Backing over nginx: 404, 403, 410 name the status and the host; a server gone names the address")
    void backingErrors() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            for (String[] c : new String[][] {{"/nothing", "HTTP 404"}, {"/forbidden", "HTTP 403"}, {"/gone", "HTTP 410"}}) {
                CorfsException e = assertThrows(CorfsException.class,
                        () -> new HttpTransport().open("http://127.0.0.1:" + port + c[0], Map.of("timeout", "10")));
                assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
            }
            int dead = LocalServers.freePort();
            CorfsException e = assertThrows(CorfsException.class,
                    () -> new HttpTransport().open("http://127.0.0.1:" + dead + "/img.raw", Map.of("timeout", "2")));
            assertTrue(e.getMessage().contains("127.0.0.1:" + dead) && e.getMessage().contains("connection refused"),
                    e.getMessage());
        });
    }

    @Test
    @DisplayName("Backing over nginx HTTPS: ca= with the right CA reads, another CA is refused at open")
    void backingHttps() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("openssl"), "openssl is not installed");
            Path tls = Files.createDirectories(dir.resolve("tls"));
            Tls.makeCa(tls, "ca");
            Tls.makeCa(tls, "other-ca");
            Tls.makeServerCert(tls, "ca", "server");
            int port = LocalServers.freePort();
            nginx("nginx-tls", port, true, "");
            String spec = "https://127.0.0.1:" + port + "/img.raw";
            try (Backing b = new HttpTransport().open(spec, Map.of("ca", tls.resolve("ca.pem").toString()))) {
                assertBackingRange(b, 12_345, (1 << 20) + 17);
            }
            CorfsException e = assertThrows(CorfsException.class, () -> new HttpTransport().open(spec,
                    Map.of("ca", tls.resolve("other-ca.pem").toString(), "timeout", "10")));
            assertTrue(e.getMessage().contains("TLS") && e.getMessage().contains("127.0.0.1:" + port), e.getMessage());
            CorfsException none = assertThrows(CorfsException.class, () -> new HttpTransport().open(spec,
                    Map.of("timeout", "10")));
            assertTrue(none.getMessage().contains("TLS"), "the system's CAs do not know the test CA: " + none.getMessage());
        });
    }

    @Test
    @DisplayName("Backing with header-file: the header is sent; the secret is in no location, identity or message")
    void backingHeaderFileSecret() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            nginx("nginx", port, false, "");
            String spec = "http://127.0.0.1:" + port + "/private/img.raw?X-Amz-Signature=sig-s3cret&part=2";
            CorfsException denied = assertThrows(CorfsException.class,
                    () -> new HttpTransport().open(spec, Map.of("timeout", "10")));
            assertTrue(denied.getMessage().contains("HTTP 403"), denied.getMessage());
            Path headers = dir.resolve("headers");
            Files.writeString(headers, "Authorization: Bearer s3cret-t0ken\n");
            Map<String, String> opts = Map.of("header-file", headers.toString(), "timeout", "10");
            try (Backing b = new HttpTransport().open(spec, opts)) {
                assertBackingRange(b, 3, 700_001);
                List<String> shown = new ArrayList<>(List.of(b.location(), b.identity().describe(), b.identity().token(),
                        b.toString()));
                shown.add(assertThrows(CorfsException.class, b::openWriter).getMessage());
                shown.add(assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(10), SIZE - 5))
                        .getMessage());
                shown.add(assertThrows(CorfsException.class, () -> new HttpTransport().open(
                        "http://127.0.0.1:" + port + "/private/none.raw?X-Amz-Signature=sig-s3cret", opts)).getMessage());
                for (String s : shown) {
                    assertFalse(s.contains("s3cret-t0ken") || s.contains("Bearer") || s.contains("sig-s3cret"), s);
                }
                assertTrue(b.location().contains("X-Amz-Signature=REDACTED") && b.location().contains("part=2"),
                        b.location());
            }
        });
    }
}
