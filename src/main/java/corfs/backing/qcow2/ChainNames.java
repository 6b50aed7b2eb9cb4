package corfs.backing.qcow2;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingSpec;
import corfs.backing.nbd.NbdUri;

import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;
import java.util.Optional;

/**
 * Where the backing file a qcow2 header names is: the SPEC of the next layer of a chain, resolved
 * against the SPEC of the layer that names it, <b>within the same transport</b>.
 *
 * <p>A name "has a protocol" when a {@code :} comes before any {@code /}, as QEMU decides
 * ({@code path_has_protocol}, block.c); otherwise it is a path, absolute or relative. Then:
 * <ul>
 * <li>local parent (a path or {@code file://}): an absolute path as it is, a relative one next to the
 * parent (QEMU's {@code path_combine}: against the parent's folder, not the current one), a
 * {@code file:} URL as its path (QEMU accepts absolute local names; so does corfs: a local qcow2 is as
 * trusted as the files beside it);</li>
 * <li>http(s) parent: a relative name is resolved as a URI reference (RFC 3986 section 5.2, dot
 * segments removed, so {@code ../} above the root stays at the root of the same origin); an absolute URL
 * only on the same origin (scheme, host and port);</li>
 * <li>{@code s3://BUCKET/DIR/X}: {@code DIR/NAME} in the same bucket (dot segments removed as for a
 * path; the chain was made on a file system); an absolute {@code s3://} URL only in the same bucket;</li>
 * <li>NBD: an export has no folder, so a relative name cannot be resolved and is refused (the message
 * says what to do instead); an absolute NBD URL only on the same server (scheme, host and port, or
 * socket).</li>
 * </ul>
 *
 * <p>Security: an image read over the network is data from whoever runs the server. QEMU opens an
 * absolute name as a local file whatever transport the image came from; corfs refuses it, and refuses a
 * {@code file:} URL, another transport and another origin: a hostile image on a web server could
 * otherwise make the mount expose {@code /etc/shadow}-like files of the host, or make corfs send the
 * transport's options (an {@code Authorization} header, TLS client certificate) to a server of the
 * attacker's choosing. Names and SPECs appear in messages only through {@link BackingSpec#redact}.
 */
public final class ChainNames {
    private ChainNames() {
    }

    /**
     * The SPEC of backing file {@code name} (as written in the header of the layer opened from
     * {@code parentSpec}).
     *
     * @throws CorfsException INVALID_ARGUMENT, naming the parent and the name, when the name cannot or
     *                        must not be resolved
     */
    public static String resolve(String parentSpec, String name) throws CorfsException {
        if (name == null || name.isEmpty()) {
            throw refused(parentSpec, "", "is empty");
        }
        if (name.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw refused(parentSpec, name, "holds a control character");
        }
        Optional<Path> local = BackingSpec.localFile(parentSpec);
        if (local.isPresent()) {
            return fromLocal(parentSpec, local.get(), name);
        }
        String lower = parentSpec.toLowerCase(Locale.ROOT);
        if (lower.startsWith("http://") || lower.startsWith("https://")) {
            return fromHttp(parentSpec, name);
        }
        if (parentSpec.startsWith("s3://")) {
            return fromS3(parentSpec, name);
        }
        if (NbdUri.looksLikeNbd(parentSpec)) {
            return fromNbd(parentSpec, name);
        }
        throw refused(parentSpec, name, "cannot be resolved next to an image of an unknown transport");
    }

    /** QEMU's {@code path_has_protocol}: a colon before any slash. */
    static boolean hasProtocol(String name) {
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (c == '/') {
                return false;
            }
            if (c == ':') {
                return true;
            }
        }
        return false;
    }

    private static String fromLocal(String parentSpec, Path parent, String name) throws CorfsException {
        if (name.startsWith("/")) {
            return checkedPath(parentSpec, name, name);
        }
        if (hasProtocol(name)) {
            Optional<Path> p = BackingSpec.localFile(name);
            if (p.isPresent()) {
                return p.get().toString();
            }
            throw refused(parentSpec, name, "names another transport; a chain stays within one transport"
                    + " (convert the chain, or put its layers where the top one is)");
        }
        Path dir = parent.getParent();
        String joined = dir == null ? "/" + name : dir + "/" + name;
        return checkedPath(parentSpec, name, joined);
    }

    private static String checkedPath(String parentSpec, String name, String path) throws CorfsException {
        try {
            return Path.of(path).toString();
        } catch (InvalidPathException e) {
            throw refused(parentSpec, name, "is not a valid path");
        }
    }

    private static String fromHttp(String parentSpec, String name) throws CorfsException {
        URI parent;
        try {
            parent = new URI(parentSpec);
        } catch (URISyntaxException e) {
            throw refused(parentSpec, name, "cannot be resolved: the parent is not a valid URL");
        }
        String origin = httpOrigin(parent);
        if (origin == null) {
            throw refused(parentSpec, name, "cannot be resolved: the parent URL has no host");
        }
        if (name.startsWith("/")) {
            throw refused(parentSpec, name, localOrOrigin(name));
        }
        if (hasProtocol(name)) {
            String scheme = name.substring(0, name.indexOf(':')).toLowerCase(Locale.ROOT);
            if (scheme.equals("http") || scheme.equals("https")) {
                URI child;
                try {
                    child = new URI(name);
                } catch (URISyntaxException e) {
                    throw refused(parentSpec, name, "is not a valid URL");
                }
                if (!origin.equals(httpOrigin(child))) {
                    throw refused(parentSpec, name, "names another origin than its parent's (" + origin + ")");
                }
                return name;
            }
            throw refused(parentSpec, name, otherTransport(scheme));
        }
        URI ref;
        try {
            ref = new URI(encodeReference(name));
        } catch (URISyntaxException e) {
            throw refused(parentSpec, name, "is not a valid relative URL");
        }
        String refPath = ref.getRawPath();
        if (ref.getScheme() != null || ref.getRawAuthority() != null || refPath == null || refPath.isEmpty()) {
            throw refused(parentSpec, name, "is not a relative file name");
        }
        // RFC 3986 5.2.2/5.2.3: merge with the parent's path, remove dot segments; the query is the name's
        String basePath = parent.getRawPath() == null || parent.getRawPath().isEmpty() ? "/" : parent.getRawPath();
        String merged = basePath.substring(0, basePath.lastIndexOf('/') + 1) + refPath;
        String resolved = parent.getScheme() + "://" + parent.getRawAuthority() + removeDotSegments(merged)
                + (ref.getRawQuery() != null ? "?" + ref.getRawQuery() : "");
        try {
            if (!origin.equals(httpOrigin(new URI(resolved)))) {
                throw refused(parentSpec, name, "resolves to another origin");
            }
        } catch (URISyntaxException e) {
            throw refused(parentSpec, name, "does not resolve to a valid URL");
        }
        return resolved;
    }

    /** {@code scheme://host:port}, lower case with the default port filled in; null without a host. */
    private static String httpOrigin(URI u) {
        if (u.getScheme() == null || u.getHost() == null) {
            return null;
        }
        String scheme = u.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) {
            return null;
        }
        int port = u.getPort() >= 0 ? u.getPort() : scheme.equals("https") ? 443 : 80;
        return scheme + "://" + u.getHost().toLowerCase(Locale.ROOT) + ":" + port;
    }

    private static String fromS3(String parentSpec, String name) throws CorfsException {
        String rest = parentSpec.substring(5);
        int slash = rest.indexOf('/');
        if (slash <= 0) {
            throw refused(parentSpec, name, "cannot be resolved: the parent is not s3://BUCKET/KEY");
        }
        String bucket = rest.substring(0, slash);
        String key = rest.substring(slash + 1);
        if (name.startsWith("/")) {
            throw refused(parentSpec, name, localOrOrigin(name));
        }
        if (hasProtocol(name)) {
            if (name.startsWith("s3://")) {
                String other = name.substring(5);
                int s = other.indexOf('/');
                if (s <= 0 || !other.substring(0, s).equals(bucket)) {
                    throw refused(parentSpec, name, "names another bucket than its parent's (" + bucket + ")");
                }
                return name;
            }
            throw refused(parentSpec, name, otherTransport(name.substring(0, name.indexOf(':')).toLowerCase(Locale.ROOT)));
        }
        String merged = "/" + key.substring(0, key.lastIndexOf('/') + 1) + name;
        String resolved = removeDotSegments(merged).substring(1);
        if (resolved.isEmpty() || resolved.endsWith("/")) {
            throw refused(parentSpec, name, "does not name an object");
        }
        return "s3://" + bucket + "/" + resolved;
    }

    private static String fromNbd(String parentSpec, String name) throws CorfsException {
        if (name.startsWith("/")) {
            throw refused(parentSpec, name, "is an absolute path: an image read over NBD must not name a local file");
        }
        if (!hasProtocol(name)) {
            throw refused(parentSpec, name, "is relative, and an NBD export has no folder to resolve it in:"
                    + " convert the chain into one image (qemu-img convert), write each layer's nbd:// URL into"
                    + " the layer above (qemu-img rebase -u), or let qemu-nbd decode the chain and use a raw"
                    + " NBD backing");
        }
        if (!NbdUri.looksLikeNbd(name)) {
            throw refused(parentSpec, name, otherTransport(name.substring(0, name.indexOf(':')).toLowerCase(Locale.ROOT)));
        }
        NbdUri parent;
        NbdUri child;
        try {
            parent = NbdUri.parse(parentSpec);
            child = NbdUri.parse(name);
        } catch (CorfsException e) {
            throw refused(parentSpec, name, "is not a valid NBD URI");
        }
        boolean same = parent.tls() == child.tls() && (parent.unix()
                ? child.unix() && parent.socket().equals(child.socket())
                : !child.unix() && parent.host().equalsIgnoreCase(child.host()) && parent.port() == child.port());
        if (!same) {
            throw refused(parentSpec, name, "names another NBD server than its parent's");
        }
        return name;
    }

    private static String localOrOrigin(String name) {
        return name.startsWith("//") ? "names another origin (a network-path reference)"
                : "is an absolute path: an image read over the network must not name a local file";
    }

    private static String otherTransport(String scheme) {
        return scheme.equals("file") ? "is a file: URL: an image read over the network must not name a local file"
                : "names another transport (" + scheme + "); a chain stays within its parent's transport and origin";
    }

    /**
     * RFC 3986 section 5.2.4 for a path starting with {@code /}: {@code .} and {@code ..} segments
     * removed; {@code ..} at the root stays at the root.
     */
    static String removeDotSegments(String path) {
        assert path.startsWith("/") : path;
        Deque<String> out = new ArrayDeque<>();
        String[] segments = path.substring(1).split("/", -1);
        for (int i = 0; i < segments.length; i++) {
            String s = segments[i];
            boolean last = i == segments.length - 1;
            if (s.equals(".")) {
                if (last) {
                    out.addLast("");
                }
            } else if (s.equals("..")) {
                out.pollLast();
                if (last) {
                    out.addLast("");
                }
            } else {
                out.addLast(s);
            }
        }
        return "/" + String.join("/", out);
    }

    /**
     * A name as a URI reference: characters a URI may hold stay (a valid {@code %XX} escape too); any
     * other byte of its UTF-8 form is percent-encoded, so a file name with a space still resolves.
     */
    static String encodeReference(String name) {
        byte[] utf8 = name.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream(utf8.length);
        for (int i = 0; i < utf8.length; i++) {
            int b = utf8[i] & 0xff;
            boolean escape = b == '%' && i + 2 < utf8.length && hex(utf8[i + 1]) && hex(utf8[i + 2]);
            if (escape || (b < 0x80 && (Character.isLetterOrDigit(b) || "-._~!$&'()*+,;=:@/?".indexOf(b) >= 0))) {
                out.write(b);
            } else {
                out.write('%');
                out.write(Character.toUpperCase(Character.forDigit(b >> 4, 16)));
                out.write(Character.toUpperCase(Character.forDigit(b & 15, 16)));
            }
        }
        return out.toString(StandardCharsets.US_ASCII);
    }

    private static boolean hex(byte b) {
        return Character.digit(b, 16) >= 0;
    }

    private static CorfsException refused(String parentSpec, String name, String why) {
        return new CorfsException(Reason.INVALID_ARGUMENT, "backing file name '" + shown(name) + "' of "
                + shown(parentSpec) + " " + why);
    }

    /**
     * A SPEC or backing name fit for a one-line message: credentials redacted ({@link BackingSpec#redact}),
     * control characters as {@code %XX}.
     */
    static String shown(String specOrName) {
        String r = BackingSpec.redact(specOrName);
        if (r == null || r.chars().noneMatch(c -> c < 0x20 || c == 0x7f)) {
            return r;
        }
        StringBuilder b = new StringBuilder(r.length() + 8);
        r.chars().forEach(c -> {
            if (c < 0x20 || c == 0x7f) {
                b.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            } else {
                b.append((char) c);
            }
        });
        return b.toString();
    }
}
