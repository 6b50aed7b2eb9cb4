package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

@DisplayName("backing file names resolved within the parent's transport")
class ChainNamesTest {

    private static String resolve(String parent, String name) throws CorfsException {
        return ChainNames.resolve(parent, name);
    }

    /** Refused with INVALID_ARGUMENT and a message holding {@code words}; returns the message. */
    private static String refused(String parent, String name, String words) {
        CorfsException e = assertThrows(CorfsException.class, () -> resolve(parent, name), parent + " + " + name);
        assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
        assertTrue(e.getMessage().contains(words), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    @Nested
    @DisplayName("a local parent")
    class Local {
        @Test
        @DisplayName("relative names are siblings, absolute paths and file: URLs stay as QEMU takes them")
        void names() throws CorfsException {
            assertEquals("/img/base.raw", resolve("/img/top.qcow2", "base.raw"));
            assertEquals("/img/a/../base/b.qcow2", resolve("/img/top.qcow2", "a/../base/b.qcow2"));
            assertEquals("/img/sub/l1.qcow2", resolve("file:///img/sub/top.qcow2", "l1.qcow2"));
            assertEquals("/img/my disk.raw", resolve("file:///img/my%20disk.qcow2", "my disk.raw"));
            assertEquals("/elsewhere/base.raw", resolve("/img/top.qcow2", "/elsewhere/base.raw"));
            assertEquals("/elsewhere/base.raw", resolve("/img/top.qcow2", "file:///elsewhere/base.raw"));
            assertEquals("/img/./a:b.raw", resolve("/img/top.qcow2", "./a:b.raw"));
            assertEquals("/base.raw", resolve("/top.qcow2", "base.raw"));
        }

        @Test
        @DisplayName("another transport, and names with control characters, are refused")
        void refusals() {
            refused("/img/top.qcow2", "nbd://127.0.0.1/x", "another transport");
            refused("/img/top.qcow2", "https://example.com/base.raw", "another transport");
            refused("/img/top.qcow2", "json:{\"file\":{}}", "another transport");
            refused("/img/top.qcow2", "base\n.raw", "control character");
            refused("/img/top.qcow2", "", "empty");
        }
    }

    @Nested
    @DisplayName("an http(s) parent")
    class Http {
        @Test
        @DisplayName("relative names are RFC 3986 references on the same origin; ../ above the root stays there")
        void relative() throws CorfsException {
            String top = "https://images.example:8443/v/a/top.qcow2?X-Amz-Signature=abc";
            assertEquals("https://images.example:8443/v/a/base.raw", resolve(top, "base.raw"));
            assertEquals("https://images.example:8443/v/b/l1.qcow2", resolve(top, "../b/l1.qcow2"));
            assertEquals("https://images.example:8443/etc/passwd", resolve(top, "../../../../../etc/passwd"));
            assertEquals("https://images.example:8443/v/a/sub/x.qcow2", resolve(top, "./sub/./x.qcow2"));
            assertEquals("https://images.example:8443/v/a/my%20disk%23.raw", resolve(top, "my disk#.raw"));
            assertEquals("https://images.example:8443/v/a/%C3%A9t%C3%A9.raw", resolve(top, "été.raw"));
            assertEquals("https://images.example:8443/v/a/b.raw?v=2", resolve(top, "b.raw?v=2"));
            assertEquals("http://u:p@h/base.raw", resolve("http://u:p@h/top.qcow2", "base.raw"));
            assertEquals("http://h/base.raw", resolve("http://h", "base.raw"));
        }

        @Test
        @DisplayName("an absolute URL on the same origin is kept; the default port counts as given")
        void sameOrigin() throws CorfsException {
            assertEquals("http://H:80/b.raw", resolve("http://h/top.qcow2", "http://H:80/b.raw"));
            assertEquals("https://h/x/b.raw", resolve("https://h:443/top.qcow2", "https://h/x/b.raw"));
        }

        @Test
        @DisplayName("local files, other origins and other transports are refused, credentials never shown")
        void refusals() {
            String top = "https://user:s3cret@images.example/v/top.qcow2";
            String m = refused(top, "/etc/passwd", "must not name a local file");
            assertFalse(m.contains("s3cret"), m);
            refused(top, "file:///etc/passwd", "must not name a local file");
            refused(top, "FILE:/etc/passwd", "must not name a local file");
            refused(top, "//evil.example/base.raw", "another origin");
            refused(top, "https://evil.example/base.raw", "another origin");
            refused(top, "http://images.example/v/base.raw", "another origin");
            refused(top, "https://images.example:444/v/base.raw", "another origin");
            refused(top, "nbd://images.example/base", "another transport");
            refused(top, "s3://bucket/base.raw", "another transport");
            String creds = refused(top, "https://alice:pw0rd@evil.example/b.raw", "another origin");
            assertFalse(creds.contains("pw0rd"), creds);
        }
    }

    @Nested
    @DisplayName("an s3 parent")
    class S3 {
        @Test
        @DisplayName("relative names stay in the bucket, next to the key")
        void relative() throws CorfsException {
            assertEquals("s3://bucket/dir/base.raw", resolve("s3://bucket/dir/top.qcow2", "base.raw"));
            assertEquals("s3://bucket/other/l1.qcow2", resolve("s3://bucket/dir/top.qcow2", "../other/l1.qcow2"));
            assertEquals("s3://bucket/etc/passwd", resolve("s3://bucket/dir/top.qcow2", "../../../etc/passwd"));
            assertEquals("s3://bucket/base.raw", resolve("s3://bucket/top.qcow2", "base.raw"));
            assertEquals("s3://bucket/dir/b.raw", resolve("s3://bucket/x/top.qcow2", "s3://bucket/dir/b.raw"));
        }

        @Test
        @DisplayName("local files, other buckets and other transports are refused")
        void refusals() {
            refused("s3://bucket/dir/top.qcow2", "/etc/passwd", "must not name a local file");
            refused("s3://bucket/dir/top.qcow2", "file:///etc/passwd", "must not name a local file");
            refused("s3://bucket/dir/top.qcow2", "s3://other/dir/b.raw", "another bucket");
            refused("s3://bucket/dir/top.qcow2", "https://bucket.s3.amazonaws.com/b.raw", "another transport");
            refused("s3://bucket/dir/top.qcow2", "..", "does not name an object");
        }
    }

    @Nested
    @DisplayName("an NBD parent")
    class Nbd {
        @Test
        @DisplayName("a relative name cannot be resolved: refused with what to do instead")
        void relative() {
            refused("nbd://127.0.0.1:10809/top", "base.qcow2", "qemu-img convert");
            refused("nbd+unix:///top?socket=/run/nbd.sock", "base.qcow2", "no folder");
        }

        @Test
        @DisplayName("an NBD URL on the same server is kept; another server, TLS dropped, local files refused")
        void absolute() throws CorfsException {
            assertEquals("nbd://127.0.0.1:10809/base", resolve("nbd://127.0.0.1:10809/top", "nbd://127.0.0.1:10809/base"));
            assertEquals("nbd://localhost/base", resolve("nbd://LOCALHOST:10809/top", "nbd://localhost/base"));
            assertEquals("nbd+unix:///base?socket=/run/n.sock",
                    resolve("nbd+unix:///top?socket=/run/n.sock", "nbd+unix:///base?socket=/run/n.sock"));
            refused("nbd://127.0.0.1/top", "nbd://10.0.0.1/base", "another NBD server");
            refused("nbds://127.0.0.1/top", "nbd://127.0.0.1/base", "another NBD server");
            refused("nbd+unix:///top?socket=/run/n.sock", "nbd+unix:///base?socket=/tmp/evil.sock", "another NBD server");
            refused("nbd://127.0.0.1/top", "/etc/passwd", "must not name a local file");
            refused("nbd://127.0.0.1/top", "file:///etc/passwd", "must not name a local file");
            refused("nbd://127.0.0.1/top", "http://127.0.0.1/base", "another transport");
        }
    }

    @Test
    @DisplayName("an unknown parent transport resolves nothing")
    void unknownParent() {
        refused("ftp://h/top.qcow2", "base.raw", "unknown transport");
    }

    @Test
    @DisplayName("QEMU's rule for a protocol: a colon before any slash")
    void protocol() {
        assertTrue(ChainNames.hasProtocol("nbd://h/x"));
        assertTrue(ChainNames.hasProtocol("a:b"));
        assertFalse(ChainNames.hasProtocol("./a:b"));
        assertFalse(ChainNames.hasProtocol("dir/a:b"));
        assertFalse(ChainNames.hasProtocol("base.raw"));
    }

    @Test
    @DisplayName("dot segments removed as RFC 3986 5.2.4 says")
    void dotSegments() {
        assertEquals("/a/g", ChainNames.removeDotSegments("/a/b/c/./../../g"));
        assertEquals("/g", ChainNames.removeDotSegments("/../../g"));
        assertEquals("/a/", ChainNames.removeDotSegments("/a/b/.."));
        assertEquals("/a/b/", ChainNames.removeDotSegments("/a/b/."));
        assertEquals("/", ChainNames.removeDotSegments("/.."));
    }
}
