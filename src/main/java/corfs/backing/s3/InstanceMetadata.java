package corfs.backing.s3;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.http.BoundedBody;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Role credentials from the EC2 instance metadata service, IMDSv2 only: a {@code PUT /latest/api/token}
 * session token, then the role name and its credentials. Production code reaches only
 * {@link #AWS_ENDPOINT} (169.254.169.254, not configurable by environment or option); the endpoint is a
 * constructor argument for tests, which run a stub on 127.0.0.1. Every request is bounded by the timeout
 * (connect and answer), answers by 16 KiB; no proxy, no redirects. Not on EC2 (nothing answers): no
 * credentials, after at most about one timeout. Each fetch uses its own short-lived client on a named
 * thread; thread-safe.
 */
public final class InstanceMetadata {
    private static final Logger LOG = LoggerFactory.getLogger(InstanceMetadata.class);
    /** The one address the instance metadata service has. */
    public static final URI AWS_ENDPOINT = URI.create("http://169.254.169.254");
    private static final int MAX_ANSWER = 16 * 1024;
    private static final AtomicInteger THREADS = new AtomicInteger();

    private final URI endpoint;
    private final Duration timeout;

    /** The real service with a one-second bound per request. */
    public static InstanceMetadata aws() {
        return new InstanceMetadata(AWS_ENDPOINT, Duration.ofSeconds(1));
    }

    InstanceMetadata(URI endpoint, Duration timeout) {
        this.endpoint = endpoint;
        this.timeout = timeout;
    }

    /** The instance role's credentials, or null when there is no metadata service or no role. */
    public AwsCredentials fetch() throws IOException {
        ExecutorService exec = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "corfs-imds-" + THREADS.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        try {
            HttpClient client = HttpClient.newBuilder().executor(exec).connectTimeout(timeout)
                    .proxy(HttpClient.Builder.NO_PROXY).followRedirects(HttpClient.Redirect.NEVER)
                    .version(HttpClient.Version.HTTP_1_1).build();
            HttpResponse<byte[]> token;
            try {
                token = client.send(HttpRequest.newBuilder(endpoint.resolve("/latest/api/token")).timeout(timeout)
                        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
                        .PUT(HttpRequest.BodyPublishers.noBody()).build(), i -> new BoundedBody(MAX_ANSWER));
            } catch (IOException e) {
                LOG.debug("no instance metadata service: {}", e.toString());
                return null;
            }
            if (token.statusCode() != 200) {
                LOG.debug("instance metadata token request answered {}", token.statusCode());
                return null;
            }
            String t = new String(token.body(), StandardCharsets.US_ASCII).strip();
            HttpResponse<byte[]> roles = get(client, "/latest/meta-data/iam/security-credentials/", t);
            if (roles.statusCode() == 404) {
                return null; // an instance without a role
            }
            String role = ok(roles).lines().map(String::strip).filter(l -> !l.isEmpty()).findFirst().orElse(null);
            if (role == null) {
                return null;
            }
            if (!role.matches("[\\w+=,.@-]{1,128}")) {
                throw new CorfsException(Reason.IO, "instance metadata gave a malformed role name");
            }
            String json = ok(get(client, "/latest/meta-data/iam/security-credentials/" + role, t));
            String expiration = field(json, "Expiration");
            try {
                return new AwsCredentials(field(json, "AccessKeyId"), field(json, "SecretAccessKey"),
                        field(json, "Token"), expiration == null ? null : Instant.parse(expiration));
            } catch (IllegalArgumentException | DateTimeParseException e) {
                throw new CorfsException(Reason.IO, "instance metadata gave incomplete credentials for role " + role);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CorfsException(Reason.IO, "interrupted while asking the instance metadata service", e);
        } finally {
            exec.shutdownNow();
        }
    }

    private HttpResponse<byte[]> get(HttpClient client, String path, String token)
            throws IOException, InterruptedException {
        return client.send(HttpRequest.newBuilder(endpoint.resolve(path)).timeout(timeout)
                .header("X-aws-ec2-metadata-token", token).GET().build(), i -> new BoundedBody(MAX_ANSWER));
    }

    private static String ok(HttpResponse<byte[]> r) throws CorfsException {
        if (r.statusCode() != 200) {
            throw new CorfsException(Reason.IO, "instance metadata answered HTTP " + r.statusCode());
        }
        return new String(r.body(), StandardCharsets.UTF_8);
    }

    /** A string field of a flat JSON object (the credentials document), unescaped; null when absent. */
    static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(name) + "\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(json);
        if (!m.find()) {
            return null;
        }
        String v = m.group(1);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c == '\\' && i + 1 < v.length()) {
                char e = v.charAt(++i);
                switch (e) {
                    case 'n' -> out.append('\n');
                    case 't' -> out.append('\t');
                    case 'r' -> out.append('\r');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> {
                        if (i + 4 < v.length()) {
                            out.append((char) Integer.parseInt(v.substring(i + 1, i + 5), 16));
                            i += 4;
                        }
                    }
                    default -> out.append(e);
                }
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
