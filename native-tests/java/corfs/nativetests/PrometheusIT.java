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
            "counters = ('corfs_leaf_fetched_bytes', 'corfs_backing_errors')",
            "for fam in text_string_to_metric_families(sys.stdin.read()):",
            "    want = 'histogram' if fam.name == 'corfs_backing_call_duration_seconds' else"
                    + " 'counter' if fam.name in counters else 'gauge'",
            "    assert fam.type == want, fam",
            "    assert fam.documentation, fam",
            "    for s in fam.samples:",
            "        extra = ''.join(' %s=%s' % (k, s.labels[k]) for k in ('job', 'state', 'purpose', 'kind', 'le')"
                    + " if k in s.labels)",
            "        v = round(s.value * 1e9) if s.name.endswith('_sum') else int(s.value)",
            "        print('%s image=%s mountpoint=%s%s %d' % (s.name, s.labels['image'], s.labels['mountpoint'], extra,"
                    + " v))",
            "");

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    @Test
    @DisplayName("every sample parses and equals the status")
    void parsedValuesMatchStatus() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            assumeParser();
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
            Map<String, Long> got = parse(prom.stdout());
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

    /** The samples of {@code prom} as prometheus_client parsed them: "NAME image=.. mountpoint=..[ k=v] → value". */
    private Map<String, Long> parse(String prom) throws java.io.IOException {
        Path text = Files.writeString(fx.dir().resolve("metrics.prom"), prom);
        Result parsed = fx.run(Duration.ofSeconds(60), "sh", "-c", "'" + PYTHON + "' -c \"$0\" < '" + text + "'",
                PARSE).assertOk();
        Map<String, Long> got = new HashMap<>();
        for (String line : parsed.stdout().lines().toList()) {
            int sp = line.lastIndexOf(' ');
            got.put(line.substring(0, sp), Long.parseLong(line.substring(sp + 1)));
        }
        return got;
    }

    private void assumeParser() {
        assumeTrue(Files.isExecutable(PYTHON)
                && fx.run(Duration.ofSeconds(30), PYTHON.toString(), "-c", "import prometheus_client").exit() == 0,
                "Debian's python3-prometheus-client is not installed (scripts/install-deps installs it)");
    }

    @Test
    @DisplayName("the daemon's counters: copy-on-read bytes equal what dd read of a cold leaf, rounded to clusters;"
            + " every fetched byte is local; the latency histogram counts every backing call")
    void countersMatchWorkload() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            assumeParser();
            Path backing = fx.dir().resolve("random.raw"); // all data: every cluster fetched is read, none a hole
            byte[] content = new byte[16 * MIB];
            new java.util.Random(5).nextBytes(content);
            Files.write(backing, content);
            Path leaf = fx.createLeaf(backing, "a.raw", "--cluster-size", "64K");
            Path mnt = fx.mount(fx.newMountPoint("mnt"), leaf);
            Path file = mnt.resolve("a.raw");
            // Isolated 4 KiB direct reads, each inside one cold cluster and far from the last: copy-on-read of
            // exactly one cluster each, nothing sequential to read ahead of.
            int reads = 6;
            for (int i = 0; i < reads; i++) {
                long at = i * 2L * MIB + 8192;
                fx.run(Duration.ofSeconds(30), "dd", "if=" + file, "of=/dev/null", "bs=4096", "count=1",
                        "skip=" + at, "iflag=direct,skip_bytes", "status=none").assertOk();
            }
            Map<String, String> s = fx.status(mnt, "a.raw");
            assertEquals("copy_on_read:" + reads * 65536L + ",read_ahead:0,stream:0,prefetch:0", s.get("fetched"),
                    s.toString());
            assertEquals(String.valueOf(reads * 65536L), s.get("local_bytes"));
            assertEquals("timeout:0,io:0", s.get("backing_errors"));

            // Then a sequential cold read (read-ahead joins in) and a stream of the rest.
            fx.run(Duration.ofSeconds(60), "dd", "if=" + file, "of=/dev/null", "bs=1M", "count=4",
                    "skip=" + 11 * MIB, "iflag=skip_bytes", "status=none").assertOk();
            fx.control(mnt, "stream").assertOk();
            fx.awaitJobState(mnt, "a.raw", "completed", Duration.ofSeconds(120));

            s = fx.status(mnt, "a.raw");
            Map<String, Long> got = parse(fx.corfs("status", "--format", "prometheus", mnt.toString())
                    .assertOk().stdout());
            String key = " image=a.raw mountpoint=" + mnt;
            long cor = got.get("corfs_leaf_fetched_bytes_total" + key + " purpose=copy_on_read");
            long ra = got.get("corfs_leaf_fetched_bytes_total" + key + " purpose=read_ahead");
            long stream = got.get("corfs_leaf_fetched_bytes_total" + key + " purpose=stream");
            assertTrue(cor >= reads * 65536L, "copy-on-read only grows: " + cor);
            assertEquals(16L * MIB, cor + ra + stream, "every byte of an all-data backing fetched exactly once");
            assertTrue(stream > 0 && stream <= 16L * MIB - reads * 65536L - 4L * MIB, "stream: " + stream);
            assertEquals(0L, got.get("corfs_leaf_fetched_bytes_total" + key + " purpose=prefetch"));
            assertEquals(0L, got.get("corfs_backing_errors_total" + key + " kind=timeout"));
            assertEquals(0L, got.get("corfs_backing_errors_total" + key + " kind=io"));
            long count = got.get("corfs_backing_call_duration_seconds_count" + key);
            assertEquals(count, got.get("corfs_backing_call_duration_seconds_bucket" + key + " le=+Inf"));
            assertTrue(count >= 16 * MIB / (1 << 20), "at least one call per MiB read: " + count);
            assertEquals(Long.parseLong(s.get("backing_calls")), count, "the status and the exposition agree");
            long sumNs = got.get("corfs_backing_call_duration_seconds_sum" + key);
            assertEquals(Long.parseLong(s.get("backing_ns")), sumNs);
            assertTrue(sumNs > 0);
            long previous = 0;
            for (double le : corfs.vocabulary.LeafCounters.LATENCY_BOUNDS_SECONDS) {
                String bound = new java.math.BigDecimal(Double.toString(le)).stripTrailingZeros().toPlainString();
                Long bucket = got.entrySet().stream()
                        .filter(g -> g.getKey().startsWith("corfs_backing_call_duration_seconds_bucket" + key + " le="))
                        .filter(g -> !g.getKey().endsWith("le=+Inf"))
                        .filter(g -> Double.parseDouble(g.getKey().substring(g.getKey().lastIndexOf("le=") + 3)) == le)
                        .map(Map.Entry::getValue).findFirst().orElse(null);
                assertTrue(bucket != null && bucket >= previous, "bucket le=" + bound + " cumulative: " + got);
                previous = bucket;
            }
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("-o metrics_file: written at mount, rewritten every 10 s and at unmount, atomically, never through"
            + " a planted link; a missing directory is refused")
    void metricsFile() {
        assertTimeoutPreemptively(Duration.ofMinutes(3), () -> {
            assumeParser();
            Path backing = fx.dir().resolve("random.raw");
            byte[] content = new byte[8 * MIB];
            new java.util.Random(6).nextBytes(content);
            Files.write(backing, content);
            Path leaf = fx.createLeaf(backing, "a.raw", "--cluster-size", "64K");

            Path missing = fx.dir().resolve("no-such-dir").resolve("corfs.prom");
            Result refused = fx.tryMount(fx.newMountPoint("refused"), List.of("-o", "metrics_file=" + missing), leaf);
            assertTrue(refused.exit() != 0 && refused.stderr().contains(missing.getParent().toString()), refused.toString());
            assertTrue(!CorfsFixture.isMounted(fx.dir().resolve("refused")));

            Path dir = Files.createDirectories(fx.dir().resolve("textfile"));
            Path prom = dir.resolve("corfs.prom");
            Path victim = Files.writeString(fx.dir().resolve("victim"), "not yours\n");
            Files.createSymbolicLink(prom, victim);
            Path mnt = fx.mount(fx.newMountPoint("mnt"), List.of("-o", "metrics_file=" + prom), leaf);
            String key = " image=a.raw mountpoint=" + mnt;

            assertTrue(Files.isRegularFile(prom, java.nio.file.LinkOption.NOFOLLOW_LINKS), "the link was replaced");
            assertEquals("not yours\n", Files.readString(victim), "never written through the link");
            assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(prom)));
            Map<String, Long> first = parse(Files.readString(prom));
            assertEquals(8L * MIB, first.get("corfs_leaf_size_bytes" + key), first.toString());
            assertEquals(0L, first.get("corfs_leaf_fetched_bytes_total" + key + " purpose=copy_on_read"));

            // A cold read; the daemon's next rewrite (every 10 s) shows it.
            fx.run(Duration.ofSeconds(30), "dd", "if=" + mnt.resolve("a.raw"), "of=/dev/null", "bs=4096", "count=1",
                    "skip=" + 3 * MIB, "iflag=direct,skip_bytes", "status=none").assertOk();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            Map<String, Long> now = first;
            while (now.get("corfs_leaf_fetched_bytes_total" + key + " purpose=copy_on_read") == 0) {
                assertTrue(System.nanoTime() < deadline, "not rewritten within 60 s: " + now);
                CorfsFixture.sleep(500);
                now = parse(Files.readString(prom));
            }
            assertEquals(65536L, now.get("corfs_leaf_fetched_bytes_total" + key + " purpose=copy_on_read"));

            // A second cold read, then unmount at once: the last content is the final state.
            fx.run(Duration.ofSeconds(30), "dd", "if=" + mnt.resolve("a.raw"), "of=/dev/null", "bs=4096", "count=1",
                    "skip=" + 6 * MIB, "iflag=direct,skip_bytes", "status=none").assertOk();
            Map<String, String> status = fx.status(mnt, "a.raw");
            fx.umount(mnt);
            Map<String, Long> last = parse(Files.readString(prom));
            assertEquals(131072L, last.get("corfs_leaf_fetched_bytes_total" + key + " purpose=copy_on_read"));
            assertEquals(Long.valueOf(status.get("local_bytes")), last.get("corfs_leaf_local_bytes" + key));
            assertEquals(Long.valueOf(status.get("backing_calls")),
                    last.get("corfs_backing_call_duration_seconds_count" + key));
            try (var files = Files.list(dir)) {
                assertEquals(List.of(prom), files.toList(), "no temporary file is left");
            }
        });
    }
}
