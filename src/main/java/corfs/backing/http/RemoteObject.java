package corfs.backing.http;

/**
 * What a probe learnt of a remote object and what every later range request is made conditional on:
 * its size and its validator, a strong {@code etag} (quotes included, as the server sent it) or, when the
 * server gives none, its {@code lastModified} date (an HTTP-date). Exactly one of the two is non-null.
 */
public record RemoteObject(long size, String etag, String lastModified) {
    public RemoteObject {
        if (size < 0 || (etag == null) == (lastModified == null)) {
            throw new IllegalArgumentException("a remote object has a size and exactly one validator");
        }
    }

    /** An opaque, stable text for the leaf's metadata: {@code size=N etag="..."} or {@code last-modified=...}. */
    public String identity() {
        return "size=" + size + (etag != null ? " etag=" + etag : " last-modified=" + lastModified);
    }
}
