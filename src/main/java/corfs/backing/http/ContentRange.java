package corfs.backing.http;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A parsed {@code Content-Range} response header: {@code bytes FIRST-LAST/TOTAL} (a satisfied range) or
 * {@code bytes *}{@code /TOTAL} (an unsatisfiable one, {@code first = last = -1}). TOTAL {@code *}
 * (unknown) is {@code -1}. Anything else, including numbers that overflow a long or
 * {@code LAST < FIRST}, does not parse: a reader never guesses which bytes it got.
 */
public record ContentRange(long first, long last, long total) {
    private static final Pattern SATISFIED = Pattern.compile("bytes (\\d{1,18})-(\\d{1,18})/(\\d{1,18}|\\*)");
    private static final Pattern UNSATISFIED = Pattern.compile("bytes \\*/(\\d{1,18})");

    /** The parsed header, or null when it is missing or malformed. */
    public static ContentRange parse(String header) {
        if (header == null) {
            return null;
        }
        String h = header.trim();
        Matcher m = SATISFIED.matcher(h);
        if (m.matches()) {
            long first = Long.parseLong(m.group(1));
            long last = Long.parseLong(m.group(2));
            long total = m.group(3).equals("*") ? -1 : Long.parseLong(m.group(3));
            if (last < first || (total >= 0 && last >= total)) {
                return null;
            }
            return new ContentRange(first, last, total);
        }
        m = UNSATISFIED.matcher(h);
        if (m.matches()) {
            return new ContentRange(-1, -1, Long.parseLong(m.group(1)));
        }
        return null;
    }

    /** Number of bytes the range covers (0 for an unsatisfied range). */
    public long length() {
        return first < 0 ? 0 : last - first + 1;
    }
}
