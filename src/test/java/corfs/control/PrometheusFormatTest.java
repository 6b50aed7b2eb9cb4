package corfs.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafCounters;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("status as Prometheus text exposition")
class PrometheusFormatTest {
    private static LeafStatus leaf(String image, JobState state, long eta, String error) {
        return new LeafStatus(image, 1L << 30, 65536, 3L << 20, 1L << 20, false, JobKind.STREAM, state, 7,
                3L << 20, 1L << 30, 0, 5000, eta, OnError.SKIP, error, null, List.of(new long[] {0, 65536},
                new long[] {131072, 65536}), "/srv/images/base.raw");
    }

    @Test
    @DisplayName("one HELP and TYPE per family, one sample per leaf, the state as a state set")
    void families() {
        String text = PrometheusFormat.render("/mnt/v", List.of(leaf("a.raw", JobState.RUNNING, 12, null),
                leaf("b.raw", JobState.FAILED, -1, "EIO at 0")));
        List<String> lines = text.lines().toList();
        assertEquals(lines.stream().filter(l -> l.startsWith("# HELP ")).count(),
                lines.stream().filter(l -> l.startsWith("# TYPE ")).count());
        assertTrue(lines.contains("corfs_leaf_size_bytes{mountpoint=\"/mnt/v\",image=\"a.raw\"} 1073741824"), text);
        assertTrue(lines.contains("corfs_leaf_unreadable_bytes{mountpoint=\"/mnt/v\",image=\"b.raw\"} 131072"), text);
        assertTrue(lines.contains("corfs_job_eta_seconds{mountpoint=\"/mnt/v\",image=\"a.raw\"} 12"), text);
        assertFalse(text.contains("corfs_job_eta_seconds{mountpoint=\"/mnt/v\",image=\"b.raw\"}"), "unknown eta shown");
        assertTrue(lines.contains("corfs_job_failed{mountpoint=\"/mnt/v\",image=\"b.raw\"} 1"), text);
        assertTrue(lines.contains(
                "corfs_job_state{mountpoint=\"/mnt/v\",image=\"a.raw\",job=\"stream\",state=\"running\"} 1"), text);
        assertEquals(JobState.values().length - 1, lines.stream()
                .filter(l -> l.startsWith("corfs_job_state{mountpoint=\"/mnt/v\",image=\"a.raw\"") && l.endsWith(" 0"))
                .count());
        assertTrue(lines.contains("corfs_leaf_backing_info{mountpoint=\"/mnt/v\",image=\"a.raw\","
                + "backing=\"/srv/images/base.raw\"} 1"), text);
        assertTrue(text.endsWith("\n"));
    }

    @Test
    @DisplayName("counters are _total counters, the latency a cumulative histogram with _sum and _count")
    void counters() {
        long[] buckets = new long[LeafCounters.LATENCY_BOUNDS_SECONDS.length + 1];
        buckets[0] = 5;
        buckets[3] = 2;
        buckets[buckets.length - 1] = 1;
        LeafCounters c = new LeafCounters(65536, 1L << 20, 3L << 30, 7, buckets, 12_345_678_901L, 1, 2);
        String text = PrometheusFormat.render("/mnt/v", List.of(leaf("a.raw", JobState.RUNNING, 12, null).withCounters(c)));
        List<String> lines = text.lines().toList();
        String l = "{mountpoint=\"/mnt/v\",image=\"a.raw\"";
        assertTrue(lines.contains("# TYPE corfs_leaf_fetched_bytes_total counter"), text);
        assertTrue(lines.contains("corfs_leaf_fetched_bytes_total" + l + ",purpose=\"copy_on_read\"} 65536"), text);
        assertTrue(lines.contains("corfs_leaf_fetched_bytes_total" + l + ",purpose=\"stream\"} 3221225472"), text);
        assertTrue(lines.contains("corfs_backing_errors_total" + l + ",kind=\"timeout\"} 1"), text);
        assertTrue(lines.contains("corfs_backing_errors_total" + l + ",kind=\"io\"} 2"), text);
        assertTrue(lines.contains("# TYPE corfs_backing_call_duration_seconds histogram"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_bucket" + l + ",le=\"0.00005\"} 5"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_bucket" + l + ",le=\"0.0005\"} 7"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_bucket" + l + ",le=\"10\"} 7"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_bucket" + l + ",le=\"+Inf\"} 8"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_sum" + l + "} 12.345678901"), text);
        assertTrue(lines.contains("corfs_backing_call_duration_seconds_count" + l + "} 8"), text);
    }

    @Test
    @DisplayName("label values escape backslash, double quote and newline")
    void escaping() {
        assertEquals("a\\\\b\\\"c\\nd", PrometheusFormat.escape("a\\b\"c\nd"));
        String text = PrometheusFormat.render("/mnt/\"x\"", List.of(leaf("new\nline.raw", JobState.IDLE, -1, null)));
        assertTrue(text.contains("{mountpoint=\"/mnt/\\\"x\\\"\",image=\"new\\nline.raw\"}"), text);
        assertEquals(0, text.lines().filter(l -> !l.startsWith("#") && !l.startsWith("corfs_")).count(), text);
    }
}
