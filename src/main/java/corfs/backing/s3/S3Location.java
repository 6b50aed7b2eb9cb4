package corfs.backing.s3;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;

/**
 * Where an {@code s3://BUCKET/KEY} object is, over HTTP: the bucket, the key (taken literally, no
 * percent-decoding, up to 1024 UTF-8 bytes, no control characters), the region and the URL.
 *
 * <p>Options: {@code endpoint=URL} (http or https, no path, query or user info; default
 * {@code https://s3.REGION.amazonaws.com}), {@code region=NAME} (default {@code AWS_REGION},
 * {@code AWS_DEFAULT_REGION}, else {@code us-east-1}), {@code path-style=yes|no} (default: no on AWS,
 * yes with an {@code endpoint}, as S3-compatible servers mostly want; also yes for a bucket with dots over
 * https, whose name would not match a wildcard certificate).
 */
public record S3Location(String bucket, String key, String region, URI url) {

    /** The spec as shown: {@code s3://BUCKET/KEY}. */
    public String spec() {
        return "s3://" + bucket + "/" + key;
    }

    public static S3Location parse(String spec, Map<String, String> options, Map<String, String> env)
            throws CorfsException {
        if (!spec.startsWith("s3://")) {
            throw bad(spec, "does not start with s3://");
        }
        String rest = spec.substring(5);
        int slash = rest.indexOf('/');
        if (slash <= 0 || slash == rest.length() - 1) {
            throw bad(spec, "is not s3://BUCKET/KEY");
        }
        String bucket = rest.substring(0, slash);
        String key = rest.substring(slash + 1);
        if (!bucket.matches("[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")) {
            throw bad(spec, "has an invalid bucket name");
        }
        if (key.getBytes(StandardCharsets.UTF_8).length > 1024 || key.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw bad(spec, "has an invalid key (over 1024 bytes or a control character)");
        }
        String region = options.get("region");
        if (region == null) {
            region = env.getOrDefault("AWS_REGION", env.getOrDefault("AWS_DEFAULT_REGION", "us-east-1"));
        }
        if (!region.matches("[a-z0-9-]{1,32}")) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "region '" + region + "' is not a region name");
        }
        URI endpoint;
        String given = options.get("endpoint");
        if (given != null) {
            try {
                endpoint = new URI(given);
            } catch (URISyntaxException e) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "endpoint is not a URL");
            }
            String scheme = endpoint.getScheme() == null ? "" : endpoint.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("http") && !scheme.equals("https") || endpoint.getHost() == null
                    || endpoint.getRawUserInfo() != null || endpoint.getRawQuery() != null
                    || endpoint.getRawFragment() != null
                    || (endpoint.getRawPath() != null && !endpoint.getRawPath().isEmpty()
                            && !endpoint.getRawPath().equals("/"))) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "endpoint must be http(s)://HOST[:PORT], without a"
                        + " path, a query or credentials");
            }
        } else {
            endpoint = URI.create("https://s3." + region + ".amazonaws.com");
        }
        String style = options.getOrDefault("path-style", given != null ? "yes" : "no");
        if (!style.equals("yes") && !style.equals("no")) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "path-style must be yes or no, not '" + style + "'");
        }
        boolean pathStyle = style.equals("yes") || (bucket.contains(".") && "https".equals(endpoint.getScheme()));
        String host = endpoint.getHost();
        int port = endpoint.getPort();
        if (port == 443 && "https".equals(endpoint.getScheme()) || port == 80 && "http".equals(endpoint.getScheme())) {
            port = -1; // the Host header the client sends, which SigV4 signs, has no default port
        }
        String path = (pathStyle ? "/" + bucket + "/" : "/") + SigV4Signer.encode(key, false);
        if (!pathStyle) {
            host = bucket + "." + host;
        }
        try {
            URI url = new URI(endpoint.getScheme() + "://" + (host.contains(":") ? "[" + host + "]" : host)
                    + (port == -1 ? "" : ":" + port) + path);
            return new S3Location(bucket, key, region, url);
        } catch (URISyntaxException e) {
            throw bad(spec, "does not make a valid URL");
        }
    }

    private static CorfsException bad(String spec, String why) {
        return new CorfsException(Reason.INVALID_ARGUMENT, "S3 spec " + spec + " " + why);
    }
}
