package corfs.control;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafCounters;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.PrefetchState;
import java.util.List;
import java.util.Locale;
import java.util.function.ToLongFunction;

/**
 * The status as Prometheus's text exposition format (version 0.0.4), for {@code corfs status --format
 * prometheus} and node_exporter's textfile collector: one family per metric, each with {@code # HELP} and
 * {@code # TYPE}, one sample per leaf labelled {@code mountpoint} and {@code image} (the plain leaf name,
 * escaped as the format requires). Sizes are bytes, rates bytes per second, times seconds, per Prometheus's
 * naming rules. The job's state is a state set: one {@code corfs_job_state} sample per state, 1 for the
 * current one; {@code corfs_leaf_backing_info} carries the backing's redacted SPEC as a label, value 1. A
 * value that is unknown (an ETA no job has, a backing the status does not name) is left out rather than
 * invented.
 *
 * The prefetch is a state set too ({@code corfs_prefetch_state}), beside its done and total bytes.
 *
 * <p>The daemon's counters ({@link LeafCounters}) are counters here: {@code corfs_leaf_fetched_bytes_total}
 * with a {@code purpose} label (copy_on_read, read_ahead, stream, prefetch), {@code
 * corfs_backing_errors_total} with a {@code kind} label (timeout, io), and the backing call latency as the
 * histogram {@code corfs_backing_call_duration_seconds} ({@code _bucket} with cumulative counts per
 * {@code le}, {@code _sum}, {@code _count}). They start at zero at each mount, which Prometheus's
 * {@code rate()} takes as a counter reset.
 *
 * <p>Stateless and thread-safe.
 */
public final class PrometheusFormat {

    /** The exposition format's content type, for a server or a file collector that wants it. */
    public static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private record Gauge(String name, String help, ToLongFunction<LeafStatus> value) {
    }

    private static final List<Gauge> GAUGES = List.of(
            new Gauge("corfs_leaf_size_bytes", "Virtual size of the leaf's disk.", LeafStatus::size),
            new Gauge("corfs_leaf_cluster_size_bytes", "Cluster size of the leaf.", LeafStatus::clusterSize),
            new Gauge("corfs_leaf_local_bytes", "Bytes whose data is in the leaf.", LeafStatus::localBytes),
            new Gauge("corfs_leaf_dirty_bytes", "Bytes written and not committed to the backing.",
                    LeafStatus::dirtyBytes),
            new Gauge("corfs_leaf_standalone", "1 when every cluster is local and the backing is no longer needed.",
                    s -> s.standalone() ? 1 : 0),
            new Gauge("corfs_leaf_unreadable_bytes",
                    "Bytes a job with on_error=skip could not read from the backing.",
                    s -> s.unreadable().stream().mapToLong(e -> e[1]).sum()),
            new Gauge("corfs_job_id", "Number of the leaf's current or last job (0: none yet).", LeafStatus::jobId),
            new Gauge("corfs_job_done_bytes", "Progress of the job: bytes done.", LeafStatus::doneBytes),
            new Gauge("corfs_job_total_bytes", "Progress of the job: bytes to do.", LeafStatus::totalBytes),
            new Gauge("corfs_job_speed_limit_bytes_per_second", "The job's speed limit (0: unlimited).",
                    LeafStatus::speed),
            new Gauge("corfs_job_rate_bytes_per_second", "The job's observed rate.", LeafStatus::rateBytesPerSecond),
            new Gauge("corfs_job_failed", "1 when the job's last error is set.", s -> s.error() != null ? 1 : 0),
            new Gauge("corfs_prefetch_done_bytes", "Bytes of the prefetch profile's extents known local.",
                    LeafStatus::prefetchDone),
            new Gauge("corfs_prefetch_total_bytes", "Bytes the prefetch profile names (0: no prefetch).",
                    LeafStatus::prefetchTotal));

    private PrometheusFormat() {
    }

    /** The exposition text for {@code leaves} mounted at {@code mountPoint}; families in a fixed order. */
    public static String render(String mountPoint, List<LeafStatus> leaves) {
        StringBuilder b = new StringBuilder();
        for (Gauge g : GAUGES) {
            header(b, g.name(), g.help());
            for (LeafStatus s : leaves) {
                sample(b, g.name(), labels(mountPoint, s), g.value().applyAsLong(s));
            }
        }
        header(b, "corfs_job_eta_seconds", "Estimated seconds until the job completes (absent when unknown).");
        for (LeafStatus s : leaves) {
            if (s.etaSeconds() >= 0) {
                sample(b, "corfs_job_eta_seconds", labels(mountPoint, s), s.etaSeconds());
            }
        }
        header(b, "corfs_leaf_backing_info", "The leaf's backing (its SPEC, credentials redacted), as a label.");
        for (LeafStatus s : leaves) {
            if (s.backing() != null) {
                sample(b, "corfs_leaf_backing_info", labels(mountPoint, s) + ",backing=\"" + escape(s.backing()) + "\"", 1);
            }
        }
        header(b, "corfs_job_state", "The job's kind and state: 1 for the current state, 0 for the others.");
        for (LeafStatus s : leaves) {
            String kind = (s.job() == null ? JobKind.NONE : s.job()).name().toLowerCase(Locale.ROOT);
            for (JobState st : JobState.values()) {
                sample(b, "corfs_job_state", labels(mountPoint, s) + ",job=\"" + kind + "\",state=\""
                        + st.name().toLowerCase(Locale.ROOT) + "\"", st == s.state() ? 1 : 0);
            }
        }
        header(b, "corfs_prefetch_state", "The leaf's prefetch: 1 for the current state, 0 for the others.");
        for (LeafStatus s : leaves) {
            for (PrefetchState st : PrefetchState.values()) {
                sample(b, "corfs_prefetch_state", labels(mountPoint, s) + ",state=\"" + st.word() + "\"",
                        st == s.prefetch() ? 1 : 0);
            }
        }
        renderCounters(b, mountPoint, leaves);
        return b.toString();
    }

    private static final String[] PURPOSES = {"copy_on_read", "read_ahead", "stream", "prefetch"};

    private static void renderCounters(StringBuilder b, String mountPoint, List<LeafStatus> leaves) {
        header(b, "corfs_leaf_fetched_bytes_total", "Bytes read from the backing since the mount, by purpose.",
                "counter");
        for (LeafStatus s : leaves) {
            LeafCounters c = s.counters();
            long[] v = {c.fetchedCopyOnRead(), c.fetchedReadAhead(), c.fetchedStream(), c.fetchedPrefetch()};
            for (int i = 0; i < PURPOSES.length; i++) {
                sample(b, "corfs_leaf_fetched_bytes_total", labels(mountPoint, s) + ",purpose=\"" + PURPOSES[i] + "\"",
                        v[i]);
            }
        }
        header(b, "corfs_backing_errors_total", "Failed backing calls since the mount, by kind (timeout, io).",
                "counter");
        for (LeafStatus s : leaves) {
            sample(b, "corfs_backing_errors_total", labels(mountPoint, s) + ",kind=\"timeout\"", s.counters().timeouts());
            sample(b, "corfs_backing_errors_total", labels(mountPoint, s) + ",kind=\"io\"", s.counters().ioErrors());
        }
        String h = "corfs_backing_call_duration_seconds";
        header(b, h, "Time of backing reads and allocation questions, as the caller waited.", "histogram");
        double[] bounds = LeafCounters.LATENCY_BOUNDS_SECONDS;
        for (LeafStatus s : leaves) {
            long[] buckets = s.counters().latencyBuckets();
            String l = labels(mountPoint, s);
            long cumulative = 0;
            for (int i = 0; i < bounds.length; i++) {
                cumulative += buckets[i];
                sample(b, h + "_bucket", l + ",le=\"" + le(bounds[i]) + "\"", cumulative);
            }
            cumulative += buckets[bounds.length];
            sample(b, h + "_bucket", l + ",le=\"+Inf\"", cumulative);
            b.append(h).append("_sum{").append(l).append("} ")
                    .append(java.math.BigDecimal.valueOf(s.counters().latencySumNanos(), 9).toPlainString()).append('\n');
            sample(b, h + "_count", l, cumulative);
        }
    }

    /** A bucket bound as Prometheus clients write it ({@code 0.005}, {@code 1.0}). */
    private static String le(double bound) {
        return new java.math.BigDecimal(Double.toString(bound)).stripTrailingZeros().toPlainString();
    }

    private static void header(StringBuilder b, String name, String help) {
        header(b, name, help, "gauge");
    }

    private static void header(StringBuilder b, String name, String help, String type) {
        b.append("# HELP ").append(name).append(' ').append(help).append('\n');
        b.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    private static void sample(StringBuilder b, String name, String labels, long value) {
        b.append(name).append('{').append(labels).append("} ").append(value).append('\n');
    }

    private static String labels(String mountPoint, LeafStatus s) {
        return "mountpoint=\"" + escape(mountPoint) + "\",image=\"" + escape(s.image()) + "\"";
    }

    /** A label value as the format requires: backslash, double quote and line feed escaped. */
    static String escape(String v) {
        StringBuilder b = new StringBuilder(v.length());
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            switch (c) {
                case '\\' -> b.append("\\\\");
                case '"' -> b.append("\\\"");
                case '\n' -> b.append("\\n");
                default -> b.append(c);
            }
        }
        return b.toString();
    }
}
