package corfs.backing.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import corfs.CorfsException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The credential chain over a fake environment map and a real home directory in a temp dir; the instance
 * metadata part against an IMDSv2 stub server on 127.0.0.1 (tests never contact 169.254.169.254).
 */
@DisplayName("AWS credential chain")
class AwsCredentialChainTest {
    private static final Clock NOW = Clock.fixed(Instant.parse("2026-01-01T00:00:00Z"), ZoneOffset.UTC);
    @TempDir
    Path home;
    private HttpServer imds;
    private final List<String> imdsCalls = new CopyOnWriteArrayList<>();
    private final AtomicInteger fetches = new AtomicInteger();

    @AfterEach
    void stopImds() {
        if (imds != null) {
            imds.stop(0);
        }
    }

    /** An IMDSv2 stub: a token on PUT, role "corfs-role", credentials that expire at {@code expiration}. */
    private URI startImds(String expiration) throws IOException {
        imds = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 8);
        imds.createContext("/", x -> {
            try (x) {
                String path = x.getRequestURI().getPath();
                imdsCalls.add(x.getRequestMethod() + " " + path);
                String token = x.getRequestHeaders().getFirst("X-aws-ec2-metadata-token");
                String body;
                if (x.getRequestMethod().equals("PUT") && path.equals("/latest/api/token")
                        && "21600".equals(x.getRequestHeaders().getFirst("X-aws-ec2-metadata-token-ttl-seconds"))) {
                    body = "TOKEN-1";
                } else if (!"TOKEN-1".equals(token)) {
                    x.sendResponseHeaders(401, -1);
                    return;
                } else if (path.equals("/latest/meta-data/iam/security-credentials/")) {
                    body = "corfs-role\n";
                } else if (path.equals("/latest/meta-data/iam/security-credentials/corfs-role")) {
                    fetches.incrementAndGet();
                    body = "{\n  \"Code\" : \"Success\",\n  \"AccessKeyId\" : \"ASIAROLE" + fetches.get()
                            + "\",\n  \"SecretAccessKey\" : \"role\\/secret\",\n  \"Token\" : \"role-token\",\n"
                            + "  \"Expiration\" : \"" + expiration + "\"\n}";
                } else {
                    x.sendResponseHeaders(404, -1);
                    return;
                }
                byte[] b = body.getBytes(StandardCharsets.UTF_8);
                x.sendResponseHeaders(200, b.length);
                x.getResponseBody().write(b);
            }
        });
        imds.start();
        return URI.create("http://127.0.0.1:" + imds.getAddress().getPort());
    }

    private AwsCredentialChain chain(Map<String, String> env, URI imdsEndpoint) {
        return new AwsCredentialChain(env, home, new InstanceMetadata(imdsEndpoint, Duration.ofSeconds(1)), NOW);
    }

    /** A port nothing listens on. */
    private static URI deadEndpoint() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return URI.create("http://127.0.0.1:" + s.getLocalPort());
        }
    }

    @Test
    @DisplayName("the environment wins, with a session token")
    void environment() throws Exception {
        AwsCredentials c = chain(Map.of("AWS_ACCESS_KEY_ID", "AKENV", "AWS_SECRET_ACCESS_KEY", "envsecret",
                "AWS_SESSION_TOKEN", "envtoken"), deadEndpoint()).credentials();
        assertEquals("AKENV", c.accessKeyId());
        assertEquals("envsecret", c.secretAccessKey());
        assertEquals("envtoken", c.sessionToken());
        assertThrows(CorfsException.class, () -> chain(Map.of("AWS_ACCESS_KEY_ID", "AKENV"), deadEndpoint()).credentials());
    }

    @Nested
    @DisplayName("shared credentials file")
    class Profiles {
        @Test
        @DisplayName("default profile, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE; a named profile that is missing is an error")
        void profiles() throws Exception {
            Files.createDirectories(home.resolve(".aws"));
            Files.writeString(home.resolve(".aws/credentials"), "# comment\n[default]\naws_access_key_id = AKDEF\n"
                    + "aws_secret_access_key=defsecret\n\n[other]\naws_access_key_id=AKOTHER\n"
                    + "aws_secret_access_key = othersecret\naws_session_token = tok\n");
            AwsCredentialChain def = chain(Map.of(), deadEndpoint());
            assertEquals("AKDEF", def.credentials().accessKeyId());
            assertTrue(def.source().contains("profile default"), def.source());
            assertFalse(def.source().contains("defsecret"), def.source());
            AwsCredentials other = chain(Map.of("AWS_PROFILE", "other"), deadEndpoint()).credentials();
            assertEquals("othersecret", other.secretAccessKey());
            assertEquals("tok", other.sessionToken());
            CorfsException e = assertThrows(CorfsException.class,
                    () -> chain(Map.of("AWS_PROFILE", "nope"), deadEndpoint()).credentials());
            assertTrue(e.getMessage().contains("nope"), e.getMessage());
            Path elsewhere = home.resolve("creds");
            Files.writeString(elsewhere, "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=s\n");
            assertEquals("AKFILE", chain(Map.of("AWS_SHARED_CREDENTIALS_FILE", elsewhere.toString()), deadEndpoint())
                    .credentials().accessKeyId());
        }
    }

    @Nested
    @DisplayName("instance metadata (IMDSv2 stub on 127.0.0.1)")
    class Imds {
        @Test
        @DisplayName("token, role, credentials; cached until five minutes before they expire, then fetched again")
        void roleCredentials() throws Exception {
            URI endpoint = startImds("2026-01-01T00:04:00Z");
            AwsCredentialChain c = chain(Map.of(), endpoint);
            AwsCredentials first = c.credentials();
            assertEquals("ASIAROLE1", first.accessKeyId());
            assertEquals("role/secret", first.secretAccessKey());
            assertEquals("role-token", first.sessionToken());
            assertEquals(List.of("PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
                    "GET /latest/meta-data/iam/security-credentials/corfs-role"), imdsCalls);
            assertEquals("ASIAROLE2", c.credentials().accessKeyId(), "expires within 5 minutes: fetched again");
            assertTrue(c.source().startsWith("instance metadata"), c.source());
        }

        @Test
        @DisplayName("long-lived role credentials are cached")
        void cached() throws Exception {
            AwsCredentialChain c = chain(Map.of(), startImds("2026-01-01T06:00:00Z"));
            c.credentials();
            c.credentials();
            assertEquals(1, fetches.get());
        }

        @Test
        @DisplayName("AWS_EC2_METADATA_DISABLED=true skips it: anonymous")
        void disabled() throws Exception {
            AwsCredentialChain c = chain(Map.of("AWS_EC2_METADATA_DISABLED", "true"), startImds("2026-01-01T06:00:00Z"));
            assertNull(c.credentials());
            assertEquals(List.of(), imdsCalls);
            assertTrue(c.source().contains("anonymous"), c.source());
        }

        @Test
        @DisplayName("nothing answering: anonymous, within the bound")
        void unreachable() {
            assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertNull(chain(Map.of(), deadEndpoint()).credentials()));
        }

        @Test
        @DisplayName("the production endpoint is 169.254.169.254 and nothing else")
        void productionEndpoint() {
            assertEquals(URI.create("http://169.254.169.254"), InstanceMetadata.AWS_ENDPOINT);
        }
    }
}
