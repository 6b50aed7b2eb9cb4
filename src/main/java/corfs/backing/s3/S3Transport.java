package corfs.backing.s3;

import corfs.backing.http.HttpOptions;
import corfs.backing.http.HttpRangeReader;

import java.io.IOException;
import java.time.Clock;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Opens {@code s3://BUCKET/KEY} as an {@link HttpRangeReader} whose requests are signed with SigV4
 * ({@link SigV4Signer}, service {@code s3}) using the {@link AwsCredentialChain}, or unsigned when the
 * chain finds no credentials. Everything else (probe, conditional ranges, retries, deadlines, the
 * connection limit) is the HTTP reader's: an S3 object is an HTTP object whose ETag S3 always sends.
 *
 * <p>Why our own signing and not the AWS SDK v2: reading an object takes one signed GET with a Range and
 * an If-Match, about 150 lines of SigV4 checked against AWS's published vectors; the SDK's {@code s3}
 * artifact (2.57.8) pulls in 46 jars, 15.5 MB, and measured here about three times this reader's cold
 * open before its first request (docs/DESIGN.md has the numbers), while corfs must mount in well under a
 * second and its HTTP reader (pool, deadlines, conditional ranges, straight-into-the-buffer reads) is the
 * same for S3 and plain HTTPS.
 *
 * <p>Stateless; the reader it returns is the lifecycle object.
 */
public final class S3Transport {
    /** The {@code --backing-opt} keys of an s3:// backing. */
    public static final Set<String> KEYS = Set.of("timeout", "connections", "ca", "endpoint", "region", "path-style");

    private S3Transport() {
    }

    /** Opens {@code spec} with the standard credential chain and this process's environment. */
    public static HttpRangeReader open(String spec, Map<String, String> options) throws IOException {
        return open(spec, options, AwsCredentialChain.standard(), System.getenv());
    }

    /** Opens {@code spec} with {@code credentials}; {@code env} supplies the default region. */
    public static HttpRangeReader open(String spec, Map<String, String> options, AwsCredentialsProvider credentials,
            Map<String, String> env) throws IOException {
        Map<String, String> s3only = new HashMap<>();
        Map<String, String> httpOnly = new HashMap<>();
        Set<String> unknown = new TreeSet<>();
        for (Map.Entry<String, String> e : options.entrySet()) {
            if (Set.of("endpoint", "region", "path-style").contains(e.getKey())) {
                s3only.put(e.getKey(), e.getValue());
            } else if (KEYS.contains(e.getKey())) {
                httpOnly.put(e.getKey(), e.getValue());
            } else {
                unknown.add(e.getKey());
            }
        }
        if (!unknown.isEmpty()) {
            HttpOptions.parse(options, KEYS); // throws, naming the unknown keys and the known ones
        }
        HttpOptions http = HttpOptions.parse(httpOnly, KEYS);
        S3Location where = S3Location.parse(spec, s3only, env);
        credentials.credentials(); // resolve now: a broken profile fails the open, not the first read
        SigV4Signer signer = new SigV4Signer(credentials, where.region(), "s3", Clock.systemUTC());
        return HttpRangeReader.open(where.url(), http, signer, where.spec());
    }
}
