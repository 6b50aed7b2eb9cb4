package corfs.backing.http;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Extra request headers from a file ({@code header-file=FILE}), one {@code Name: value} per line; blank
 * lines and lines starting with {@code #} are skipped. Meant for secrets (an {@code Authorization}
 * header), so the file is read once at open and its values are never logged, never put in an exception
 * message and never written anywhere by corfs: {@link Header#toString()} hides the value.
 *
 * <p>Hostile content is refused, naming the line but never echoing a value: a file larger than 64 KiB,
 * bytes outside printable ASCII and tab (so no CR or LF can split a header and inject another request
 * line), a name that is not an HTTP token, and the headers corfs itself controls or that change how a
 * response must be read: {@code Host}, {@code Range}, every {@code If-*}, the hop-by-hop and framing
 * headers, {@code Accept-Encoding} and the S3 signing headers.
 */
public final class HeaderFile {
    private static final Logger LOG = LoggerFactory.getLogger(HeaderFile.class);
    static final int MAX_BYTES = 64 * 1024;
    private static final Set<String> FORBIDDEN = Set.of("host", "range", "content-length", "transfer-encoding",
            "connection", "keep-alive", "upgrade", "te", "trailer", "expect", "accept-encoding", "content-encoding",
            "http2-settings", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token");

    private HeaderFile() {
    }

    /** One header; its value is a secret as far as corfs knows. */
    public record Header(String name, String value) {
        @Override
        public String toString() {
            return name + ": <hidden>";
        }
    }

    /** Reads and checks {@code file}; fails with INVALID_ARGUMENT naming the line. */
    public static List<Header> read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "header-file " + file + " is not a regular file");
        }
        try {
            Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
            if (perms.contains(PosixFilePermission.OTHERS_READ)) {
                LOG.warn("header-file {} is readable by every user; its headers may be secrets (chmod o-r)", file);
            }
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: nothing to say
        }
        if (Files.size(file) > MAX_BYTES) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "header-file " + file + " is larger than "
                    + MAX_BYTES + " bytes");
        }
        return parse(Files.readAllBytes(file), file.toString());
    }

    /** Parses header-file content; {@code where} names it in messages. */
    static List<Header> parse(byte[] content, String where) throws CorfsException {
        if (content.length > MAX_BYTES) {
            throw bad(where, 0, "is larger than " + MAX_BYTES + " bytes");
        }
        List<Header> headers = new ArrayList<>();
        int line = 0;
        int start = 0;
        while (start < content.length) {
            int end = start;
            while (end < content.length && content[end] != '\n') {
                end++;
            }
            line++;
            int stop = end;
            if (stop > start && content[stop - 1] == '\r') {
                stop--; // a CRLF file: the CR ends the line, it is not inside a value
            }
            for (int i = start; i < stop; i++) {
                int b = content[i] & 0xff;
                if (b != '\t' && (b < 0x20 || b > 0x7e)) {
                    throw bad(where, line, "has a control or non-ASCII byte (0x" + Integer.toHexString(b) + ")");
                }
            }
            String text = new String(content, start, stop - start, StandardCharsets.US_ASCII);
            start = end + 1;
            if (text.isBlank() || text.startsWith("#")) {
                continue;
            }
            int colon = text.indexOf(':');
            if (colon <= 0) {
                throw bad(where, line, "is not 'Name: value'");
            }
            String name = text.substring(0, colon);
            if (!isToken(name)) {
                throw bad(where, line, "has a header name that is not an HTTP token");
            }
            String lower = name.toLowerCase(Locale.ROOT);
            if (FORBIDDEN.contains(lower) || lower.startsWith("if-") || lower.startsWith("proxy-")) {
                throw bad(where, line, "sets " + name + ", which corfs controls");
            }
            String value = text.substring(colon + 1).strip();
            headers.add(new Header(name, value));
        }
        return List.copyOf(headers);
    }

    private static boolean isToken(String s) {
        if (s.isEmpty()) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    private static CorfsException bad(String where, int line, String what) {
        return new CorfsException(Reason.INVALID_ARGUMENT, "header-file " + where
                + (line > 0 ? " line " + line : "") + " " + what);
    }
}
