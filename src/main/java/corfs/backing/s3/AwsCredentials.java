package corfs.backing.s3;

import java.time.Instant;

/**
 * One set of AWS credentials; {@code sessionToken} and {@code expiration} may be null (long-term keys).
 * {@link #toString()} shows the access key id only: the secret and the token never reach a log.
 */
public record AwsCredentials(String accessKeyId, String secretAccessKey, String sessionToken, Instant expiration) {
    public AwsCredentials {
        if (accessKeyId == null || accessKeyId.isBlank() || secretAccessKey == null || secretAccessKey.isBlank()) {
            throw new IllegalArgumentException("an access key id and a secret access key are both needed");
        }
    }

    @Override
    public String toString() {
        return "AwsCredentials[" + accessKeyId + ", secret hidden" + (sessionToken != null ? ", session" : "")
                + (expiration != null ? ", expires " + expiration : "") + "]";
    }
}
