package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * fio with {@code --verify=crc32c} on the exposed file while a stream runs and while a commit runs:
 * random read/write, block sizes 4k to 128k, several jobs each on its own region, once buffered and once
 * with {@code --direct=1}. fio must exit 0 with no verify error; then the same data must verify again
 * ({@code --verify_only}) where it should live afterwards: on the leaf alone with the backing deleted
 * (stream), in the backing itself (commit).
 */
@DisplayName("fio verify on the exposed file during jobs")
class FioVerifyIT {

    private static final long MIB = 1 << 20;
    private static final long SIZE = 64 * MIB;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(6);
    private static final Pattern ERROR_FIELD = Pattern.compile("\"error\"\\s*:\\s*(\\d+)");
    private static final Pattern IO_BYTES = Pattern.compile("\"io_bytes\"\\s*:\\s*(\\d+)");

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    private Path backing;
    private Path leaf;
    private Path mnt;
    private Path img;

    /** Buffered: 4 jobs over [0, 32 MiB); direct: 2 jobs over [32, 64 MiB). */
    private record FioRun(String name, int jobs, long offset, long perJob, boolean direct) { }

    private static final FioRun BUFFERED = new FioRun("buffered", 4, 0, 8 * MIB, false);
    private static final FioRun DIRECT = new FioRun("direct", 2, 32 * MIB, 16 * MIB, true);

    @BeforeEach
    void makeLeaf() throws Exception {
        assumeTrue(CorfsFixture.onPath("fio"), "fio is not installed (scripts/install-deps installs it)");
        backing = fx.makeBacking("base.raw", SIZE, 4242);
        leaf = fx.createLeaf(backing, "disk.raw");
        mnt = fx.newMountPoint("mnt");
        img = mnt.resolve("disk.raw");
    }

    @Test
    @DisplayName("while a stream runs; the data then verifies on the standalone leaf with the backing deleted")
    void fioVerifyDuringStream() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            fx.control(mnt, "stream speed=8M").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));
            fio(img, BUFFERED, false);
            fio(img, DIRECT, false);
            Map<String, String> s = fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(120));
            assertEquals("yes", s.get("standalone"), s.toString());
            fio(img, BUFFERED, true);
            fio(img, DIRECT, true);
            fx.umount(mnt);
            Files.delete(backing);
            fx.corfs("check", leaf.toString()).assertOk();
            fx.mount(mnt, leaf);
            fio(img, BUFFERED, true);
            fio(img, DIRECT, true);
        });
    }

    @Test
    @DisplayName("while a commit runs; the data then verifies in the backing itself")
    void fioVerifyDuringCommit() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            fx.mount(mnt, leaf);
            // dirty a lot first, so that the commit has work while fio runs
            fx.run(Duration.ofMinutes(2), "dd", "if=/dev/urandom", "of=" + img, "bs=1M", "count=48", "conv=notrunc",
                    "status=none").assertOk();
            fx.control(mnt, "commit speed=8M").assertOk();
            fx.awaitJobState(mnt, "disk.raw", "running", Duration.ofSeconds(10));
            fio(img, BUFFERED, false);
            fio(img, DIRECT, false);
            Map<String, String> s = fx.awaitJobState(mnt, "disk.raw", "completed", Duration.ofSeconds(120));
            if (!"0".equals(s.get("dirty_bytes"))) {
                // fio wrote behind the commit: commit again, with nothing writing now
                fx.control(mnt, "commit").assertOk();
                s = fx.awaitStatus(mnt, "disk.raw", Duration.ofSeconds(120), "committed",
                        st -> "completed".equals(st.get("state")) && "0".equals(st.get("dirty_bytes")));
            }
            fx.assertSameContent(img, backing);
            fio(img, BUFFERED, true);
            fx.umount(mnt);
            fio(backing, BUFFERED, true);
            fio(backing, DIRECT, true);
        });
    }

    private void fio(Path file, FioRun run, boolean verifyOnly) {
        List<String> cmd = new ArrayList<>(List.of("fio", "--name=" + run.name(), "--filename=" + file,
                "--rw=randrw", "--bsrange=4k-128k", "--numjobs=" + run.jobs(), "--size=" + run.perJob(),
                "--offset=" + run.offset(), "--offset_increment=" + run.perJob(), "--ioengine=psync",
                "--direct=" + (run.direct() ? 1 : 0), "--verify=crc32c", "--verify_fatal=1", "--randseed=1234",
                "--group_reporting", "--output-format=json"));
        if (verifyOnly) {
            cmd.add("--verify_only");
        }
        String what = "fio " + run.name() + (verifyOnly ? " --verify_only" : "") + " on " + file;
        Result r = fx.run(Duration.ofMinutes(3), cmd.toArray(String[]::new));
        assertEquals(0, r.exit(), what + ": " + r);
        String all = r.stdout() + "\n" + r.stderr();
        assertFalse(Pattern.compile("(?im)^.*verify.*(bad|fail|mismatch).*$").matcher(all).find(),
                what + " reported verify errors: " + r);
        Matcher m = ERROR_FIELD.matcher(r.stdout());
        int errorFields = 0;
        while (m.find()) {
            errorFields++;
            assertEquals("0", m.group(1), what + ": a job ended with error " + m.group(1) + ": " + r);
        }
        assertTrue(errorFields > 0, what + ": no job result in fio's JSON output: " + r);
        long io = 0;
        m = IO_BYTES.matcher(r.stdout());
        while (m.find()) {
            io += Long.parseLong(m.group(1));
        }
        assertTrue(io >= run.jobs() * run.perJob(), what + ": only " + io + " bytes of I/O: " + r);
        System.out.println("[FioVerifyIT] " + what + ": ok, " + io + " bytes of I/O");
    }
}
