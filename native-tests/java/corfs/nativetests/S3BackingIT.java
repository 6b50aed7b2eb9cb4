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
import corfs.backing.http.HttpRangeReader;
import corfs.backing.s3.AwsCredentialChain;
import corfs.backing.s3.AwsCredentials;
import corfs.backing.s3.AwsCredentialsProvider;
import corfs.backing.s3.InstanceMetadata;
import corfs.backing.s3.S3Transport;
import corfs.backing.s3.SigV4Signer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The S3 transport against a real S3 server: s3proxy (its jar-with-dependencies, copied by the build to
 * target/s3proxy) as a child process on 127.0.0.1 with the transient store and {@code aws-v2-or-v4}
 * authorization, so every signature is really checked. Objects are uploaded with our own SigV4 PUT.
 */
@DisplayName("S3 backing transport against s3proxy")
class S3BackingIT {
    private static final String ID = "corfs-test-id";
    private static final String SECRET = "corfs-test-secret";
    private static final String BUCKET = "corfs-bucket";
    private static final int SIZE = 3 << 20;
    private static final Duration GUARD = Duration.ofSeconds(90);
    private static final AwsCredentialsProvider GOOD = () -> new AwsCredentials(ID, SECRET, null, null);

    @RegisterExtension
    static final LocalServers SERVERS = LocalServers.perClass();
    @TempDir
    static Path dir;
    private static String endpoint;
    private static byte[] content;

    @BeforeAll
    static void startS3proxy() throws Exception {
        Path jar = Path.of(System.getProperty("corfs.s3proxy.jar", "target/s3proxy/s3proxy.jar"));
        assumeTrue(Files.isRegularFile(jar), "no s3proxy jar at " + jar + " (mvn verify copies it)");
        int port = LocalServers.freePort();
        endpoint = "http://127.0.0.1:" + port;
        Path props = dir.resolve("s3proxy.properties");
        Files.writeString(props, "s3proxy.endpoint=" + endpoint + "\ns3proxy.authorization=aws-v2-or-v4\n"
                + "s3proxy.identity=" + ID + "\ns3proxy.credential=" + SECRET + "\njclouds.provider=transient\n"
                + "jclouds.identity=" + ID + "\njclouds.credential=" + SECRET + "\n");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        SERVERS.start("s3proxy", List.of(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-jar", jar.toString(),
                "--properties", props.toString()), dir, port, Duration.ofSeconds(60));
        content = new byte[SIZE];
        new Random(11).nextBytes(content);
        put("/" + BUCKET, new byte[0], null);
        put("/" + BUCKET + "/images/disk one.raw", content, "application/octet-stream");
    }

    /** A signed PUT (bucket or object) to s3proxy. */
    private static void put(String rawPathUnencoded, byte[] body, String contentType) throws Exception {
        URI uri = URI.create(endpoint + SigV4Signer.encode(rawPathUnencoded, false));
        SigV4Signer signer = new SigV4Signer(GOOD, "us-east-1", "s3", Clock.systemUTC());
        Map<String, String> headers = contentType == null ? Map.of() : Map.of("content-type", contentType);
        HttpRequest.Builder b = HttpRequest.newBuilder(uri).PUT(HttpRequest.BodyPublishers.ofByteArray(body));
        headers.forEach(b::header);
        signer.sign("PUT", uri, headers, SigV4Signer.sha256Hex(body)).forEach(b::header);
        HttpResponse<String> r = HttpClient.newHttpClient().send(b.build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "PUT " + rawPathUnencoded + ": " + r.body());
    }

    private static Map<String, String> opts() {
        return Map.of("endpoint", endpoint, "region", "us-east-1", "timeout", "20", "connections", "4");
    }

    private static void assertRange(HttpRangeReader r, long offset, int length) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(length);
        r.readFully(b, offset);
        assertArrayEquals(Arrays.copyOfRange(content, (int) offset, (int) offset + length), b.array(), "at " + offset);
    }

    @Test
    @DisplayName("signed reads: size, ETag, random ranges in parallel and the whole object, byte for byte")
    void signedReads() {
        assertTimeoutPreemptively(GUARD, () -> {
            try (HttpRangeReader r = S3Transport.openReader("s3://" + BUCKET + "/images/disk one.raw", opts(), GOOD, Map.of())) {
                assertEquals(SIZE, r.size());
                assertTrue(r.object().etag() != null);
                assertEquals("s3://" + BUCKET + "/images/disk one.raw", r.location());
                Random rnd = new Random(2);
                List<CompletableFuture<Void>> reads = new ArrayList<>();
                List<ByteBuffer> bufs = new ArrayList<>();
                List<Integer> offs = new ArrayList<>();
                for (int i = 0; i < 48; i++) {
                    int len = 1 + rnd.nextInt(150_000);
                    int off = rnd.nextInt(SIZE - len + 1);
                    ByteBuffer b = ByteBuffer.allocate(len);
                    bufs.add(b);
                    offs.add(off);
                    reads.add(r.read(b, off));
                }
                CompletableFuture.allOf(reads.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
                for (int i = 0; i < bufs.size(); i++) {
                    assertArrayEquals(Arrays.copyOfRange(content, offs.get(i), offs.get(i) + bufs.get(i).capacity()),
                            bufs.get(i).array());
                }
                for (int off = 0; off < SIZE; off += 1 << 20) {
                    assertRange(r, off, 1 << 20);
                }
            }
        });
    }

    @Test
    @DisplayName("credentials from the standard chain: a profile in ~/.aws/credentials named by AWS_PROFILE")
    void profileChain(@TempDir Path home) {
        assertTimeoutPreemptively(GUARD, () -> {
            Files.createDirectories(home.resolve(".aws"));
            Files.writeString(home.resolve(".aws/credentials"), "[default]\naws_access_key_id=wrong\n"
                    + "aws_secret_access_key=wrong\n[corfs]\naws_access_key_id=" + ID + "\naws_secret_access_key=" + SECRET
                    + "\n");
            AwsCredentialChain chain = new AwsCredentialChain(Map.of("AWS_PROFILE", "corfs"), home,
                    InstanceMetadata.aws(), Clock.systemUTC());
            try (HttpRangeReader r = S3Transport.openReader("s3://" + BUCKET + "/images/disk one.raw", opts(), chain, Map.of())) {
                assertRange(r, 777, 100_000);
            }
            assertTrue(chain.source().contains("profile corfs"), chain.source());
        });
    }

    @Test
    @DisplayName("a wrong secret, no credentials, a missing key: refused with the status and S3's code")
    void refusals() {
        assertTimeoutPreemptively(GUARD, () -> {
            AwsCredentialsProvider wrong = () -> new AwsCredentials(ID, "not-the-secret", null, null);
            CorfsException bad = assertThrows(CorfsException.class,
                    () -> S3Transport.openReader("s3://" + BUCKET + "/images/disk one.raw", opts(), wrong, Map.of()));
            assertTrue(bad.getMessage().contains("HTTP 403") && bad.getMessage().contains("SignatureDoesNotMatch"),
                    bad.getMessage());
            assertFalse(bad.getMessage().contains("not-the-secret"), bad.getMessage());
            CorfsException anon = assertThrows(CorfsException.class, () -> S3Transport.openReader(
                    "s3://" + BUCKET + "/images/disk one.raw", opts(), AwsCredentialsProvider.ANONYMOUS, Map.of()));
            assertTrue(anon.getMessage().contains("HTTP 403"), anon.getMessage());
            CorfsException missing = assertThrows(CorfsException.class,
                    () -> S3Transport.openReader("s3://" + BUCKET + "/nothing.raw", opts(), GOOD, Map.of()));
            assertTrue(missing.getMessage().contains("HTTP 404") && missing.getMessage().contains("NoSuchKey"),
                    missing.getMessage());
            CorfsException typo = assertThrows(CorfsException.class, () -> S3Transport.openReader(
                    "s3://" + BUCKET + "/x", Map.of("endpiont", endpoint), GOOD, Map.of()));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, typo.reason());
        });
    }

    @Test
    @DisplayName("the object overwritten: 'backing changed' for every later read")
    void overwritten() {
        assertTimeoutPreemptively(GUARD, () -> {
            byte[] small = Arrays.copyOf(content, 1 << 20);
            put("/" + BUCKET + "/replaced.raw", small, "application/octet-stream");
            try (HttpRangeReader r = S3Transport.openReader("s3://" + BUCKET + "/replaced.raw", opts(), GOOD, Map.of())) {
                ByteBuffer b = ByteBuffer.allocate(4096);
                r.readFully(b, 0);
                assertArrayEquals(Arrays.copyOf(small, 4096), b.array());
                byte[] other = small.clone();
                other[0] ^= 1;
                put("/" + BUCKET + "/replaced.raw", other, "application/octet-stream");
                CorfsException e = assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 100));
                assertInstanceOf(BackingChangedException.class, e);
                assertInstanceOf(BackingChangedException.class,
                        assertThrows(CorfsException.class, () -> r.readFully(ByteBuffer.allocate(10), 0)));
            }
        });
    }

    @Test
    @DisplayName("Backing over s3proxy: split reads exact at odd offsets; identity is size and ETag; READ_ONLY; overwritten is 'changed'")
    void backing() {
        assertTimeoutPreemptively(GUARD, () -> {
            S3Transport t = new S3Transport(GOOD, Map.of());
            String spec = "s3://" + BUCKET + "/images/disk one.raw";
            t.validate(spec, opts());
            try (Backing b = t.open(spec, opts())) {
                assertEquals(SIZE, b.size());
                assertEquals(4, b.maxInFlight());
                assertEquals(spec, b.location());
                assertTrue(b.identity().token().startsWith("http:size=" + SIZE + ":etag=\""), b.identity().token());
                assertFalse(b.identity().describe().contains(SECRET) || b.identity().token().contains(SECRET));
                assertEquals(new Allocation(Allocation.Kind.UNKNOWN, SIZE), b.allocation(0, Long.MAX_VALUE));
                CorfsException w = assertThrows(CorfsException.class, b::openWriter);
                assertEquals(CorfsException.Reason.READ_ONLY, w.reason());
                assertTrue(w.getMessage().contains("S3 backing is read-only"), w.getMessage());
                Random rnd = new Random(4);
                for (int i = 0; i < 12; i++) {
                    int len = 1 + rnd.nextInt(1_200_000);
                    int off = rnd.nextInt(SIZE - len + 1);
                    ByteBuffer dst = ByteBuffer.allocate(len);
                    b.readFully(dst, off);
                    assertArrayEquals(Arrays.copyOfRange(content, off, off + len), dst.array(), "at " + off);
                }
                ByteBuffer all = ByteBuffer.allocate(SIZE);
                b.readFully(all, 0);
                assertArrayEquals(content, all.array());
            }
            byte[] small = Arrays.copyOf(content, 2 << 20);
            put("/" + BUCKET + "/backing-replaced.raw", small, "application/octet-stream");
            try (Backing b = t.open("s3://" + BUCKET + "/backing-replaced.raw", opts())) {
                ByteBuffer first = ByteBuffer.allocate(1 << 20);
                b.readFully(first, 5);
                assertArrayEquals(Arrays.copyOfRange(small, 5, 5 + (1 << 20)), first.array());
                byte[] other = small.clone();
                other[7] ^= 1;
                put("/" + BUCKET + "/backing-replaced.raw", other, "application/octet-stream");
                for (int i = 0; i < 3; i++) {
                    CorfsException e = assertThrows(CorfsException.class, () -> b.readFully(ByteBuffer.allocate(1 << 20), 0));
                    assertInstanceOf(BackingChangedException.class, e, e.getMessage());
                }
                assertInstanceOf(BackingChangedException.class, assertThrows(CorfsException.class, b::identity));
            }
            CorfsException missing = assertThrows(CorfsException.class,
                    () -> t.open("s3://" + BUCKET + "/nothing.raw", opts()));
            assertTrue(missing.getMessage().contains("HTTP 404") && missing.getMessage().contains(BUCKET),
                    missing.getMessage());
            CorfsException wrong = assertThrows(CorfsException.class, () -> new S3Transport(
                    () -> new AwsCredentials(ID, "not-the-secret", null, null), Map.of()).open(spec, opts()));
            assertFalse(wrong.getMessage().contains("not-the-secret"), wrong.getMessage());
        });
    }
}
