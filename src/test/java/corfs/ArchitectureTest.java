package corfs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * Keeps the package arrows one way (docs/DESIGN.md): reads every main source file, collects which corfs
 * package each one uses (imports and fully qualified names), and fails on any cycle between packages and
 * on the few arrows that must never exist. A package is the first segment below {@code corfs}
 * ({@code corfs.backing.nbd} counts as {@code backing}); the root package ({@link CorfsException}) is the
 * bottom.
 */
@DisplayName("package dependencies")
class ArchitectureTest {
    private static final Path MAIN = Path.of("src/main/java/corfs");
    private static final Pattern PACKAGE = Pattern.compile("^package corfs(?:\\.(\\w+))?[\\w.]*;", Pattern.MULTILINE);
    private static final Pattern USE = Pattern.compile("\\bcorfs\\.([a-z]\\w*)\\.");
    private static final Pattern NATIVE = Pattern.compile("^import (?:static )?(jnr\\.|ru\\.serce\\.|com\\.kenai\\.)",
            Pattern.MULTILINE);

    /** package → packages it uses (without itself); "" is the root package. */
    private static final Map<String, Set<String>> USES = new TreeMap<>();
    /** packages that import jnr-ffi or jnr-fuse. */
    private static final Set<String> NATIVE_USERS = new TreeSet<>();

    @BeforeAll
    static void scan() throws IOException {
        try (Stream<Path> files = Files.walk(MAIN)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".java"))::iterator) {
                String text = stripComments(Files.readString(f));
                Matcher pm = PACKAGE.matcher(text);
                assertTrue(pm.find(), f + " has no corfs package line");
                String own = pm.group(1) == null ? "" : pm.group(1);
                Set<String> uses = USES.computeIfAbsent(own, k -> new TreeSet<>());
                Matcher um = USE.matcher(text.substring(pm.end()));
                while (um.find()) {
                    String used = um.group(1);
                    if (!used.equals(own) && Files.isDirectory(MAIN.resolve(used))) {
                        uses.add(used);
                    }
                }
                if (NATIVE.matcher(text).find()) {
                    NATIVE_USERS.add(own);
                }
            }
        }
        assertTrue(USES.size() >= 8, "scanned too few packages: " + USES.keySet());
    }

    /**
     * The text without comments and without the contents of string and character literals (a URL in a
     * string is not a comment, a {@code corfs.x.} in a comment is not a use). A scanner, not regular
     * expressions: those overflow the stack on long literals.
     */
    static String stripComments(String s) {
        StringBuilder out = new StringBuilder(s.length());
        int i = 0;
        int n = s.length();
        while (i < n) {
            char c = s.charAt(i);
            char next = i + 1 < n ? s.charAt(i + 1) : 0;
            if (c == '/' && next == '/') {
                while (i < n && s.charAt(i) != '\n') {
                    i++;
                }
            } else if (c == '/' && next == '*') {
                int end = s.indexOf("*/", i + 2);
                i = end < 0 ? n : end + 2;
                out.append(' ');
            } else if (s.startsWith("\"\"\"", i)) {
                int end = s.indexOf("\"\"\"", i + 3);
                i = end < 0 ? n : end + 3;
                out.append("\"\"");
            } else if (c == '"' || c == '\'') {
                i++;
                while (i < n && s.charAt(i) != c && s.charAt(i) != '\n') {
                    i += s.charAt(i) == '\\' ? 2 : 1;
                }
                i++;
                out.append(c).append(c);
            } else {
                out.append(c);
                i++;
            }
        }
        return out.toString();
    }

    @Test
    @DisplayName("the scanner drops comments and literals, however long")
    void scannerDropsCommentsAndLiterals() {
        String text = "a /* corfs.x. */ b // corfs.y.\nc \"//corfs.z.\\\"\" + '\\'' + \"" + "u".repeat(100_000)
                + "\" corfs.w.";
        assertEquals("a   b \nc \"\" + '' + \"\" corfs.w.", stripComments(text));
    }

    @Test
    @DisplayName("no cycle between corfs packages")
    void noCycles() {
        List<List<String>> cycles = new ArrayList<>();
        for (String start : USES.keySet()) {
            List<String> path = findPath(start, start);
            if (path != null) {
                cycles.add(path);
            }
        }
        assertEquals(List.of(), cycles, "package cycles (each a path back to its start); uses: " + USES);
    }

    /** A path from {@code from} back to {@code target} through the uses graph, or null. */
    private static List<String> findPath(String from, String target) {
        Deque<List<String>> queue = new ArrayDeque<>();
        Set<String> seen = new TreeSet<>();
        queue.add(List.of(from));
        while (!queue.isEmpty()) {
            List<String> path = queue.poll();
            for (String next : USES.getOrDefault(path.get(path.size() - 1), Set.of())) {
                List<String> longer = new ArrayList<>(path);
                longer.add(next);
                if (next.equals(target)) {
                    return longer;
                }
                if (seen.add(next)) {
                    queue.add(longer);
                }
            }
        }
        return null;
    }

    @Test
    @DisplayName("only fuse and os touch native code")
    void nativeOnlyAtTheEdge() {
        Set<String> outside = new TreeSet<>(NATIVE_USERS);
        outside.removeAll(Set.of("fuse", "os"));
        assertEquals(Set.of(), outside, "packages importing jnr-ffi or jnr-fuse");
    }

    @Test
    @DisplayName("the engine side never reaches up")
    void engineNeverReachesUp() {
        Set<String> upper = Set.of("cli", "fuse", "control", "jobs");
        for (String low : List.of("", "vocabulary", "io", "backing", "image", "engine")) {
            Set<String> bad = new TreeSet<>(USES.getOrDefault(low, Set.of()));
            bad.retainAll(upper);
            assertEquals(Set.of(), bad, "corfs." + low + " uses");
        }
        assertTrue(!USES.getOrDefault("jobs", Set.of()).contains("control"), "jobs must not use control");
        assertTrue(!USES.getOrDefault("control", Set.of()).contains("jobs"), "control must not use jobs");
        for (String p : USES.keySet()) {
            if (!p.equals("cli")) {
                assertTrue(!USES.get(p).contains("cli"), "corfs." + p + " uses cli");
            }
        }
    }
}
