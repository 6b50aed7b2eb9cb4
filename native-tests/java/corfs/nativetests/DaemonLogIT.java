package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 11: the daemon's log. Each line names its mount and leaf; under systemd (stderr is the stream
 * JOURNAL_STREAM names) the daemon logs to that stream without timestamps of its own and opens no LEAF.log;
 * {@code -o log=FILE} (the mount helper's) never appends to a file planted by someone else.
 */
@DisplayName("the daemon's log: mount and leaf on each line, the journal, planted log files")
class DaemonLogIT {
    private static final int MIB = 1 << 20;
    private static final Pattern TIMESTAMP = Pattern.compile("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d");
    private static final String PRECIOUS = "precious, not to be appended to\n";

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    /** The lines corfs logged (libfuse's own "fuse:" lines and blank lines aside). */
    private static List<String> corfsLines(String log) {
        return log.lines().filter(l -> !l.isBlank() && !l.startsWith("fuse:") && !l.startsWith("fusermount")).toList();
    }

    @Test
    @DisplayName("every line names the mount and the leaf; a line about one of two leaves names that one")
    void mountAndLeafOnEachLine() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            Path a = fx.createLeaf(fx.makeBacking("base-a.raw", 4L * MIB, 1), "a.raw");
            Path b = fx.createLeaf(fx.makeBacking("base-b.raw", 4L * MIB, 2), "b.raw");
            Path log = fx.dir().resolve("daemon.log");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), List.of("--log", log.toString()), a);
            fx.control(mnt, "stream").assertOk();
            fx.awaitJobState(mnt, "a.raw", "completed", Duration.ofSeconds(120));
            fx.umount(mnt);
            List<String> lines = corfsLines(Files.readString(log));
            assertTrue(lines.size() >= 2, "ready and closed at least: " + lines);
            for (String l : lines) {
                assertTrue(l.startsWith("mount=" + mnt + " leaf=a.raw "), l);
            }

            // a.raw is standalone now: without its backing, its mount logs a line about it alone
            Files.delete(fx.dir().resolve("base-a.raw"));
            Path log2 = fx.dir().resolve("daemon2.log");
            Path mnt2 = fx.mount(fx.newMountPoint("mnt2"), List.of("--log", log2.toString()), a, b);
            fx.umount(mnt2);
            List<String> lines2 = corfsLines(Files.readString(log2));
            for (String l : lines2) {
                assertTrue(l.startsWith("mount=" + mnt2 + " leaf="), l);
            }
            assertTrue(lines2.stream().anyMatch(l -> l.startsWith("mount=" + mnt2 + " leaf=a.raw ")
                    && l.contains("standalone")), "the line about a.raw names it: " + lines2);
            assertTrue(lines2.stream().anyMatch(l -> l.startsWith("mount=" + mnt2 + " leaf=- ")),
                    "a line about the whole mount names no leaf: " + lines2);
        });
    }

    @Test
    @DisplayName("under systemd (stderr is JOURNAL_STREAM's stream) the daemon logs there without timestamps,"
            + " and opens no LEAF.log")
    void journal() {
        assertTimeoutPreemptively(Duration.ofMinutes(2), () -> {
            Path leaf = fx.createLeaf(fx.makeBacking("base.raw", 4L * MIB, 3), "a.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path journal = fx.dir().resolve("journal-stream");
            Files.writeString(journal, "");
            // The mount command's stderr is the "journal": JOURNAL_STREAM names its device and inode.
            Result r = fx.run(Duration.ofSeconds(60), "sh", "-c", "exec 2>>\"$1\"; JOURNAL_STREAM=$(stat -L -c %d:%i"
                    + " /proc/self/fd/2) exec \"$2\" mount \"$3\" \"$4\"", "sh", journal.toString(),
                    fx.launcher().toString(), leaf.toString(), mnt.toString()).assertOk();
            assertTrue(CorfsFixture.isMounted(mnt), r.toString());
            fx.umount(mnt);
            assertFalse(Files.exists(leaf.resolveSibling("a.raw.log")), "LEAF.log opened under the journal");
            List<String> lines = corfsLines(Files.readString(journal));
            assertTrue(lines.stream().anyMatch(l -> l.contains("ready")), "the daemon logged to the journal: " + lines);
            for (String l : lines) {
                assertTrue(l.startsWith("mount=" + mnt + " leaf=a.raw "), l);
                assertFalse(TIMESTAMP.matcher(l).find(), "the journal stamps lines itself: " + l);
            }

            // The same variable with stderr elsewhere (inherited, not the stream): LEAF.log, with timestamps.
            Result r2 = fx.corfsWithEnv(java.util.Map.of("JOURNAL_STREAM", "1:1"), "mount", leaf.toString(),
                    mnt.toString()).assertOk();
            fx.umount(mnt);
            String own = Files.readString(leaf.resolveSibling("a.raw.log"));
            assertTrue(corfsLines(own).stream().allMatch(l -> TIMESTAMP.matcher(l).find()), own + r2);
        });
    }

    @Test
    @DisplayName("-o log=FILE through the mount helper: a FIFO, a hard-linked file and (as root) another user's"
            + " file are refused and never appended to")
    void plantedLogFiles() {
        assertTimeoutPreemptively(Duration.ofMinutes(2), () -> {
            Path leaf = fx.createLeaf(fx.makeBacking("base.raw", 4L * MIB, 4), "a.raw");
            Path mnt = fx.newMountPoint("mnt");
            Path tmp = Files.createDirectories(fx.dir().resolve("tmp"));
            fx.run(Duration.ofSeconds(10), "chmod", "1777", tmp.toString()).assertOk();

            Path fifo = tmp.resolve("fifo.log");
            fx.run(Duration.ofSeconds(10), "mkfifo", fifo.toString()).assertOk();
            assertRefused(fx.corfs("mount-helper", leaf.toString(), mnt.toString(), "-o", "log=" + fifo), mnt);

            Path precious = Files.writeString(fx.dir().resolve("precious"), PRECIOUS);
            Path hardLink = Files.createLink(tmp.resolve("linked.log"), precious);
            assertRefused(fx.corfs("mount-helper", leaf.toString(), mnt.toString(), "-o", "log=" + hardLink), mnt);
            assertEquals(PRECIOUS, Files.readString(precious));

            String uid = fx.run(Duration.ofSeconds(10), "id", "-u").assertOk().stdout().trim();
            assumeTrue(uid.equals("0"), "a file of another user needs root to make (chown)");
            Path planted = Files.writeString(tmp.resolve("planted.log"), PRECIOUS);
            fx.run(Duration.ofSeconds(10), "chown", "65534", planted.toString()).assertOk();
            Result r = fx.corfs("mount-helper", leaf.toString(), mnt.toString(), "-o", "log=" + planted);
            assertRefused(r, mnt);
            assertTrue(r.stderr().contains("owned by uid 65534"), r.toString());
            assertEquals(PRECIOUS, Files.readString(planted), "another user's file was appended to");
        });
    }

    private static void assertRefused(Result r, Path mnt) {
        assertNotEquals(0, r.exit(), "mounted: " + r);
        assertTrue(r.stderr().contains("log file"), "no clear message: " + r);
        assertFalse(CorfsFixture.isMounted(mnt), r.toString());
    }
}
