package corfs.backing.s3;

import corfs.backing.http.RequestSigner;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Clock;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * AWS Signature Version 4 in request headers (the {@code Authorization: AWS4-HMAC-SHA256 ...} form), as
 * S3 wants it: the canonical URI is the request's path exactly as sent (S3 does not encode it twice), the
 * payload hash goes in {@code x-amz-content-sha256}, a session token in {@code x-amz-security-token}.
 * Checked against the AWS SigV4 test suite vectors and S3's documented GET example
 * ({@code SigV4SignerTest}).
 *
 * <p>Stateless apart from its credential provider and clock; thread-safe. With no credentials it adds
 * nothing: the request goes unsigned (public buckets).
 */
public final class SigV4Signer implements RequestSigner {
    /** SHA-256 of the empty body: what a GET signs. */
    public static final String EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    private static final DateTimeFormatter AMZ_DATE = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'")
            .withZone(ZoneOffset.UTC);

    private final AwsCredentialsProvider credentials;
    private final String region;
    private final String service;
    private final Clock clock;

    public SigV4Signer(AwsCredentialsProvider credentials, String region, String service, Clock clock) {
        this.credentials = credentials;
        this.region = region;
        this.service = service;
        this.clock = clock;
    }

    @Override
    public Map<String, String> sign(String method, URI uri, Map<String, String> headers) throws IOException {
        return sign(method, uri, headers, EMPTY_SHA256);
    }

    /** The headers to add to a request with a body whose SHA-256 (hex) is {@code payloadHash}. */
    public Map<String, String> sign(String method, URI uri, Map<String, String> headers, String payloadHash)
            throws IOException {
        AwsCredentials c = credentials.credentials();
        if (c == null) {
            return Map.of();
        }
        Map<String, String> added = new LinkedHashMap<>();
        added.put("x-amz-date", AMZ_DATE.format(clock.instant()));
        added.put("x-amz-content-sha256", payloadHash);
        if (c.sessionToken() != null) {
            added.put("x-amz-security-token", c.sessionToken());
        }
        Map<String, String> signed = new TreeMap<>();
        headers.forEach((k, v) -> signed.put(k.toLowerCase(Locale.ROOT), v));
        signed.putAll(added);
        signed.put("host", hostHeader(uri));
        added.put("Authorization", authorization(method, uri, signed, payloadHash, c, region, service));
        return added;
    }

    /** The Host header the JDK client sends for {@code uri}: the host, and the port when one is given. */
    static String hostHeader(URI uri) {
        String host = uri.getHost();
        if (host.contains(":") && !host.startsWith("[")) {
            host = "[" + host + "]";
        }
        return uri.getPort() == -1 ? host : host + ":" + uri.getPort();
    }

    /**
     * The Authorization header value for a request whose signed headers (lower-case names, host and
     * x-amz-date included) are {@code headers}.
     */
    static String authorization(String method, URI uri, Map<String, String> headers, String payloadHash,
            AwsCredentials c, String region, String service) {
        Map<String, String> sorted = new TreeMap<>();
        headers.forEach((k, v) -> sorted.put(k.toLowerCase(Locale.ROOT), v.strip().replaceAll(" +", " ")));
        String amzDate = sorted.get("x-amz-date");
        String day = amzDate.substring(0, 8);
        StringBuilder canonicalHeaders = new StringBuilder();
        sorted.forEach((k, v) -> canonicalHeaders.append(k).append(':').append(v).append('\n'));
        String signedHeaders = String.join(";", sorted.keySet());
        String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
        String canonical = method + "\n" + path + "\n" + canonicalQuery(uri.getRawQuery()) + "\n" + canonicalHeaders
                + "\n" + signedHeaders + "\n" + payloadHash;
        String scope = day + "/" + region + "/" + service + "/aws4_request";
        String toSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex(canonical);
        byte[] key = hmac(("AWS4" + c.secretAccessKey()).getBytes(StandardCharsets.UTF_8), day);
        key = hmac(key, region);
        key = hmac(key, service);
        key = hmac(key, "aws4_request");
        String signature = HexFormat.of().formatHex(hmac(key, toSign));
        return "AWS4-HMAC-SHA256 Credential=" + c.accessKeyId() + "/" + scope + ", SignedHeaders=" + signedHeaders
                + ", Signature=" + signature;
    }

    static String canonicalQuery(String rawQuery) {
        if (rawQuery == null || rawQuery.isEmpty()) {
            return "";
        }
        List<String[]> pairs = new ArrayList<>();
        for (String p : rawQuery.split("&")) {
            if (p.isEmpty()) {
                continue;
            }
            int eq = p.indexOf('=');
            String k = eq < 0 ? p : p.substring(0, eq);
            String v = eq < 0 ? "" : p.substring(eq + 1);
            pairs.add(new String[] {encode(decode(k), true), encode(decode(v), true)});
        }
        pairs.sort((a, b) -> a[0].equals(b[0]) ? a[1].compareTo(b[1]) : a[0].compareTo(b[0]));
        StringBuilder s = new StringBuilder();
        for (String[] p : pairs) {
            s.append(s.length() == 0 ? "" : "&").append(p[0]).append('=').append(p[1]);
        }
        return s.toString();
    }

    /** SigV4 URI encoding: unreserved characters kept, everything else %XX of its UTF-8 bytes. */
    public static String encode(String s, boolean encodeSlash) {
        StringBuilder out = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
                    || c == '.' || c == '~' || (c == '/' && !encodeSlash)) {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return out.toString();
    }

    private static String decode(String s) {
        return java.net.URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    public static String sha256Hex(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("no SHA-256 in this JVM", e);
        }
    }

    private static String sha256Hex(String s) {
        return sha256Hex(s.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] hmac(byte[] key, String data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("no HmacSHA256 in this JVM", e);
        }
    }
}
