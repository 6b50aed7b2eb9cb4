package corfs.cli;

import corfs.control.ControlParser;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code corfs prefetch MOUNTPOINT [IMAGE] FILE} and {@code corfs prefetch --cancel MOUNTPOINT [IMAGE]}: one
 * line to MOUNTPOINT/control, {@code prefetch [IMAGE] FILE} (FILE made absolute here, since the daemon's
 * working directory is not ours, and percent-encoded like an image) or {@code prefetch [IMAGE] cancel}.
 * {@code --wait} follows the leaf's prefetch until it is no longer running.
 */
@Command(name = "prefetch", description = {
    "Prefetch an access profile (corfs profile export) into a mounted leaf, staying ahead of the guest's reads.",
    "Replaces the leaf's running or pending prefetch; recorded beside the leaf (LEAF.corfs-prefetch) until it"
        + " completes, so a later mount resumes it. --cancel stops it and forgets it."})
final class PrefetchCommand implements Callable<Integer> {
    private static final long POLL_MS = 500;

    @Parameters(index = "0", paramLabel = "MOUNTPOINT")
    Path mountPoint;

    @Parameters(index = "1..*", arity = "0..2", paramLabel = "[IMAGE] FILE", hideParamSyntax = true,
            description = "the leaf's file name (optional when only one is mounted), then the profile file")
    List<String> args = List.of();

    @Option(names = "--cancel", description = "stop the leaf's prefetch and forget it (no FILE)")
    boolean cancel;

    @Option(names = "--wait", description = "follow the prefetch until it ends; exit non-zero unless it completed")
    boolean await;

    @Override
    public Integer call() throws Exception {
        int files = cancel ? 0 : 1;
        if (args.size() < files || args.size() > files + 1) {
            throw new Main.ExitException(Main.EXIT_USAGE, cancel ? "usage: corfs prefetch --cancel MOUNTPOINT [IMAGE]"
                    : "usage: corfs prefetch MOUNTPOINT [IMAGE] FILE");
        }
        ControlClient client = ControlClient.of(mountPoint);
        String name = client.resolveImage(args.size() > files ? args.get(0) : null);
        String what = cancel ? "cancel"
                : ControlParser.encodeImage(Path.of(args.get(args.size() - 1)).toAbsolutePath().normalize().toString());
        client.send("prefetch" + ControlClient.imageArg(name) + " " + what, name);
        if (!await || cancel) {
            return 0;
        }
        while (true) {
            Map<String, String> s = client.statusOf(name);
            String state = StatusCommand.word(s, "prefetch");
            if (!state.equals("running")) {
                System.out.printf("prefetch %s %s: %s of %s%n", StatusCommand.readable(StatusCommand.word(s, "image")),
                        state, Sizes.human(Math.max(0, StatusCommand.num(s, "prefetch_done"))),
                        Sizes.human(Math.max(0, StatusCommand.num(s, "prefetch_total"))));
                if (state.equals("completed")) {
                    return 0;
                }
                throw new Main.ExitException(Main.EXIT_FAILURE, "prefetch of " + StatusCommand.word(s, "image")
                        + " ended " + state);
            }
            Thread.sleep(POLL_MS);
        }
    }
}
