package corfs.backing.http;

import java.io.IOException;
import java.net.URI;
import java.util.Map;

/**
 * Adds authentication headers to one request just before it is sent (S3's SigV4). Called for every
 * attempt, retries and redirect hops included, from whichever thread starts the attempt: implementations
 * are thread-safe and return quickly (a credential refresh is bounded by its own timeout).
 */
@FunctionalInterface
public interface RequestSigner {
    /** No signing: anonymous requests. */
    RequestSigner NONE = (method, uri, headers) -> Map.of();

    /**
     * The headers to add to a request (names as they go on the wire).
     *
     * @param headers the headers already set, lower-case names; the signer may cover them
     */
    Map<String, String> sign(String method, URI uri, Map<String, String> headers) throws IOException;
}
