package corfs.backing.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

@DisplayName("NBD URIs (doc/uri.md)")
class NbdUriTest {

    @Nested
    @DisplayName("accepted")
    class Accepted {
        @Test
        @DisplayName("the spec's export name table")
        void exportNames() throws CorfsException {
            assertEquals("disk", NbdUri.parse("nbd://example.com/disk").exportName());
            assertEquals("disk", NbdUri.parse("nbd+unix:///disk?socket=/run/sock").exportName());
            assertEquals("", NbdUri.parse("nbd://example.com/").exportName());
            assertEquals("", NbdUri.parse("nbd://example.com").exportName());
            assertEquals("/disk", NbdUri.parse("nbd://example.com//disk").exportName());
            assertEquals("hello world", NbdUri.parse("nbd://example.com/hello%20world").exportName());
            assertEquals("dïsk", NbdUri.parse("nbd://h/d%C3%AFsk").exportName());
        }

        @Test
        @DisplayName("TCP: default port 10809, explicit port, IPv4 and IPv6 literals, case-insensitive scheme")
        void tcp() throws CorfsException {
            NbdUri u = NbdUri.parse("nbd://example.com/disk");
            assertFalse(u.tls());
            assertFalse(u.unix());
            assertEquals("example.com", u.host());
            assertEquals(10809, u.port());
            assertEquals(10811, NbdUri.parse("nbd://127.0.0.1:10811/x").port());
            NbdUri v6 = NbdUri.parse("NBDS://[::1]:9000/x");
            assertTrue(v6.tls());
            assertEquals("::1", v6.host());
            assertEquals(9000, v6.port());
        }

        @Test
        @DisplayName("Unix sockets, TLS parameters")
        void unixAndTls() throws CorfsException {
            NbdUri u = NbdUri.parse("nbds+unix:///?socket=/tmp/a%20b.sock&tls-hostname=server.example&tls-type=x509&tls-verify-peer=1");
            assertTrue(u.unix());
            assertTrue(u.tls());
            assertEquals("/tmp/a b.sock", u.socket());
            assertEquals("", u.exportName());
            assertEquals("server.example", u.tlsHostname());
            assertEquals("server.example", u.certificateHostname());
            assertNull(u.host());
            assertEquals(-1, u.port());
        }

        @ParameterizedTest
        @ValueSource(strings = {"nbd://h/disk", "nbd://h:1/", "nbds://[fe80::1]:10810/a%20b", "nbd+unix:///e?socket=/s",
            "nbds+unix:///e%2Fx?socket=/r/s%20t&tls-hostname=h.example", "nbd://h//abs/path", "nbd://h/%3F%23%25"})
        @DisplayName("toString parses back to the same value")
        void roundTrip(String text) throws CorfsException {
            NbdUri u = NbdUri.parse(text);
            assertEquals(u, NbdUri.parse(u.toString()), u.toString());
        }

        @Test
        @DisplayName("looksLikeNbd tells NBD SPECs from paths and other schemes")
        void looksLike() {
            assertTrue(NbdUri.looksLikeNbd("NBD://h/x"));
            assertTrue(NbdUri.looksLikeNbd("nbds+unix:///x?socket=/s"));
            assertFalse(NbdUri.looksLikeNbd("/var/lib/disk.raw"));
            assertFalse(NbdUri.looksLikeNbd("https://h/x"));
        }
    }

    @ParameterizedTest(name = "{0} → {1}")
    @CsvSource(delimiter = '|', value = {
        "''|empty",
        "http://h/x|unknown scheme",
        "nbd:/h/x|not an NBD URI",
        "/path/disk|not an NBD URI",
        "nbd+tcp://h/x|unknown scheme",
        "nbd:///x|no host",
        "nbd://user@h/x|user names",
        "nbd://user:secret@h/x|user names",
        "nbd://h:0/x|bad port",
        "nbd://h:65536/x|bad port",
        "nbd://h:/x|bad port",
        "nbd://h:12a/x|bad port",
        "nbd://h:-1/x|bad port",
        "nbd://[::1/x|unterminated IPv6",
        "nbd://[fe80::1%25eth0]/x|bad IPv6",
        "nbd://[::1]x/y|unexpected",
        "nbd://h%41/x|bad host",
        "nbd://h/x#frag|fragment",
        "nbd://h/x%|truncated percent",
        "nbd://h/x%4|truncated percent",
        "nbd://h/x%zz|bad percent escape",
        "nbd://h/x%00y|NUL",
        "nbd://h/x%C3|invalid UTF-8",
        "nbd://h/x%FF|invalid UTF-8",
        "nbd://h/x?socket=/s|only for nbd+unix",
        "nbd://h/x?tls-hostname=h|TLS parameters need",
        "nbd://h/x?|empty query",
        "nbd://h/x?foo=1|unknown NBD URI parameter",
        "nbd://h/x?x-experiment=1|unknown NBD URI parameter",
        "nbds://h/x?tls-verify-peer=0|always verifies",
        "nbds://h/x?tls-type=psk|not supported",
        "nbds://h/x?tls-hostname=a/b|bad tls-hostname",
        "nbds://h/x?tls-hostname=a&tls-hostname=b|given twice",
        "nbd+unix:///x|needs ?socket",
        "nbd+unix://h/x?socket=/s|take no host",
        "nbd+unix:///x?socket=|empty socket",
        "nbd+unix:///x?socket=rel.sock|absolute path",
        "nbd+unix:///x?socket=%00abstract|abstract",
        "nbd+unix:///x?socket=/s&socket=/t|given twice",
        "nbd+unix:///x?socket|bad query parameter",
        "nbd+unix:///x?socket=/s&&a=b|bad query parameter",
    })
    @DisplayName("refused with a message naming the problem")
    void refused(String text, String expected) {
        CorfsException e = assertThrows(CorfsException.class, () -> NbdUri.parse(text));
        assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    @DisplayName("spaces, control and non-ASCII characters, overlong URIs, export names and socket paths")
    void hostileCharactersAndLengths() {
        for (String s : new String[] {"nbd://h/a b", "nbd://h/a\nb", "nbd://h/a\u0000", "nbd://h/é", "nbd://h/\u007f"}) {
            CorfsException e = assertThrows(CorfsException.class, () -> NbdUri.parse(s));
            assertTrue(e.getMessage().contains("percent-encode"), e.getMessage());
        }
        assertThrows(CorfsException.class, () -> NbdUri.parse("nbd://h/" + "a".repeat(NbdUri.MAX_URI_LENGTH)));
        CorfsException name = assertThrows(CorfsException.class, () -> NbdUri.parse("nbd://h/" + "a".repeat(4097)));
        assertTrue(name.getMessage().contains("export name longer"), name.getMessage());
        CorfsException sock = assertThrows(CorfsException.class,
                () -> NbdUri.parse("nbd+unix:///?socket=/" + "s".repeat(107)));
        assertTrue(sock.getMessage().contains("longer than 107"), sock.getMessage());
        CorfsException host = assertThrows(CorfsException.class, () -> NbdUri.parse("nbd://" + "h".repeat(254) + "/"));
        assertTrue(host.getMessage().contains("bad host"), host.getMessage());
    }
}
