package corfs.cli;

import corfs.control.ControlParser;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Job commands: each writes one line to MOUNTPOINT/control, the same line a shell script would echo.
 * {@code stream} and {@code commit} can then follow the job ({@code --wait}) until it ends.
 */
final class JobCommands {
    private static final long POLL_MS = 500;
    private static final long PLAIN_LINE_EVERY_MS = 2000;
    private static final int BAR_WIDTH = 30;

    private JobCommands() {
    }

    /** stream and commit. */
    abstract static class Start implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Parameters(index = "1", arity = "0..1", paramLabel = "IMAGE",
                description = "the leaf's file name under MOUNTPOINT (optional when only one is mounted)")
        String image;

        @Option(names = "--speed", paramLabel = "RATE", description = "bytes per second, K/M/G suffixes; 0 = unlimited;"
                + " a stream also takes auto or auto:TARGET (auto:20ms): adapt to the backing's latency")
        String speed;

        @Option(names = "--on-error", paramLabel = "stop|retry|skip", description = "on a backing read error")
        String onError;

        @Option(names = "--wait", description = "follow the job until it ends; exit non-zero if it fails, is"
                + " cancelled or is replaced by another job")
        boolean await;

        abstract String verb();

        @Override
        public Integer call() throws Exception {
            if (verb().equals("stream")) {
                checkSpeed("--speed", speed);
            } else {
                checkRate("--speed", speed);
            }
            if (onError != null && !List.of("stop", "retry", "skip").contains(onError)) {
                throw new Main.ExitException(Main.EXIT_USAGE, "--on-error must be stop, retry or skip, not '"
                        + onError + "'");
            }
            ControlClient client = ControlClient.of(mountPoint);
            String name = client.resolveImage(image);
            StringBuilder line = new StringBuilder(verb()).append(ControlClient.imageArg(name));
            if (speed != null) {
                line.append(" speed=").append(speed);
            }
            if (onError != null) {
                line.append(" on_error=").append(onError);
            }
            if (!await) {
                client.send(line.toString(), name);
                return 0;
            }
            long before = StatusCommand.num(client.statusOf(name), "job_id");
            client.send(line.toString(), name);
            Map<String, String> after = client.statusOf(name);
            return follow(client, name, verb(), ownJob(before, after, verb()));
        }
    }

    /** A bad SPEED (a RATE, auto or auto:TARGET) is a usage error (64), found before anything is sent. */
    static void checkSpeed(String what, String speed) {
        if (speed == null) {
            return;
        }
        try {
            ControlParser.parseSpeed(speed);
        } catch (corfs.CorfsException e) {
            throw new Main.ExitException(Main.EXIT_USAGE, what + ": " + e.getMessage());
        }
    }

    /** A bad RATE is a usage error (64), found before anything is sent. */
    static void checkRate(String what, String rate) {
        if (rate == null) {
            return;
        }
        try {
            ControlParser.parseRate(rate);
        } catch (corfs.CorfsException e) {
            throw new Main.ExitException(Main.EXIT_USAGE, what + ": " + e.getMessage());
        }
    }

    /**
     * The number of the job this command started, from the leaf's job_id read just before and just after
     * the write. A daemon numbers a leaf's jobs one by one (each start takes the last number plus one, under
     * the leaf's command lock) and the status always shows the newest, so ours is in (before, after]: when
     * after is before + 1 it is ours, whatever other writers do. When it is higher, another writer started
     * a job in between and ours cannot be told from theirs: we refuse to follow rather than guess. -1 when
     * the daemon does not number jobs (follow the leaf's job, as before).
     */
    static long ownJob(long before, Map<String, String> after, String verb) {
        long now = StatusCommand.num(after, "job_id");
        if (before < 0 || now < 0) {
            return -1;
        }
        String name = StatusCommand.word(after, "image");
        if (now != before + 1) {
            throw new Main.ExitException(Main.EXIT_FAILURE, verb + " of " + name + " started, but another writer"
                    + " started job(s) on it at the same moment (job " + before + " before, " + now
                    + " now): not following a job that may not be ours");
        }
        if (!verb.equals(StatusCommand.word(after, "job"))) {
            throw new Main.ExitException(Main.EXIT_FAILURE, verb + " of " + name + " started as job " + now
                    + ", but the leaf shows a " + StatusCommand.word(after, "job") + " job with that number");
        }
        return now;
    }

    @Command(name = "stream", description = "Start copying every cluster that is not local from the backing.")
    static final class Stream extends Start {
        @Override
        String verb() {
            return "stream";
        }
    }

    @Command(name = "commit", description = "Start writing every dirty cluster back into the backing.")
    static final class Commit extends Start {
        @Override
        String verb() {
            return "commit";
        }
    }

    /** pause, resume, cancel. */
    abstract static class Simple implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Parameters(index = "1", arity = "0..1", paramLabel = "IMAGE")
        String image;

        abstract String verb();

        @Override
        public Integer call() throws Exception {
            sendCommand(mountPoint, image, verb(), "", false);
            return 0;
        }
    }

    @Command(name = "pause", description = "Pause the running job.")
    static final class Pause extends Simple {
        @Override
        String verb() {
            return "pause";
        }
    }

    @Command(name = "resume", description = "Resume a paused (or failed) job.")
    static final class Resume extends Simple {
        @Override
        String verb() {
            return "resume";
        }
    }

    @Command(name = "cancel", description = "Cancel the job (what it did stays done).")
    static final class Cancel extends Simple {
        @Override
        String verb() {
            return "cancel";
        }
    }

    @Command(name = "speed", description = "Change the running job's speed limit (bytes/s, K/M/G; 0 = unlimited;"
            + " auto or auto:TARGET for a stream).")
    static final class Speed implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Parameters(index = "1..*", arity = "1..*", paramLabel = "[IMAGE] RATE", hideParamSyntax = true,
                description = "the leaf's file name (optional when only one is mounted), then bytes per second,"
                        + " or auto[:TARGET]")
        List<String> args;

        @Override
        public Integer call() throws Exception {
            if (args.size() > 2) {
                throw new Main.ExitException(Main.EXIT_USAGE, "unexpected argument '" + args.get(2)
                        + "' (usage: corfs speed MOUNTPOINT [IMAGE] RATE|auto[:TARGET])");
            }
            String rate = args.get(args.size() - 1);
            checkSpeed("RATE", rate);
            sendCommand(mountPoint, args.size() == 2 ? args.get(0) : null, "speed", rate, false);
            return 0;
        }
    }

    @Command(name = "prioritize", description = "Make the running or paused stream fetch these ranges next, then"
            + " go on where it was.")
    static final class Prioritize implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "MOUNTPOINT")
        Path mountPoint;

        @Parameters(index = "1..*", arity = "1..*", paramLabel = "[IMAGE] RANGE...", hideParamSyntax = true,
                description = "the leaf's file name (optional when only one is mounted), then OFFSET[+LENGTH]"
                        + " ranges in bytes, K/M/G suffixes; LENGTH defaults to one cluster")
        List<String> args;

        @Override
        public Integer call() throws Exception {
            boolean named = !ControlParser.isRange(args.get(0)); // as the control file reads it
            List<String> ranges = args.subList(named ? 1 : 0, args.size());
            if (ranges.isEmpty()) {
                throw new Main.ExitException(Main.EXIT_USAGE, "missing RANGE (usage: corfs prioritize MOUNTPOINT"
                        + " [IMAGE] OFFSET[+LENGTH]...)");
            }
            if (ranges.size() > ControlParser.MAX_PRIORITY_RANGES) {
                throw new Main.ExitException(Main.EXIT_USAGE, ranges.size() + " ranges, more than "
                        + ControlParser.MAX_PRIORITY_RANGES);
            }
            for (String r : ranges) {
                try {
                    ControlParser.parseRange(r);
                } catch (corfs.CorfsException e) {
                    throw new Main.ExitException(Main.EXIT_USAGE, e.getMessage());
                }
            }
            sendCommand(mountPoint, named ? args.get(0) : null, "prioritize", String.join(" ", ranges), true);
            return 0;
        }
    }

    /**
     * Sends {@code VERB [IMAGE] ARGS} to the mount's control file: {@code image} resolved on the mount
     * (null: the only leaf), named on the line as the control file reads it ({@code rangeFollows}: ARGS
     * start with a RANGE, so a leading digit of the name is encoded), and the answer checked.
     */
    static void sendCommand(Path mountPoint, String image, String verb, String args, boolean rangeFollows)
            throws java.io.IOException {
        ControlClient client = ControlClient.of(mountPoint);
        String name = client.resolveImage(image);
        String imageArg = rangeFollows ? rangeSafeImageArg(name) : ControlClient.imageArg(name);
        client.send(verb + imageArg + (args.isEmpty() ? "" : " " + args), name);
    }

    /** The image argument for a line whose next token may be a RANGE: a leading digit is percent-encoded. */
    static String rangeSafeImageArg(String name) {
        String arg = ControlClient.imageArg(name);
        if (arg.length() > 1 && Character.isDigit(arg.charAt(1))) {
            return " %" + Integer.toHexString(arg.charAt(1)).toUpperCase(Locale.ROOT) + arg.substring(2);
        }
        return arg;
    }

    /**
     * Polls the status until job {@code jobId} ends (-1: whatever job the leaf shows); a bar on a terminal,
     * a plain line every few seconds otherwise. Exits non-zero when that job fails, is cancelled, or is
     * replaced by another (cancelled and a new one started, by anyone): its outcome is then unknown.
     */
    static int follow(ControlClient client, String image, String verb, long jobId) throws Exception {
        boolean tty = System.console() != null;
        long lastLine = 0;
        String name = image;
        while (true) {
            Map<String, String> s = client.statusOf(image);
            name = StatusCommand.word(s, "image");
            long shown = StatusCommand.num(s, "job_id");
            if (jobId >= 0 && shown != jobId) {
                if (tty) {
                    System.out.println();
                }
                throw new Main.ExitException(Main.EXIT_FAILURE, verb + " job " + jobId + " of " + name
                        + " was replaced by " + StatusCommand.word(s, "job") + " job " + shown + " (state "
                        + StatusCommand.word(s, "state") + ") started by another writer; how job " + jobId
                        + " ended was not seen (most likely it was cancelled)");
            }
            String state = StatusCommand.word(s, "state");
            long done = Math.max(0, StatusCommand.num(s, "done_bytes"));
            long total = Math.max(0, StatusCommand.num(s, "total_bytes"));
            long rate = Math.max(0, StatusCommand.num(s, "rate"));
            long eta = StatusCommand.num(s, "eta");
            String progress = progressLine(name, verb, state, done, total, rate, eta);
            boolean active = state.equals("running") || state.equals("paused");
            long now = System.currentTimeMillis();
            if (tty) {
                System.out.print("\r" + progress + "\u001b[K");
                System.out.flush();
            } else if (!active || now - lastLine >= PLAIN_LINE_EVERY_MS) {
                System.out.println(progress);
                lastLine = now;
            }
            if (!active) {
                if (tty) {
                    System.out.println();
                }
                String error = StatusCommand.word(s, "error");
                switch (state) {
                    case "completed":
                        return 0;
                    case "completed_with_errors":
                        throw new Main.ExitException(3, verb + " of " + name + " completed with unreadable extents: "
                                + StatusCommand.word(s, "unreadable"));
                    default:
                        throw new Main.ExitException(Main.EXIT_FAILURE, verb + " of " + name + " ended " + state
                                + (error.equals("-") ? "" : ": " + error));
                }
            }
            Thread.sleep(POLL_MS);
        }
    }

    static String progressLine(String name, String verb, String state, long done, long total, long rate, long eta) {
        double frac = total <= 0 ? 1.0 : Math.min(1.0, (double) done / total);
        int filled = (int) Math.round(frac * BAR_WIDTH);
        return String.format(Locale.ROOT, "%s %s [%s%s] %5.1f%%  %s / %s  %s/s  ETA %s  %s", verb, name,
                "#".repeat(filled), ".".repeat(BAR_WIDTH - filled), frac * 100, Sizes.human(done), Sizes.human(total),
                Sizes.human(rate), StatusCommand.eta(eta), state);
    }
}
