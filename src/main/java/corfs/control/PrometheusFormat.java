package corfs.control;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
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
 * <p>What the status does not hold is not here: bytes fetched by copy-on-read, stream and prefetch, backing
 * latency and errors need counters in the daemon.
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
        return b.toString();
    }

    private static void header(StringBuilder b, String name, String help) {
        b.append("# HELP ").append(name).append(' ').append(help).append('\n');
        b.append("# TYPE ").append(name).append(" gauge\n");
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
