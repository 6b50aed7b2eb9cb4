package corfs.backing.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** The s3:// transport's SPEC and option checks, which do no I/O (s3proxy runs in S3BackingIT). */
@DisplayName("S3 transport: SPEC and options")
class S3TransportTest {
    private final S3Transport t = new S3Transport(AwsCredentialsProvider.ANONYMOUS, Map.of());

    @Test
    @DisplayName("accepts s3:// only; its keys; no credential option")
    void accepts() {
        assertTrue(t.accepts("s3://bucket/key"));
        assertTrue(t.accepts("S3://bucket/key"));
        assertFalse(t.accepts("https://bucket.s3.amazonaws.com/key"));
        assertFalse(t.accepts("/srv/s3/key"));
        assertFalse(t.accepts(null));
        assertEquals("s3", t.name());
        assertEquals(Set.of("endpoint", "region", "path-style", "ca"), t.optionKeys());
        assertEquals(Set.of("endpoint", "region", "path-style", "ca"), new S3Transport().optionKeys());
    }

    @Test
    @DisplayName("good SPECs and options validate without a server; bad ones are INVALID_ARGUMENT")
    void validate() throws Exception {
        t.validate("s3://my-bucket/images/disk one.raw", Map.of());
        t.validate("S3://my-bucket/k", Map.of("endpoint", "http://127.0.0.1:1", "region", "eu-west-3",
                "path-style", "no", "ca", "/etc/ca.pem", "timeout", "60", "connections", "16"));
        for (String bad : new String[] {"s3://", "s3://bucket", "s3://bucket/", "s3://B/k", "s3:///k", "s3://b/k\n"}) {
            CorfsException e = assertThrows(CorfsException.class, () -> t.validate(bad, Map.of()), bad);
            assertEquals(Reason.INVALID_ARGUMENT, e.reason(), bad);
        }
        for (Map<String, String> bad : List.of(Map.of("path-style", "maybe"), Map.of("region", "EU WEST"),
                Map.of("endpoint", "ftp://x"), Map.of("endpoint", "http://h/path"), Map.of("ca", "ca.pem"),
                Map.of("header-file", "/h"), Map.of("aws_secret_access_key", "x"), Map.of("connections", "0"))) {
            CorfsException e = assertThrows(CorfsException.class, () -> t.validate("s3://bucket/k", bad), bad.toString());
            assertEquals(Reason.INVALID_ARGUMENT, e.reason(), bad.toString());
        }
    }
}
