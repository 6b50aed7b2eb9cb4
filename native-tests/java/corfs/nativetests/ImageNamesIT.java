package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 7, defect 8: leaves whose names need encoding can be driven when several are mounted, both through
 * the control file (with the name exactly as the status shows it) and through the CLI (with the file name
 * as it is).
 */
@DisplayName("leaf names with space, %, = and newline")
class ImageNamesIT {
    private static final int MIB = 1 << 20;

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("the status's image token works in the control file; the plain name works in the CLI")
    void awkwardNames() {
        assertTimeoutPreemptively(Duration.ofMinutes(4), () -> {
            Path backing = fx.makeBacking("base.raw", 2L * MIB, 8);
            String[] names = {"my disk.raw", "50%.raw", "a=b.raw", "new\nline.raw", "speed=1M"};
            List<Path> leaves = new ArrayList<>();
            for (String n : names) {
                leaves.add(fx.createLeaf(backing, n));
            }
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaves.toArray(Path[]::new));

            // status token of each name
            Map<String, String> token = new LinkedHashMap<>();
            Map<String, Map<String, String>> status = fx.status(mnt);
            assertEquals(names.length, status.size(), "status: " + status);
            for (String n : names) {
                String t = status.keySet().stream().filter(k -> decode(k).equals(n)).findFirst()
                        .orElseThrow(() -> new AssertionError("no status line for " + n + ": " + status.keySet()));
                assertFalse(t.contains(" ") || t.contains("\n"), "status token not one word: " + t);
                token.put(n, t);
            }

            // Control file, with the token the status shows.
            for (String n : names) {
                String t = token.get(n);
                fx.control(mnt, "stream " + t + " speed=64K").assertOk();
                fx.awaitJobState(mnt, t, "running", Duration.ofSeconds(20));
                fx.control(mnt, "speed " + t + " 128K").assertOk();
                assertEquals("131072", fx.status(mnt, t).get("speed"));
                fx.control(mnt, "pause " + t).assertOk();
                fx.awaitJobState(mnt, t, "paused", Duration.ofSeconds(20));
                fx.control(mnt, "cancel " + t).assertOk();
                fx.awaitJobState(mnt, t, "cancelled", Duration.ofSeconds(20));
            }
            // The raw name a=b.raw is not an option: IMAGE is the first token when not speed=/on_error=.
            fx.control(mnt, "stream a=b.raw speed=64K").assertOk();
            fx.awaitJobState(mnt, token.get("a=b.raw"), "running", Duration.ofSeconds(20));
            fx.control(mnt, "cancel a=b.raw").assertOk();
            fx.awaitJobState(mnt, token.get("a=b.raw"), "cancelled", Duration.ofSeconds(20));

            // CLI, with the plain file name.
            for (String n : names) {
                String t = token.get(n);
                fx.corfs("stream", mnt.toString(), n, "--speed", "64K").assertOk();
                fx.awaitJobState(mnt, t, "running", Duration.ofSeconds(20));
                fx.corfs("pause", mnt.toString(), n).assertOk();
                fx.awaitJobState(mnt, t, "paused", Duration.ofSeconds(20));
                fx.corfs("speed", mnt.toString(), n, "0").assertOk();
                assertEquals("0", fx.status(mnt, t).get("speed"));
                fx.corfs("resume", mnt.toString(), n).assertOk();
                Result r = fx.corfs("stream", mnt.toString(), n, "--wait");
                // the job runs already (EBUSY) or has completed: wait for it through the status instead
                if (r.exit() != 0) {
                    assertTrue(r.stderr().contains("busy") || r.stderr().contains("already"), r.toString());
                }
                fx.awaitJobState(mnt, t, "completed", Duration.ofSeconds(60));
            }
            // CLI with the name as the readable status shows it (control characters escaped).
            Result st = fx.corfs("status", mnt.toString()).assertOk();
            assertFalse(st.stdout().contains("new\nline"), "raw newline in status output:\n" + st.stdout());
            assertTrue(st.stdout().contains("new%0Aline.raw"), st.stdout());
            Result nf = fx.corfs("cancel", mnt.toString(), "nosuch.raw");
            assertEquals(1, nf.exit(), nf.toString());
            assertTrue(nf.stderr().contains("no image nosuch.raw"), nf.toString());
            Result c = fx.corfs("cancel", mnt.toString(), "new%0Aline.raw"); // found; no job to cancel
            assertTrue(c.exit() == 1 && c.stderr().contains("no job"), c.toString());
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("a newline and an escape in the mount point and the leaf's path: every message names them escaped,"
            + " on one line")
    void controlCharactersInPathsAreEscaped() {
        assertTimeoutPreemptively(Duration.ofMinutes(4), () -> {
            Path backing = fx.makeBacking("base.raw", 2L * MIB, 9);
            Path dir = java.nio.file.Files.createDirectories(fx.dir().resolve("d\nir\u001b[31m"));
            Path leaf = dir.resolve("leaf.raw");
            Result create = fx.corfs("create", "--backing", backing.toString(), leaf.toString()).assertOk();
            assertOneCleanLine(create.stdout(), "create");
            Path mnt = fx.newMountPoint("mnt\nsecond line\u001b[2J");
            Result mount = fx.tryMount(mnt, List.of(), leaf).assertOk();
            assertOneCleanLine(mount.stdout(), "mount");
            assertTrue(mount.stdout().startsWith("mounted at ") && mount.stdout().contains("mnt\\nsecond line"),
                    "the whole mount point, escaped: " + mount.stdout());
            Result again = fx.corfs("mount", leaf.toString(), mnt.toString());
            assertEquals(1, again.exit(), again.toString());
            assertOneCleanLine(again.stderr(), "a second mount");
            Result status = fx.corfs("status", mnt.toString()).assertOk();
            assertFalse(status.stdout().chars().anyMatch(c -> c != '\n' && Character.isISOControl(c)),
                    "status: " + status.stdout());
            Result notMounted = fx.corfs("status", dir.toString());
            assertOneCleanLine(notMounted.stderr(), "status of a directory that is no mount");
            fx.umount(mnt);
            Result check = fx.corfs("check", leaf.toString()).assertOk();
            assertOneCleanLine(check.stdout(), "check");
            // the daemon's log names the mount point too: every line keeps its tag
            Path log = dir.resolve("leaf.raw.log");
            assertTrue(mount.stdout().contains("log " + dir.toString().replace("\n", "\\n").replace("\u001b",
                    "\\x1b")), "the mount names its log: " + mount.stdout());
            List<String> lines = java.nio.file.Files.readAllLines(log);
            assertTrue(lines.stream().anyMatch(l -> l.contains("mounted at")), "no 'mounted at' in the log: " + lines);
            for (String l : lines) {
                // (the refused second mount's daemon wrote its one error line before it tagged its lines)
                assertTrue(l.startsWith("mount=") || l.startsWith("corfs: "), "a cut line: " + l + "\nin " + lines);
                assertFalse(l.chars().anyMatch(c -> c != '\t' && Character.isISOControl(c)), "raw control in: " + l);
            }
        });
    }

    /** {@code text} is one line (ending in a newline) with no other control character. */
    private static void assertOneCleanLine(String text, String what) {
        assertTrue(text.endsWith("\n") && text.indexOf('\n') == text.length() - 1, what + ": not one line: " + text);
        assertFalse(text.chars().anyMatch(c -> c != '\n' && Character.isISOControl(c)),
                what + ": a raw control character: " + text);
        assertTrue(text.contains("\\n"), what + ": the newline is not shown escaped: " + text);
    }

    private static String decode(String token) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        byte[] b = token.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int i = 0; i < b.length; i++) {
            if (b[i] == '%' && i + 2 < b.length) {
                out.write(Integer.parseInt(new String(b, i + 1, 2, java.nio.charset.StandardCharsets.US_ASCII), 16));
                i += 2;
            } else {
                out.write(b[i]);
            }
        }
        return out.toString(java.nio.charset.StandardCharsets.UTF_8);
    }
}
