package corfs.fuse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Reads the kernel's mount table ({@code /proc/self/mountinfo}). */
public final class MountTable {
    private static final Path MOUNTINFO = Path.of("/proc/self/mountinfo");

    private MountTable() {
    }

    /** The filesystem type mounted at {@code mountPoint} (the last mount there), or null if none. */
    public static String typeAt(Path mountPoint) throws IOException {
        String want = mountPoint.toAbsolutePath().normalize().toString();
        String type = null;
        List<String> lines = Files.readAllLines(MOUNTINFO);
        for (String line : lines) {
            String[] f = line.split(" ");
            if (f.length < 5 || !unescape(f[4]).equals(want)) {
                continue;
            }
            for (int i = 5; i + 1 < f.length; i++) {
                if (f[i].equals("-")) {
                    type = f[i + 1];
                    break;
                }
            }
        }
        return type;
    }

    /** True when a corfs filesystem is mounted at {@code mountPoint}. */
    public static boolean isCorfsMounted(Path mountPoint) throws IOException {
        return "fuse.corfs".equals(typeAt(mountPoint));
    }

    /** mountinfo escapes space, tab, newline and backslash as octal {@code \ooo}. */
    static String unescape(String s) {
        if (s.indexOf('\\') < 0) {
            return s;
        }
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()) {
                try {
                    b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                    i += 3;
                    continue;
                } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
                    // not an escape: keep the backslash
                }
            }
            b.append(c);
        }
        return b.toString();
    }
}
