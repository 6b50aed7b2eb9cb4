package corfs.cli;

import corfs.fuse.FuseMount;
import corfs.fuse.MountTable;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code corfs umount}: unmount, then wait until the daemon has flushed and exited. It is also what
 * {@code umount MOUNTPOINT} runs, through the {@code umount.fuse.corfs} helper ({@link HostHelpers}).
 */
@Command(name = "umount", aliases = "unmount",
        description = {"Unmount MOUNTPOINT and wait until its daemon has flushed everything and exited.",
            "With -l, a mount still in use (a file open there) is detached at once; its daemon flushes and exits"
                + " when the last file is closed, and umount does not wait for that."})
final class UmountCommand implements Callable<Integer> {
    private static final long DAEMON_EXIT_TIMEOUT_S = 120;
    /** How long a daemon that has closed everything gets to exit before umount stops waiting. */
    private static final long CLOSED_EXIT_GRACE_S = 5;

    @Option(names = {"-l", "--lazy"}, description = "if the mount is busy, detach it now instead of failing")
    boolean lazy;

    @Parameters(paramLabel = "MOUNTPOINT")
    Path mountPoint;

    @Override
    public Integer call() throws Exception {
        Path mp;
        try {
            mp = mountPoint.toRealPath();
        } catch (java.nio.file.FileSystemException e) {
            if (FuseMount.isDeadMountError(e)) {
                Path abs = mountPoint.toAbsolutePath().normalize();
                FuseMount.fusermount(abs, true);
                System.err.println(Main.oneLine("corfs: " + abs + " was a dead mount (its daemon had died); cleared it"));
                return 0;
            }
            throw e;
        }
        if (!MountTable.isCorfsMounted(mp)) {
            throw new Main.ExitException(Main.EXIT_FAILURE, mp + " is not a corfs mount");
        }
        Optional<RunFiles.Recorded> daemon = RunFiles.findDaemon(mp);
        if (daemon.isEmpty()) {
            try {
                RunFiles.checkDir(RunFiles.dir());
            } catch (RunFiles.UnsafeRunDirException e) {
                System.err.println(Main.oneLine("corfs: warning: " + e.getMessage() + "; not waiting for the daemon"));
            } catch (java.io.IOException e) {
                // no runtime directory: no daemon of ours to wait for
            }
        }
        Path runDir = daemon.map(RunFiles.Recorded::dir).orElse(RunFiles.dir());
        RunFiles.takeFailure(runDir, mp); // a stale record from an earlier daemon
        try {
            FuseMount.fusermount(mp, false);
        } catch (java.io.IOException e) {
            if (lazy && MountTable.isCorfsMounted(mp)) {
                // Busy: detach now. The kernel ends the connection when the last open file is closed; only then
                // does the daemon see the unmount, flush and exit. Waiting here would wait for that close.
                FuseMount.fusermount(mp, true);
                System.err.println(Main.oneLine("corfs: " + mp + " is in use: detached it lazily; its daemon"
                        + daemon.map(d -> " (pid " + d.process().pid() + ")").orElse("")
                        + " flushes and exits when the last file open there is closed"));
                return 0;
            }
            throw new Main.ExitException(Main.EXIT_FAILURE, "cannot unmount " + mp + ": " + e.getMessage()
                    + (e.getMessage() != null && e.getMessage().contains("busy")
                    ? " (close the files open there, e.g. a running VM)" : ""));
        }
        if (daemon.isPresent() && daemon.get().process().isAlive()) {
            awaitDaemon(mp, daemon.get());
        }
        Optional<String> failure = RunFiles.takeFailure(runDir, mp);
        if (failure.isPresent()) {
            throw new Main.ExitException(Main.EXIT_FAILURE, "unmounted " + mp + ", but the daemon could not flush"
                    + " and close cleanly: " + failure.get() + " (fsynced data is safe; see the daemon's log)");
        }
        return 0;
    }

    /**
     * Waits until the daemon exits, or until it has flushed and closed everything (it removes its pid
     * file then) and still has not exited a few seconds later: a thread blocked in a backing that does
     * not answer (a hard NFS mount, a stopped FUSE daemon) cannot be killed until the backing answers, and
     * holds the process, but nothing of the leaf is left to do.
     */
    private static void awaitDaemon(Path mp, RunFiles.Recorded recorded) throws Main.ExitException {
        ProcessHandle daemon = recorded.process();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(DAEMON_EXIT_TIMEOUT_S);
        long closedAt = -1;
        while (daemon.isAlive()) {
            long now = System.nanoTime();
            if (closedAt < 0 && !java.nio.file.Files.exists(RunFiles.pidFile(recorded.dir(), mp))) {
                closedAt = now;
            }
            if (closedAt >= 0 && now - closedAt > TimeUnit.SECONDS.toNanos(CLOSED_EXIT_GRACE_S)) {
                System.err.println(Main.oneLine("corfs: " + mp + ": the daemon (pid " + daemon.pid() + ") flushed and"
                        + " closed the leaves, but a thread of it is still blocked in the backing's filesystem; it exits"
                        + " when the backing answers"));
                return;
            }
            if (now > deadline) {
                throw new Main.ExitException(Main.EXIT_FAILURE, "unmounted " + mp + ", but its daemon (pid "
                        + daemon.pid() + ") has not exited after " + DAEMON_EXIT_TIMEOUT_S + " s");
            }
            try {
                daemon.onExit().get(100, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
                // poll again
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new Main.ExitException(Main.EXIT_FAILURE, "interrupted waiting for the daemon of " + mp);
            }
        }
    }
}
