package corfs.backing.s3;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingSpec;
import corfs.backing.Transport;
import corfs.backing.http.HttpBacking;
import corfs.backing.http.HttpOptions;
import corfs.backing.http.HttpRangeReader;
import corfs.backing.http.HttpTransport;

import java.io.IOException;
import java.time.Clock;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The {@code s3://BUCKET/KEY} transport: the object is read as an {@link HttpRangeReader} whose requests
 * are signed with SigV4 ({@link SigV4Signer}, service {@code s3}) using the {@link AwsCredentialChain}, or
 * unsigned when the chain finds no credentials, and exposed as a read-only {@link HttpBacking}. Everything
 * else (probe, conditional ranges, retries, deadlines, the connection limit, parallel pieces) is the HTTP
 * reader's: an S3 object is an HTTP object whose ETag S3 always sends.
 *
 * <p>Options beyond the common {@code timeout} and {@code connections}: {@code endpoint=URL},
 * {@code region=NAME}, {@code path-style=yes|no} ({@link S3Location}) and {@code ca=FILE} (an absolute
 * path to a PEM bundle, for an S3-compatible endpoint over https with a private CA). Credentials never come
 * from options: only from the chain (environment, {@code ~/.aws/credentials}, instance metadata).
 *
 * <p>Why our own signing and not the AWS SDK v2: reading an object takes one signed GET with a Range and
 * an If-Match, about 150 lines of SigV4 checked against AWS's published vectors; the SDK's {@code s3}
 * artifact (2.57.8) pulls in 46 jars, 15.5 MB, and measured here about three times this reader's cold
 * open before its first request (docs/DESIGN.md has the numbers), while corfs must mount in well under a
 * second and its HTTP reader (pool, deadlines, conditional ranges, straight-into-the-buffer reads) is the
 * same for S3 and plain HTTPS.
 *
 * <p>Stateless (each open resolves credentials through its own chain); the backing it returns is the
 * lifecycle object.
 */
public final class S3Transport implements Transport {
    private static final Set<String> S3_KEYS = Set.of("endpoint", "region", "path-style");
    /** The {@code --backing-opt} keys of an s3:// backing beyond the common ones. */
    private static final Set<String> KEYS = Set.of("endpoint", "region", "path-style", "ca");

    private final Supplier<AwsCredentialsProvider> credentials;
    private final Supplier<Map<String, String>> env;

    /** The transport with the standard credential chain and this process's environment. */
    public S3Transport() {
        this(AwsCredentialChain::standard, System::getenv);
    }

    /** The transport with {@code credentials} and {@code env} (for the default region): for tests. */
    public S3Transport(AwsCredentialsProvider credentials, Map<String, String> env) {
        this(() -> credentials, () -> env);
    }

    private S3Transport(Supplier<AwsCredentialsProvider> credentials, Supplier<Map<String, String>> env) {
        this.credentials = credentials;
        this.env = env;
    }

    @Override
    public String name() {
        return "s3";
    }

    @Override
    public boolean accepts(String spec) {
        return spec != null && spec.regionMatches(true, 0, "s3://", 0, 5);
    }

    @Override
    public Set<String> optionKeys() {
        return KEYS;
    }

    @Override
    public void validate(String spec, Map<String, String> options) throws IOException {
        HttpTransport.options(httpOnly(options), KEYS);
        location(spec, options);
    }

    @Override
    public Backing open(String spec, Map<String, String> options) throws IOException {
        return new HttpBacking(openReader(spec, options, credentials.get(), env.get()), BackingSpec.redact(spec),
                "an S3 backing is read-only: commit needs a writable file or NBD backing");
    }

    /** Opens {@code spec} as a reader with {@code credentials}; {@code env} supplies the default region. */
    public static HttpRangeReader openReader(String spec, Map<String, String> options,
            AwsCredentialsProvider credentials, Map<String, String> env) throws IOException {
        HttpOptions http = HttpTransport.options(httpOnly(options), KEYS);
        String lower = spec.regionMatches(true, 0, "s3://", 0, 5) ? "s3://" + spec.substring(5) : spec;
        S3Location where = S3Location.parse(lower, s3Only(options), env);
        credentials.credentials(); // resolve now: a broken profile fails the open, not the first read
        SigV4Signer signer = new SigV4Signer(credentials, where.region(), "s3", Clock.systemUTC());
        return HttpRangeReader.open(where.url(), http, signer, where.spec());
    }

    private void location(String spec, Map<String, String> options) throws CorfsException {
        if (!accepts(spec)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + BackingSpec.redact(spec)
                    + " is not s3://BUCKET/KEY");
        }
        S3Location.parse("s3://" + spec.substring(5), s3Only(options), env.get());
    }

    private static Map<String, String> s3Only(Map<String, String> options) {
        Map<String, String> m = new HashMap<>();
        options.forEach((k, v) -> {
            if (S3_KEYS.contains(k)) {
                m.put(k, v);
            }
        });
        return m;
    }

    /** The options but the S3 ones, which the HTTP reader does not know; unknown keys stay, to be refused. */
    private static Map<String, String> httpOnly(Map<String, String> options) {
        Map<String, String> m = new HashMap<>(options);
        m.keySet().removeAll(S3_KEYS);
        return m;
    }
}
