package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 11: {@code corfs status --format prometheus} parsed by a real Prometheus text parser (the
 * prometheus_client Python package's, Debian's python3-prometheus-client, installed by scripts/install-deps),
 * every value checked against the control file's status read right after (no job runs, so nothing moves).
 */
@DisplayName("status --format prometheus, read by prometheus_client's parser")
class PrometheusIT {
    private static final int MIB = 1 << 20;
    private static final Path PYTHON = Path.of("/usr/bin/python3");
    /** Prints "NAME image=IMAGE [state=STATE job=JOB] VALUE" per sample, after the parser accepted all of it. */
    private static final String PARSE = String.join("\n",
            "import sys",
            "from prometheus_client.parser import text_string_to_metric_families",
            "for fam in text_string_to_metric_families(sys.stdin.read()):",
            "    assert fam.type == 'gauge', fam",
            "    assert fam.documentation, fam",
            "    for s in fam.samples:",
            "        extra = ''.join(' %s=%s' % (k, s.labels[k]) for k in ('job', 'state') if k in s.labels)",
            "        print('%s image=%s mountpoint=%s%s %d' % (s.name, s.labels['image'], s.labels['mountpoint'], extra,"
                    + " int(s.value)))",
            "");

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("every sample parses and equals the status")
    void parsedValuesMatchStatus() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            assumeTrue(Files.isExecutable(PYTHON)
                    && fx.run(Duration.ofSeconds(30), PYTHON.toString(), "-c", "import prometheus_client").exit() == 0,
                    "Debian's python3-prometheus-client is not installed (scripts/install-deps installs it)");
            Path backing = fx.makeBacking("base.raw", 8L * MIB, 21);
            Path a = fx.createLeaf(backing, "a.raw");
            Path b = fx.createLeaf(backing, "my \"disk\".raw");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), a, b);
            CorfsFixture.pwrite(mnt.resolve("a.raw"), 0, new byte[3 * 65536]); // local and dirty bytes
            fx.dd(mnt.resolve("my \"disk\".raw"), MIB, new byte[4096], true);
            fx.control(mnt, "stream a.raw").assertOk();
            fx.awaitJobState(mnt, "a.raw", "completed", Duration.ofSeconds(120));

            Result prom = fx.corfs("status", "--format", "prometheus", mnt.toString()).assertOk();
            Path text = Files.writeString(fx.dir().resolve("metrics.prom"), prom.stdout());
            Result parsed = fx.run(Duration.ofSeconds(60), "sh", "-c", "'" + PYTHON + "' -c \"$0\" < '" + text + "'",
                    PARSE).assertOk();
            Map<String, Long> got = new HashMap<>();
            for (String line : parsed.stdout().lines().toList()) {
                int sp = line.lastIndexOf(' ');
                got.put(line.substring(0, sp), Long.parseLong(line.substring(sp + 1)));
            }
            Map<String, Map<String, String>> status = fx.status(mnt);
            assertEquals(2, status.size());
            for (Map.Entry<String, Map<String, String>> e : status.entrySet()) {
                Map<String, String> s = e.getValue();
                String image = s.get("image").replace("%20", " ");
                String key = " image=" + image + " mountpoint=" + mnt;
                Map<String, String> expect = Map.of("corfs_leaf_size_bytes", s.get("size"),
                        "corfs_leaf_cluster_size_bytes", s.get("cluster_size"),
                        "corfs_leaf_local_bytes", s.get("local_bytes"),
                        "corfs_leaf_dirty_bytes", s.get("dirty_bytes"),
                        "corfs_leaf_standalone", s.get("standalone").equals("yes") ? "1" : "0",
                        "corfs_job_id", s.get("job_id"),
                        "corfs_job_done_bytes", s.get("done_bytes"),
                        "corfs_job_total_bytes", s.get("total_bytes"),
                        "corfs_job_speed_limit_bytes_per_second", s.get("speed"));
                for (Map.Entry<String, String> x : expect.entrySet()) {
                    assertEquals(Long.valueOf(x.getValue()), got.get(x.getKey() + key), x.getKey() + key + " in\n"
                            + prom.stdout());
                }
                String job = s.get("job");
                assertEquals(1L, got.get("corfs_job_state" + key + " job=" + job + " state=" + s.get("state")),
                        parsed.stdout());
                assertEquals(1L, got.entrySet().stream().filter(g -> g.getKey().startsWith("corfs_job_state" + key))
                        .mapToLong(Map.Entry::getValue).sum(), "exactly one state is 1");
            }
            assertEquals(Long.valueOf(8L * MIB), got.get("corfs_leaf_local_bytes image=a.raw mountpoint=" + mnt));
            assertEquals(1L, got.get("corfs_leaf_standalone image=a.raw mountpoint=" + mnt));
            assertTrue(got.get("corfs_leaf_dirty_bytes image=my \"disk\".raw mountpoint=" + mnt) >= 4096);
            fx.umount(mnt);
        });
    }
}
