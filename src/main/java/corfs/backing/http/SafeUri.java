package corfs.backing.http;

import java.net.URI;

/**
 * What of a URL may be shown: in messages, the log and the status. A URL can carry secrets in two places,
 * its user info ({@code https://user:password@host/}) and its query (a presigned object-store URL's
 * {@code X-Amz-Signature=...}); both are dropped, the query replaced by {@code ?...} so a reader still
 * sees there was one. Stateless.
 */
public final class SafeUri {
    private SafeUri() {
    }

    /** {@code scheme://host[:port]/path[?...]}, without user info, query values or fragment. */
    public static String redact(URI uri) {
        StringBuilder s = new StringBuilder();
        if (uri.getScheme() != null) {
            s.append(uri.getScheme()).append("://");
        }
        if (uri.getHost() != null) {
            s.append(uri.getHost().contains(":") && !uri.getHost().startsWith("[") ? "[" + uri.getHost() + "]"
                    : uri.getHost());
            if (uri.getPort() != -1) {
                s.append(':').append(uri.getPort());
            }
        }
        String path = uri.getRawPath();
        s.append(path == null || path.isEmpty() ? "/" : path);
        if (uri.getRawQuery() != null) {
            s.append("?...");
        }
        return s.toString();
    }

    /** The same URL without user info and fragment: what goes on the wire (the query stays). */
    static URI withoutUserInfo(URI uri) {
        try {
            StringBuilder s = new StringBuilder().append(uri.getScheme()).append("://").append(uri.getRawAuthority()
                    .substring(uri.getRawUserInfo() == null ? 0 : uri.getRawUserInfo().length() + 1));
            s.append(uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath());
            if (uri.getRawQuery() != null) {
                s.append('?').append(uri.getRawQuery());
            }
            return new URI(s.toString());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalArgumentException("bad URL " + redact(uri), e);
        }
    }

    /** Same scheme, host and port (default ports made explicit): credentials may be sent to it. */
    static boolean sameOrigin(URI a, URI b) {
        return a.getScheme().equalsIgnoreCase(b.getScheme()) && a.getHost().equalsIgnoreCase(b.getHost())
                && port(a) == port(b);
    }

    static int port(URI u) {
        if (u.getPort() != -1) {
            return u.getPort();
        }
        return "https".equalsIgnoreCase(u.getScheme()) ? 443 : 80;
    }
}
