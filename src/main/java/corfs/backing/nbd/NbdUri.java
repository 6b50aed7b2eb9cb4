package corfs.backing.nbd;

import corfs.CorfsException;
import corfs.CorfsException.Reason;

import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * An NBD export's address, as the NBD URI specification (NetworkBlockDevice/nbd {@code doc/uri.md})
 * writes it: {@code nbd://HOST[:PORT]/EXPORT}, {@code nbd+unix:///EXPORT?socket=PATH}, and the TLS
 * forms {@code nbds://} and {@code nbds+unix://}.
 *
 * <p>{@link #parse} is strict, because a SPEC is stored in a leaf's metadata and handed to a daemon:
 * it refuses anything it would have to guess about, each with a message naming the problem. Refused on
 * purpose: a user name ({@code user@host}: no secret or identity in a stored SPEC), a fragment, a
 * relative or abstract ({@code %00}) socket path, a host or query on the wrong scheme,
 * {@code tls-verify-peer=0} and {@code tls-type} other than {@code x509} (corfs always verifies the
 * server), unknown or repeated query parameters, malformed percent escapes, invalid UTF-8, NUL, and
 * raw spaces or control characters. An empty export name is allowed ({@code nbd://host} and
 * {@code nbd://host/} both name the default export); {@code nbd://host//disk} names {@code /disk}.
 *
 * <p>{@code nbd://} and {@code nbd+unix://} mean plain NBD: corfs never upgrades opportunistically (a
 * downgrade attack could strip it silently), so a server that requires TLS is reported as such.
 *
 * @param tls          whether TLS is required ({@code nbds}, {@code nbds+unix})
 * @param host         host name or IP literal (IPv6 without brackets); null for a Unix socket
 * @param port         TCP port (default {@value NbdProtocol#DEFAULT_PORT}); -1 for a Unix socket
 * @param socket       absolute path of the Unix socket; null for TCP
 * @param exportName   the export name, decoded; may be empty
 * @param tlsHostname  the {@code tls-hostname} query parameter, or null
 */
public record NbdUri(boolean tls, String host, int port, String socket, String exportName, String tlsHostname) {

    /** Longest URI accepted: far more than any real one, short enough to bound every loop below. */
    static final int MAX_URI_LENGTH = 8192;
    /** Linux {@code sun_path} holds 108 bytes including the terminating NUL. */
    static final int MAX_SOCKET_PATH_BYTES = 107;
    private static final String SCHEMES = "nbd://, nbds://, nbd+unix:// or nbds+unix://";

    /** Whether the export is reached over a Unix domain socket. */
    public boolean unix() {
        return socket != null;
    }

    /** True for a SPEC that should be parsed by {@link #parse} (its scheme is one of NBD's). */
    public static boolean looksLikeNbd(String spec) {
        String s = spec.toLowerCase(Locale.ROOT);
        return s.startsWith("nbd://") || s.startsWith("nbds://") || s.startsWith("nbd+unix://")
                || s.startsWith("nbds+unix://");
    }

    /** The address to connect to (unresolved host names are resolved at connect). */
    SocketAddress address() {
        return unix() ? UnixDomainSocketAddress.of(socket) : new InetSocketAddress(host, port);
    }

    /** The name the server's certificate must carry: {@code tls-hostname}, else the host; null if none. */
    String certificateHostname() {
        return tlsHostname != null ? tlsHostname : host;
    }

    /**
     * Parses an NBD URI.
     *
     * @throws CorfsException INVALID_ARGUMENT, with a message saying what is wrong
     */
    public static NbdUri parse(String text) throws CorfsException {
        if (text == null || text.isEmpty()) {
            throw bad("empty NBD URI");
        }
        if (text.length() > MAX_URI_LENGTH) {
            throw bad("NBD URI longer than " + MAX_URI_LENGTH + " characters");
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c <= 0x20 || c >= 0x7f) {
                throw bad("NBD URI has a space, control or non-ASCII character at position " + i
                        + " (percent-encode it)");
            }
        }
        int sep = text.indexOf("://");
        if (sep <= 0) {
            throw bad("not an NBD URI: expected " + SCHEMES);
        }
        String scheme = text.substring(0, sep).toLowerCase(Locale.ROOT);
        boolean tls;
        boolean unix;
        switch (scheme) {
            case "nbd" -> { tls = false; unix = false; }
            case "nbds" -> { tls = true; unix = false; }
            case "nbd+unix" -> { tls = false; unix = true; }
            case "nbds+unix" -> { tls = true; unix = true; }
            default -> throw bad("unknown scheme '" + scheme + "': expected " + SCHEMES);
        }
        String rest = text.substring(sep + 3);
        if (rest.indexOf('#') >= 0) {
            throw bad("NBD URI has a fragment ('#'); percent-encode '#' as %23 in an export name");
        }
        String query = null;
        int q = rest.indexOf('?');
        if (q >= 0) {
            query = rest.substring(q + 1);
            rest = rest.substring(0, q);
        }
        int slash = rest.indexOf('/');
        String authority = slash >= 0 ? rest.substring(0, slash) : rest;
        String path = slash >= 0 ? rest.substring(slash) : "";

        String host = null;
        int port = -1;
        if (authority.indexOf('@') >= 0) {
            throw bad("user names in NBD URIs are not supported (remove '...@')");
        }
        if (unix) {
            if (!authority.isEmpty()) {
                throw bad(scheme + " URIs take no host ('" + authority + "'): write " + scheme
                        + ":///EXPORT?socket=PATH");
            }
        } else {
            String[] hp = hostAndPort(authority);
            host = hp[0];
            port = hp[1] == null ? NbdProtocol.DEFAULT_PORT : parsePort(hp[1]);
        }

        String exportName = path.isEmpty() ? "" : decode(path, "export name").substring(1);
        if (exportName.getBytes(StandardCharsets.UTF_8).length > NbdProtocol.MAX_STRING) {
            throw bad("export name longer than " + NbdProtocol.MAX_STRING + " bytes");
        }

        Map<String, String> params = parseQuery(query);
        String socket = params.remove("socket");
        String tlsHostname = params.remove("tls-hostname");
        String tlsType = params.remove("tls-type");
        String verify = params.remove("tls-verify-peer");
        if (!params.isEmpty()) {
            throw bad("unknown NBD URI parameter '" + params.keySet().iterator().next()
                    + "' (known: socket, tls-hostname, tls-type, tls-verify-peer)");
        }
        if (unix) {
            if (socket == null) {
                throw bad(scheme + " URI needs ?socket=PATH");
            }
            checkSocket(socket);
        } else if (socket != null) {
            throw bad("socket= is only for nbd+unix:// and nbds+unix:// URIs");
        }
        if (!tls && (tlsHostname != null || tlsType != null || verify != null)) {
            throw bad("TLS parameters need an nbds:// or nbds+unix:// URI (plain nbd:// never uses TLS)");
        }
        if (tlsType != null && !tlsType.equals("x509")) {
            throw bad("tls-type=" + tlsType + " is not supported (only x509)");
        }
        if (verify != null && !verify.equals("1")) {
            throw bad("tls-verify-peer=" + verify + " is not supported: corfs always verifies the server");
        }
        if (tlsHostname != null) {
            checkHostName(tlsHostname, "tls-hostname");
        }
        return new NbdUri(tls, host, port, socket, exportName, tlsHostname);
    }

    private static String[] hostAndPort(String authority) throws CorfsException {
        if (authority.isEmpty()) {
            throw bad("NBD URI has no host: write nbd://HOST[:PORT]/EXPORT, or nbd+unix:///EXPORT?socket=PATH");
        }
        String host;
        String port = null;
        if (authority.startsWith("[")) {
            int close = authority.indexOf(']');
            if (close < 0) {
                throw bad("unterminated IPv6 literal in '" + authority + "'");
            }
            host = authority.substring(1, close);
            if (host.isEmpty() || !host.matches("[0-9A-Fa-f:.]+") || host.indexOf(':') < 0) {
                throw bad("bad IPv6 literal '[" + host + "]' (zone ids are not supported)");
            }
            String after = authority.substring(close + 1);
            if (!after.isEmpty()) {
                if (!after.startsWith(":")) {
                    throw bad("unexpected '" + after + "' after the IPv6 literal");
                }
                port = after.substring(1);
            }
        } else {
            int colon = authority.indexOf(':');
            host = colon >= 0 ? authority.substring(0, colon) : authority;
            port = colon >= 0 ? authority.substring(colon + 1) : null;
            checkHostName(host, "host");
        }
        return new String[] {host, port};
    }

    private static void checkHostName(String host, String what) throws CorfsException {
        if (host.isEmpty() || host.length() > 253 || !host.matches("[A-Za-z0-9._~-]+")) {
            throw bad("bad " + what + " '" + host + "' (letters, digits, '.', '-', '_' only)");
        }
    }

    private static int parsePort(String port) throws CorfsException {
        if (port.isEmpty() || port.length() > 5 || !port.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw bad("bad port '" + port + "' (1 to 65535)");
        }
        int p = Integer.parseInt(port);
        if (p < 1 || p > 65535) {
            throw bad("bad port '" + port + "' (1 to 65535)");
        }
        return p;
    }

    private static void checkSocket(String socket) throws CorfsException {
        if (socket.isEmpty()) {
            throw bad("empty socket= parameter");
        }
        if (socket.charAt(0) == 0) {
            throw bad("abstract Unix sockets (socket=%00...) are not supported");
        }
        if (!socket.startsWith("/")) {
            throw bad("socket=" + socket + " must be an absolute path (the daemon's directory is not yours)");
        }
        if (socket.getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH_BYTES) {
            throw bad("socket path longer than " + MAX_SOCKET_PATH_BYTES + " bytes (the Unix socket limit)");
        }
    }

    private static Map<String, String> parseQuery(String query) throws CorfsException {
        Map<String, String> params = new LinkedHashMap<>();
        if (query == null) {
            return params;
        }
        if (query.isEmpty()) {
            throw bad("empty query after '?'");
        }
        for (String part : query.split("&", -1)) {
            int eq = part.indexOf('=');
            if (part.isEmpty() || eq <= 0) {
                throw bad("bad query parameter '" + part + "' (expected KEY=VALUE)");
            }
            String key = decode(part.substring(0, eq), "query parameter name");
            String value = decode(part.substring(eq + 1), "value of " + key);
            if (params.put(key, value) != null) {
                throw bad("query parameter '" + key + "' given twice");
            }
        }
        return params;
    }

    /** Strict RFC 3986 percent-decoding to UTF-8: malformed escapes, invalid UTF-8 and NUL are refused. */
    static String decode(String s, String what) throws CorfsException {
        ByteArrayOutputStream out = new ByteArrayOutputStream(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '%') {
                if (i + 2 >= s.length()) {
                    throw bad("truncated percent escape in " + what);
                }
                int hi = Character.digit(s.charAt(i + 1), 16);
                int lo = Character.digit(s.charAt(i + 2), 16);
                if (hi < 0 || lo < 0) {
                    throw bad("bad percent escape '" + s.substring(i, i + 3) + "' in " + what);
                }
                out.write(hi << 4 | lo);
                i += 2;
            } else {
                out.write(c);
            }
        }
        byte[] bytes = out.toByteArray();
        try {
            String decoded = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
            if (decoded.indexOf(0) >= 0 && !(what.equals("value of socket") && decoded.charAt(0) == 0)) {
                throw bad("NUL character in " + what);
            }
            return decoded;
        } catch (CharacterCodingException e) {
            throw bad("invalid UTF-8 in " + what);
        }
    }

    private static String encode(String s, boolean keepSlash) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            int c = x & 0xff;
            if (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
                    || c == '_' || c == '~' || keepSlash && c == '/') {
                b.append((char) c);
            } else {
                b.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return b.toString();
    }

    private static CorfsException bad(String message) {
        return new CorfsException(Reason.INVALID_ARGUMENT, message);
    }

    /** The canonical URI (parses back to an equal value); it never holds a secret. */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder(tls ? "nbds" : "nbd");
        if (unix()) {
            b.append("+unix://");
        } else {
            b.append("://").append(host.indexOf(':') >= 0 ? "[" + host + "]" : host);
            if (port != NbdProtocol.DEFAULT_PORT) {
                b.append(':').append(port);
            }
        }
        b.append('/').append(encode(exportName, true));
        String sepChar = "?";
        if (unix()) {
            b.append(sepChar).append("socket=").append(encode(socket, true));
            sepChar = "&";
        }
        if (tlsHostname != null) {
            b.append(sepChar).append("tls-hostname=").append(encode(tlsHostname, false));
        }
        return b.toString();
    }
}
