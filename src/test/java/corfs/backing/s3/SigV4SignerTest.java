package corfs.backing.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** SigV4 against AWS's published vectors: the SigV4 test suite (service "service") and S3's GET example. */
@DisplayName("SigV4 signing")
class SigV4SignerTest {
    private static final AwsCredentials SUITE = new AwsCredentials("AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", null, null);

    private static String suite(String method, String url) {
        Map<String, String> h = new TreeMap<>(Map.of("host", "example.amazonaws.com", "x-amz-date", "20150830T123600Z"));
        return SigV4Signer.authorization(method, URI.create(url), h, SigV4Signer.EMPTY_SHA256, SUITE, "us-east-1",
                "service");
    }

    @Test
    @DisplayName("test suite get-vanilla")
    void getVanilla() {
        assertEquals("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=host;x-amz-date, "
                + "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
                suite("GET", "https://example.amazonaws.com/"));
    }

    @Test
    @DisplayName("test suite get-vanilla-query-order-key-case: the query is sorted")
    void queryOrder() {
        assertTrue(suite("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1")
                .endsWith("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
    }

    @Test
    @DisplayName("test suite post-vanilla and get-utf8")
    void postAndUtf8() {
        assertTrue(suite("POST", "https://example.amazonaws.com/")
                .endsWith("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
        assertTrue(suite("GET", "https://example.amazonaws.com/" + SigV4Signer.encode("\u1234", false))
                .endsWith("Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"));
    }

    @Test
    @DisplayName("S3's documented GET Object example with a Range, through sign() with a fixed clock")
    void s3GetObjectExample() throws Exception {
        AwsCredentials c = new AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", null,
                null);
        Clock at = Clock.fixed(Instant.parse("2013-05-24T00:00:00Z"), ZoneOffset.UTC);
        SigV4Signer signer = new SigV4Signer(() -> c, "us-east-1", "s3", at);
        Map<String, String> added = signer.sign("GET", URI.create("https://examplebucket.s3.amazonaws.com/test.txt"),
                Map.of("range", "bytes=0-9"));
        assertEquals("20130524T000000Z", added.get("x-amz-date"));
        assertEquals(SigV4Signer.EMPTY_SHA256, added.get("x-amz-content-sha256"));
        assertEquals("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
                added.get("Authorization"));
    }

    @Test
    @DisplayName("a session token is sent and signed; no credentials: nothing added")
    void sessionTokenAndAnonymous() throws Exception {
        AwsCredentials c = new AwsCredentials("AKID", "s3cr3tvalue", "TOKEN", null);
        Clock at = Clock.fixed(Instant.parse("2020-01-01T00:00:00Z"), ZoneOffset.UTC);
        Map<String, String> added = new SigV4Signer(() -> c, "eu-west-1", "s3", at)
                .sign("GET", URI.create("http://127.0.0.1:9000/b/k"), Map.of("if-match", "\"x\""));
        assertEquals("TOKEN", added.get("x-amz-security-token"));
        assertTrue(added.get("Authorization").contains(
                "SignedHeaders=host;if-match;x-amz-content-sha256;x-amz-date;x-amz-security-token"), added.toString());
        assertEquals(Map.of(), new SigV4Signer(AwsCredentialsProvider.ANONYMOUS, "us-east-1", "s3", at)
                .sign("GET", URI.create("http://127.0.0.1:9000/b/k"), Map.of()));
        assertEquals("127.0.0.1:9000", SigV4Signer.hostHeader(URI.create("http://127.0.0.1:9000/b/k")));
        assertTrue(!c.toString().contains("s3cr3tvalue") && !c.toString().contains("TOKEN"), c.toString());
    }

    @Test
    @DisplayName("keys are encoded once, slashes kept")
    void keyEncoding() {
        assertEquals("dir/a%20b%2Bc~%C3%A9", SigV4Signer.encode("dir/a b+c~\u00e9", false));
        assertEquals("a%2Fb", SigV4Signer.encode("a/b", true));
    }
}
