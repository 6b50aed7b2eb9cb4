package corfs.cli;

import corfs.control.ControlParser;
import corfs.control.PrometheusFormat;
import corfs.control.StatusFormat;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.OnError;
import corfs.vocabulary.PrefetchState;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code corfs status}: the control file's status, readable or as JSON. */
@Command(name = "status", description = "Show every mounted leaf and its job (from MOUNTPOINT/control).")
final class StatusCommand implements Callable<Integer> {
    @Option(names = "--json", description = "print JSON (the same as --format json)")
    boolean json;

    /** How to print the status. */
    enum Format { text, json, prometheus }

    @Option(names = "--format", paramLabel = "FORMAT", description = "text (default), json, or prometheus"
            + " (the Prometheus text exposition format, e.g. for node_exporter's textfile collector)")
    Format format;

    @Parameters(paramLabel = "MOUNTPOINT")
    Path mountPoint;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (json && format != null && format != Format.json) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--json and --format " + format
                    + " contradict");
        }
        corfs.StartupTrace.mark("parsed");
        ControlClient client = ControlClient.of(mountPoint);
        List<Map<String, String>> all = client.status();
        corfs.StartupTrace.mark("answered");
        if (format == Format.prometheus) {
            List<LeafStatus> leaves = new ArrayList<>();
            for (Map<String, String> s : all) {
                leaves.add(toLeafStatus(s));
            }
            System.out.print(PrometheusFormat.render(mountPoint.toAbsolutePath().normalize().toString(), leaves));
            return 0;
        }
        if (json || format == Format.json) {
            List<LeafStatus> leaves = new ArrayList<>();
            for (Map<String, String> s : all) {
                leaves.add(toLeafStatus(s));
            }
            System.out.print(StatusFormat.renderJson(leaves));
            return 0;
        }
        for (Map<String, String> s : all) {
            System.out.println(describe(s));
        }
        return 0;
    }

    static long num(Map<String, String> s, String key) {
        String v = s.get(key);
        if (v == null || v.equals("-")) {
            return -1;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static String word(Map<String, String> s, String key) {
        String v = s.get(key);
        return v == null ? "-" : v;
    }

    static LeafStatus toLeafStatus(Map<String, String> s) {
        List<long[]> unreadable = new ArrayList<>();
        String u = word(s, "unreadable");
        if (!u.equals("-")) {
            for (String e : u.split(",")) {
                String[] p = e.split("\\+");
                if (p.length == 2) {
                    unreadable.add(new long[] {Long.parseLong(p[0]), Long.parseLong(p[1])});
                }
            }
        }
        String job = word(s, "job");
        String state = word(s, "state");
        String onError = word(s, "on_error");
        String error = word(s, "error");
        String commandError = word(s, "command_error");
        return new LeafStatus(word(s, "image"), num(s, "size"), (int) num(s, "cluster_size"), num(s, "local_bytes"),
                num(s, "dirty_bytes"), "yes".equals(s.get("standalone")),
                job.equals("-") ? JobKind.NONE : JobKind.valueOf(job.toUpperCase(Locale.ROOT)),
                state.equals("-") ? JobState.IDLE : JobState.valueOf(state.toUpperCase(Locale.ROOT)),
                Math.max(0, num(s, "job_id")), num(s, "done_bytes"), num(s, "total_bytes"), Math.max(0, num(s, "speed")),
                Math.max(0, num(s, "rate")), num(s, "eta"),
                onError.equals("-") ? null : OnError.ofWord(onError), error.equals("-") ? null : error,
                commandError.equals("-") ? null : commandError, unreadable,
                word(s, "backing").equals("-") ? null : word(s, "backing"), speedSetting(s), autoWindow(s),
                prefetchState(word(s, "prefetch")), Math.max(0, num(s, "prefetch_done")),
                Math.max(0, num(s, "prefetch_total")), StatusFormat.counters(s));
    }

    /** An older daemon shows no prefetch field: none. */
    private static PrefetchState prefetchState(String word) {
        try {
            return word.equals("-") ? PrefetchState.NONE : PrefetchState.ofWord(word);
        } catch (IllegalArgumentException e) {
            return PrefetchState.NONE;
        }
    }

    /** The {@code speed} field as set: auto (with its target) or the limit; unlimited when unreadable. */
    static JobSpeed speedSetting(Map<String, String> s) {
        String v = word(s, "speed");
        try {
            return ControlParser.parseSpeed(v);
        } catch (corfs.CorfsException e) {
            return JobSpeed.UNLIMITED;
        }
    }

    private static double autoWindow(Map<String, String> s) {
        try {
            return Double.parseDouble(word(s, "auto_window"));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static String describe(Map<String, String> s) {
        long size = num(s, "size");
        StringBuilder b = new StringBuilder();
        b.append(readable(word(s, "image"))).append(": ").append(Sizes.human(size))
                .append(", cluster ").append(Sizes.human(num(s, "cluster_size")))
                .append(", local ").append(Sizes.human(num(s, "local_bytes")))
                .append(" (").append(Sizes.percent(num(s, "local_bytes"), size)).append(')')
                .append(", dirty ").append(Sizes.human(num(s, "dirty_bytes")))
                .append(", standalone ").append(word(s, "standalone")).append('\n');
        if (!"-".equals(word(s, "backing"))) {
            b.append("  backing: ").append(readable(word(s, "backing"))).append('\n');
        }
        b.append("  job: ").append(word(s, "job"));
        if (!"none".equals(s.get("job"))) {
            b.append(" #").append(word(s, "job_id"));
            long done = num(s, "done_bytes");
            long total = num(s, "total_bytes");
            long speed = num(s, "speed");
            b.append(' ').append(word(s, "state"))
                    .append(", ").append(Sizes.percent(done, total)).append(" (").append(Sizes.human(done))
                    .append(" of ").append(Sizes.human(total)).append(')')
                    .append(", rate ").append(Sizes.human(Math.max(0, num(s, "rate")))).append("/s")
                    .append(", speed limit ").append(speedSetting(s).isAuto() ? speedSetting(s).word() + " (window "
                            + word(s, "auto_window") + ")" : speed <= 0 ? "none" : Sizes.human(speed) + "/s")
                    .append(", eta ").append(eta(num(s, "eta")))
                    .append(", on_error ").append(word(s, "on_error"));
        }
        if (!"-".equals(word(s, "unreadable"))) {
            b.append("\n  unreadable: ").append(word(s, "unreadable"));
        }
        String prefetch = word(s, "prefetch");
        if (!prefetch.equals("-") && !prefetch.equals("none")) {
            long done = num(s, "prefetch_done");
            long total = num(s, "prefetch_total");
            b.append("\n  prefetch: ").append(prefetch).append(", ").append(Sizes.percent(done, total))
                    .append(" (").append(Sizes.human(done)).append(" of ").append(Sizes.human(total)).append(')');
        }
        b.append("\n  error: ").append(word(s, "error"));
        if (!"-".equals(word(s, "command_error"))) {
            b.append("\n  last refused command: ").append(word(s, "command_error"));
        }
        return b.toString();
    }

    /**
     * A name for a terminal: control characters (C0 including newline, DEL, C1, U+2028/2029) percent-encoded
     * as UTF-8 bytes, like the control file's status does ({@code new%0Aline.raw}); the CLI accepts that form
     * as IMAGE too. Everything else is shown as it is.
     */
    static String readable(String name) {
        StringBuilder b = new StringBuilder(name.length());
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                for (byte x : String.valueOf(c).getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
                    b.append(String.format(Locale.ROOT, "%%%02X", x & 0xff));
                }
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    static String eta(long seconds) {
        if (seconds < 0) {
            return "-";
        }
        return seconds >= 3600
                ? String.format(Locale.ROOT, "%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
                : String.format(Locale.ROOT, "%d:%02d", seconds / 60, seconds % 60);
    }
}
