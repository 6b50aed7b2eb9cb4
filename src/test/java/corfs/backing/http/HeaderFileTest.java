package corfs.backing.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@DisplayName("header file, URL redaction, Content-Range, options")
class HeaderFileTest {
    private static final String SECRET = "Bearer 7op-s3cr3t";

    @Test
    @DisplayName("reads headers, skips blank and comment lines, accepts CRLF; the value never shows in toString")
    void reads(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("h");
        Files.writeString(f, "# token\r\nAuthorization: " + SECRET + "\r\n\nX-Trace-Id:  abc \n");
        List<HeaderFile.Header> h = HeaderFile.read(f);
        assertEquals(2, h.size());
        assertEquals("Authorization", h.get(0).name());
        assertEquals(SECRET, h.get(0).value());
        assertEquals("abc", h.get(1).value());
        assertFalse(h.toString().contains("s3cr3t"), h.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"X-A: a\rInjected: 1", "X-A: a\u0000b", "X-A: caf\u00e9", "Host: evil", "host: evil",
        "Range: bytes=0-", "If-Match: *", "if-none-match: x", "If-Unmodified-Since: x", "Content-Length: 5",
        "Transfer-Encoding: chunked", "Connection: close", "Upgrade: h2c", "Accept-Encoding: gzip",
        "Proxy-Authorization: x", "X-Amz-Date: 1", "Bad Name: x", "no colon", ": empty name"})
    @DisplayName("hostile lines are refused, naming the line but never the value")
    void refusesHostile(String line) {
        byte[] content = ("X-Ok: fine\n" + line + "\n").getBytes(StandardCharsets.ISO_8859_1);
        CorfsException e = assertThrows(CorfsException.class, () -> HeaderFile.parse(content, "F"));
        assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
        assertFalse(e.getMessage().contains("evil") || e.getMessage().contains("Injected"), e.getMessage());
    }

    @Test
    @DisplayName("a file over 64 KiB is refused")
    void refusesHuge(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("h");
        Files.write(f, new byte[HeaderFile.MAX_BYTES + 1]);
        assertThrows(CorfsException.class, () -> HeaderFile.read(f));
    }

    @Test
    @DisplayName("URLs are shown without user info and query values")
    void redacts() {
        assertEquals("https://host:8443/a/b?...",
                SafeUri.redact(URI.create("https://user:pw@host:8443/a/b?X-Amz-Signature=abc#frag")));
        assertEquals("http://h/", SafeUri.redact(URI.create("http://h")));
        assertEquals(URI.create("https://host:8443/a?q=1"),
                SafeUri.withoutUserInfo(URI.create("https://user:pw@host:8443/a?q=1")));
        assertTrue(SafeUri.sameOrigin(URI.create("https://H/x"), URI.create("https://h:443/y")));
        assertFalse(SafeUri.sameOrigin(URI.create("https://h/x"), URI.create("http://h/x")));
    }

    @Test
    @DisplayName("Content-Range parses exactly or not at all")
    void contentRange() {
        assertEquals(new ContentRange(0, 0, 1000), ContentRange.parse("bytes 0-0/1000"));
        assertEquals(new ContentRange(-1, -1, 0), ContentRange.parse("bytes */0"));
        assertEquals(-1, ContentRange.parse("bytes 5-9/*").total());
        assertNull(ContentRange.parse("bytes 9-5/100"));
        assertNull(ContentRange.parse("bytes 0-100/100"));
        assertNull(ContentRange.parse("bytes 0-1/99999999999999999999"));
        assertNull(ContentRange.parse("items 0-1/2"));
        assertNull(ContentRange.parse(null));
    }
}
