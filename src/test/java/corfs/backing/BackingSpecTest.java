package corfs.backing;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Optional;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

@DisplayName("BackingSpec and BackingIdentity")
class BackingSpecTest {

    @Nested
    @DisplayName("redact: credentials never shown")
    class Redact {
        @ParameterizedTest(name = "[{index}] {0}")
        @CsvSource(delimiter = '|', value = {
            "/srv/images/base.raw|/srv/images/base.raw",
            "/srv/a:b@c/x?token=1|/srv/a:b@c/x?token=1",
            "file:///srv/base.raw|file:///srv/base.raw",
            "nbd://host:10809/export|nbd://host:10809/export",
            "nbd+unix:///export?socket=/run/nbd.sock|nbd+unix:///export?socket=/run/nbd.sock",
            "https://user:secret@example.org/base.raw|https://REDACTED@example.org/base.raw",
            "https://user@example.org:8443/base.raw|https://REDACTED@example.org:8443/base.raw",
            "nbds://a:b@c@host/export|nbds://REDACTED@host/export",
            "s3://AKIA:secret@bucket/key/disk.raw|s3://REDACTED@bucket/key/disk.raw",
            "https://h/p@x/q|https://h/p@x/q",
            "https://b.s3.amazonaws.com/d.raw?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&X-Amz-Date=20261202T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok&X-Amz-Signature=deadbeef"
                + "|https://b.s3.amazonaws.com/d.raw?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Date=20261202T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED",
            "https://acct.blob.core.windows.net/c/d.raw?sv=2022&sp=r&sig=abc%3D|https://acct.blob.core.windows.net/c/d.raw?sv=2022&sp=r&sig=REDACTED",
            "https://h/d?TOKEN=1;Password=2&x=3#access_token=4&y|https://h/d?TOKEN=REDACTED;Password=REDACTED&x=3#access_token=REDACTED&y",
            "https://h/d?X%2DAmz%2DSignature=1|https://h/d?X%2DAmz%2DSignature=REDACTED",
            "https://h/d?key=k&token|https://h/d?key=REDACTED&token",
            "HTTPS://U:P@H/|HTTPS://REDACTED@H/",
        })
        void cases(String spec, String shown) {
            assertEquals(shown, BackingSpec.redact(spec));
        }

        @Test
        @DisplayName("null gives null; random garbage never throws and never grows a secret back")
        void garbage() {
            assertNull(BackingSpec.redact(null));
            Random r = new Random(7);
            String alphabet = "ab:/@?#&=%;Ss+.-\u00e9\0\n";
            for (int i = 0; i < 20_000; i++) {
                StringBuilder b = new StringBuilder();
                int n = r.nextInt(40);
                for (int k = 0; k < n; k++) {
                    b.append(alphabet.charAt(r.nextInt(alphabet.length())));
                }
                String shown = BackingSpec.redact(b.toString());
                assertEquals(shown, BackingSpec.redact(shown), "redaction is idempotent");
            }
            assertFalse(BackingSpec.redact("https://u:hunter2@h/x?sig=hunter3").contains("hunter"));
        }
    }

    @Nested
    @DisplayName("localFile: the file a SPEC names")
    class LocalFile {
        @ParameterizedTest(name = "[{index}] {0}")
        @CsvSource(delimiter = '|', value = {
            "/srv/base.raw|/srv/base.raw",
            "file:///srv/base.raw|/srv/base.raw",
            "FILE:///srv/base.raw|/srv/base.raw",
            "file://localhost/srv/a%20b%C3%A9.raw|/srv/a b\u00e9.raw",
            "file:/srv/base.raw|/srv/base.raw",
        })
        void files(String spec, String path) {
            assertEquals(Optional.of(Path.of(path)), BackingSpec.localFile(spec));
        }

        @ParameterizedTest(name = "[{index}] {0}")
        @ValueSource(strings = {"", "base.raw", "nbd://h/e", "https://h/x", "s3://b/k", "file://otherhost/x",
            "file:///x%zz", "file:///x%C3", "file:///a?b", "file:///a%00b", "file:relative", "file://"})
        void notFiles(String spec) {
            assertEquals(Optional.empty(), BackingSpec.localFile(spec));
        }
    }

    @Nested
    @DisplayName("BackingIdentity")
    class Identity {
        @Test
        @DisplayName("a file identity describes itself as before and compares by its token only")
        void file() {
            BackingIdentity a = BackingIdentity.file(100, 5, 7);
            assertEquals("size=100 mtime_ns=5 inode=7", a.describe());
            assertEquals(100, a.size());
            assertEquals(a, BackingIdentity.file(100, 5, 7));
            assertEquals(a.hashCode(), BackingIdentity.file(100, 5, 7).hashCode());
            assertNotEquals(a, BackingIdentity.file(100, 6, 7));
            assertNotEquals(a, BackingIdentity.file(100, 5, 8));
            assertNotEquals(a, BackingIdentity.file(101, 5, 7));
            assertEquals(a, BackingIdentity.of(a.token(), "another description", 1));
            assertNotEquals(a, BackingIdentity.of("http:100:\"etag\"", a.describe(), 100));
        }
    }
}
