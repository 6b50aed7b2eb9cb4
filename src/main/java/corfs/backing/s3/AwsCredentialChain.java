package corfs.backing.s3;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The standard AWS credential chain, first match wins: (1) the environment, {@code AWS_ACCESS_KEY_ID} and
 * {@code AWS_SECRET_ACCESS_KEY} (and {@code AWS_SESSION_TOKEN}); (2) the shared credentials file,
 * {@code AWS_SHARED_CREDENTIALS_FILE} or {@code ~/.aws/credentials}, profile {@code AWS_PROFILE} or
 * {@code default} (a profile asked for by name that does not exist is an error, not a silent fallback);
 * (3) instance metadata (IMDSv2), unless {@code AWS_EC2_METADATA_DISABLED=true}; (4) none: anonymous,
 * unsigned requests (public buckets). Credentials never come from the command line.
 *
 * <p>The answer is cached; credentials that expire (instance roles) are fetched again five minutes before
 * they do. {@link #credentials()} is synchronized: a refresh (bounded by the metadata service's timeout)
 * holds back other signers meanwhile, which is what they would wait for anyway.
 */
public final class AwsCredentialChain implements AwsCredentialsProvider {
    private static final Logger LOG = LoggerFactory.getLogger(AwsCredentialChain.class);
    private static final Duration EARLY_REFRESH = Duration.ofMinutes(5);
    private static final long MAX_FILE_BYTES = 1 << 20;

    private final Map<String, String> env;
    private final Path home;
    private final InstanceMetadata imds;
    private final Clock clock;
    // guarded by this
    private boolean resolved;
    private AwsCredentials cached;
    private String source = "not resolved yet";

    /** The chain over this process's environment, home directory and the real metadata service. */
    public static AwsCredentialChain standard() {
        return new AwsCredentialChain(System.getenv(), Path.of(System.getProperty("user.home")), InstanceMetadata.aws(),
                Clock.systemUTC());
    }

    public AwsCredentialChain(Map<String, String> env, Path home, InstanceMetadata imds, Clock clock) {
        this.env = Map.copyOf(env);
        this.home = home;
        this.imds = imds;
        this.clock = clock;
    }

    @Override
    public synchronized AwsCredentials credentials() throws IOException {
        if (resolved && (cached == null || cached.expiration() == null
                || clock.instant().isBefore(cached.expiration().minus(EARLY_REFRESH)))) {
            return cached;
        }
        try {
            cached = resolve();
        } catch (IOException e) {
            if (cached != null && cached.expiration() != null && clock.instant().isBefore(cached.expiration())) {
                LOG.warn("could not refresh AWS credentials ({}); using the current ones until they expire",
                        e.getMessage());
                return cached;
            }
            throw e;
        }
        resolved = true;
        LOG.info("AWS credentials: {}", source);
        return cached;
    }

    /** Where the credentials in use came from (no secret): for messages and the log. */
    public synchronized String source() {
        return source;
    }

    private AwsCredentials resolve() throws IOException {
        String id = env.get("AWS_ACCESS_KEY_ID");
        String secret = env.get("AWS_SECRET_ACCESS_KEY");
        if (notBlank(id) || notBlank(secret)) {
            if (!notBlank(id) || !notBlank(secret)) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be"
                        + " set together");
            }
            source = "environment (" + id + ")";
            String token = env.get("AWS_SESSION_TOKEN");
            return new AwsCredentials(id, secret, notBlank(token) ? token : null, null);
        }
        String profile = env.get("AWS_PROFILE");
        boolean named = notBlank(profile);
        if (!named) {
            profile = "default";
        }
        String file = env.get("AWS_SHARED_CREDENTIALS_FILE");
        Path credentials = notBlank(file) ? Path.of(file) : home.resolve(".aws").resolve("credentials");
        if (Files.isRegularFile(credentials)) {
            if (Files.size(credentials) > MAX_FILE_BYTES) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, credentials + " is too large for a credentials file");
            }
            Map<String, String> p = profile(Files.readAllLines(credentials, StandardCharsets.UTF_8), profile);
            if (p != null) {
                String pid = p.get("aws_access_key_id");
                String psecret = p.get("aws_secret_access_key");
                if (!notBlank(pid) || !notBlank(psecret)) {
                    throw new CorfsException(Reason.INVALID_ARGUMENT, "profile " + profile + " in " + credentials
                            + " lacks aws_access_key_id or aws_secret_access_key");
                }
                source = "profile " + profile + " in " + credentials + " (" + pid + ")";
                String token = p.get("aws_session_token");
                return new AwsCredentials(pid, psecret, notBlank(token) ? token : null, null);
            }
        }
        if (named) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "AWS_PROFILE=" + profile + " but " + credentials
                    + " has no such profile");
        }
        if (!"true".equalsIgnoreCase(env.getOrDefault("AWS_EC2_METADATA_DISABLED", ""))) {
            AwsCredentials role = imds.fetch();
            if (role != null) {
                source = "instance metadata (" + role.accessKeyId() + ")";
                return role;
            }
        }
        source = "none: anonymous requests";
        return null;
    }

    /** The keys of {@code [name]} in an INI credentials file, lower-cased; null when there is no such section. */
    static Map<String, String> profile(List<String> lines, String name) {
        Map<String, String> keys = null;
        boolean in = false;
        for (String raw : lines) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#") || line.startsWith(";")) {
                continue;
            }
            if (line.startsWith("[") && line.endsWith("]")) {
                in = line.substring(1, line.length() - 1).strip().equals(name);
                if (in && keys == null) {
                    keys = new HashMap<>();
                }
                continue;
            }
            int eq = line.indexOf('=');
            if (in && eq > 0) {
                keys.put(line.substring(0, eq).strip().toLowerCase(Locale.ROOT), line.substring(eq + 1).strip());
            }
        }
        return keys;
    }

    private static boolean notBlank(String s) {
        return s != null && !s.isBlank();
    }
}
