package corfs.backing.s3;

import java.io.IOException;

/** Where request signing gets its credentials; thread-safe. */
@FunctionalInterface
public interface AwsCredentialsProvider {
    /** No credentials: requests go unsigned (a public bucket). */
    AwsCredentialsProvider ANONYMOUS = () -> null;

    /** Current credentials, or null for anonymous access. May block for a bounded refresh. */
    AwsCredentials credentials() throws IOException;
}
