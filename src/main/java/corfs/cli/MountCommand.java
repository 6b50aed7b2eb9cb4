package corfs.cli;

import corfs.fuse.FuseMount;
import corfs.jobs.MountSession;
import corfs.os.Libc;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code corfs mount}: in the foreground ({@code -f}) it runs the filesystem until it is unmounted; otherwise
 * it starts itself again as a detached daemon ({@code setsid --fork}, stdin from /dev/null, output to the log
 * file) and returns once the daemon reports {@code READY} (exit 0) or {@code ERROR <reason>} (exit 1) on its
 * stdout pipe, where it first says {@code PID <pid>}. After READY the daemon's stdout points at the log, never
 * at the pipe again.
 *
 * <p>The daemon is not this JVM's child: the child is a shell ({@link #RELAY}) that starts it with
 * {@code setsid --fork} and relays its lines up to READY or ERROR, then exits. So no thread of this JVM sits in
 * {@code waitpid} for a daemon that lives on when this JVM exits, which would cost 300 ms: the JVM's exit
 * waits that long for every thread in native code (HotSpot's {@code VM_Exit::wait_for_threads_in_native_to_block});
 * measured, every {@code corfs mount} ended 0.35 s after READY. (The shell, not the JVM, holds the pipe's
 * reading end until READY: the JVM drains and closes a child's pipe when the child exits.)
 */
@Command(name = "mount", description = {
    "Mount one or more leaves at MOUNTPOINT, returning once the mount is ready.",
    "Each leaf appears as MOUNTPOINT/<leaf file name>, beside MOUNTPOINT/control. Without -f, a daemon keeps"
        + " serving the mount after the command returns."},
        footerHeading = "%nWith mount(8) and fstab(5)%n",
        footer = {
            "Once installed (the mount helper /sbin/mount.fuse.corfs), util-linux mounts leaves too:",
            "",
            "  mount -t fuse.corfs /var/lib/vms/vm1.raw /mnt/vm1 -o backing_timeout=60",
            "  mount -t fuse.corfs /vms/a.raw:/vms/b.raw /mnt/vms     (several leaves: colon-separated)",
            "  mount -t fuse.corfs '/vms/10\\:00.raw' /mnt/t          (a colon in a leaf's path is written \\:,"
                + " a backslash before a colon or a backslash \\\\)",
            "",
            "and an fstab line such as",
            "",
            "  /var/lib/vms/vm1.raw /mnt/vm1 fuse.corfs defaults,nofail,_netdev,x-systemd.before=libvirtd.service 0 0",
            "",
            "is mounted by 'mount /mnt/vm1' (and at boot). -o takes corfs's options above, ro, and log=FILE"
                + " (--log); mount's, fstab's and systemd's own options are accepted and not passed to libfuse."
                + " 'umount /mnt/vm1' (through /sbin/umount.fuse.corfs) is 'corfs umount': it returns once the"
                + " daemon has flushed and exited; 'umount -l' detaches a busy mount at once."})
final class MountCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(MountCommand.class);
    static final String READY = "READY";
    static final String ERROR = "ERROR";
    /** The daemon's first line on the pipe: its process id (the child is {@code setsid}, which has left). */
    static final String PID = "PID";
    /**
     * {@code sh -c RELAY sh DAEMON-COMMAND...}: see the class comment ({@code setsid} by its full path, util-linux's
     * on Debian: a directory early in a root PATH must not choose the program). Lines before READY/ERROR pass through. When
     * a line cannot be passed on (the starter was killed, even by SIGKILL: SIGPIPE is ignored here so printf fails
     * instead of killing the relay), the relay stops reading, so the daemon's READY finds nobody and it does not
     * stay mounted; if that line was READY itself, the daemon is mounted already and is sent SIGTERM (its shutdown
     * hook unmounts).
     */
    static final String RELAY = "/usr/bin/setsid --fork \"$@\" | { trap '' PIPE; while IFS= read -r l; do"
            + " case $l in 'PID '*) p=${l#PID };; esac;"
            + " printf '%s\\n' \"$l\" 2>/dev/null || { case $l in READY*) [ -n \"${p-}\" ] && kill \"$p\";; esac; exit 1; };"
            + " case $l in READY*|ERROR*) exit 0;; esac; done; }";
    private static final long DAEMON_READY_TIMEOUT_S = 30;
    private static final long DEFAULT_BACKING_TIMEOUT_S = 30;
    /**
     * JVM options the launchers give a command's JVM (quick start, little work) that the daemon they start
     * does not inherit: it serves I/O for hours, with the tiered compiler and the default collector. The
     * class-data-sharing archive options are inherited: the daemon starts faster with them too.
     */
    static final java.util.Set<String> COMMAND_JVM_ONLY = java.util.Set.of("-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC");

    @Option(names = {"-f", "--foreground"}, description = "stay in the foreground, logging to stderr")
    boolean foreground;

    @Option(names = "--read-only", description = "expose the leaves read-only")
    boolean readOnly;

    @Option(names = "--force", description = "accept a changed backing identity (a writable mount records it);"
            + " adopt a copied data file (one that is not the file its metadata was made for); clear a dead FUSE"
            + " mount at MOUNTPOINT")
    boolean force;

    @Option(names = "-o", paramLabel = "OPTIONS", description = {
        "comma-separated options, -o may be repeated;",
        "corfs options: backing_timeout=SECONDS (whole seconds, default " + DEFAULT_BACKING_TIMEOUT_S
            + "; 0 waits forever; an NBD read waits this long for a server that went away to come back,"
            + " unless the leaf has its own timeout option),",
        "ro (the same as --read-only), rw (the default),",
        "threads=N (a fixed pool of N FUSE worker threads, 1.." + FuseMount.MAX_THREADS
            + "; default: one per CPU, growing to " + FuseMount.MAX_THREADS + " while all wait on the backing),",
        "single_threaded (threads=1), debug (libfuse -d), no_auto_unmount,",
        "profile=on|off (record each leaf's access profile, LEAF.corfs-profile; default on),",
        "prefetch=FILE (one leaf) or prefetch=IMAGE=FILE (repeatable): prefetch the access profile FILE,",
        "recorded for later mounts until it completes;",
        "accepted and ignored, as they belong to mount, fstab or systemd: defaults, auto, noauto, nofail,",
        "_netdev, user, users, nouser, owner, group, comment=..., x-...;",
        "anything else is passed to libfuse (e.g. allow_other, nosuid, nodev, noexec);",
        "backing_timeout, profile, threads, metrics_file (and the helper's log) may be given once"})
    List<String> options = new ArrayList<>();

    @Option(names = "--log", paramLabel = "FILE", description = "daemon log file (default: <first LEAF>.log)")
    Path log;

    @Option(names = "--report-ready", hidden = true)
    boolean reportReady;

    /** Set by the parent for a daemon whose stderr is the journal it inherited (no --log file). */
    @Option(names = "--journal", hidden = true)
    boolean journal;

    /** Set by the mount(8) helper: a helper prints nothing on success. */
    boolean quiet;

    @Parameters(arity = "2..*", paramLabel = "LEAF... MOUNTPOINT", hideParamSyntax = true,
            description = "the leaves to expose, then the directory to mount them on")
    List<Path> paths;

    /**
     * {@code args} ({@code mount ...}) as picocli would parse them into this command, without building picocli's
     * model of it (by reflection: about a fifth of a mount's start, issue 11's fast start), or null whenever anything
     * in them is not the plain form: another command, an option given twice, an unknown or attached option
     * ({@code -oX}, {@code --log=F}), an option value that starts with '-', an option after the first path, fewer
     * than two paths, {@code --help}.
     * picocli then parses them, and says what is wrong. {@code MountCommandTest} checks that both parse alike.
     */
    static MountCommand parseQuickly(String... args) {
        if (args.length < 3 || !args[0].equals("mount")) {
            return null;
        }
        MountCommand m = new MountCommand();
        java.util.Set<String> seen = new java.util.HashSet<>();
        List<Path> positional = new ArrayList<>();
        boolean endOfOptions = false;
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (endOfOptions || !a.startsWith("-") || a.equals("-")) {
                positional.add(Path.of(a));
                continue;
            }
            if (!positional.isEmpty()) {
                return null; // picocli wants LEAF... MOUNTPOINT together: "a.raw --force /mnt" is its error to say
            }
            if (!a.equals("-o") && !seen.add(a)) {
                return null; // picocli refuses a repeated option: let it say so
            }
            switch (a) {
                case "--" -> endOfOptions = true;
                case "-f", "--foreground" -> {
                    if (!seen.add("-f/--foreground")) {
                        return null;
                    }
                    m.foreground = true;
                }
                case "--read-only" -> m.readOnly = true;
                case "--force" -> m.force = true;
                case "--report-ready" -> m.reportReady = true;
                case "--journal" -> m.journal = true;
                case "-o", "--log" -> {
                    if (i + 1 >= args.length || args[i + 1].startsWith("-")) {
                        return null;
                    }
                    String v = args[++i];
                    if (a.equals("-o")) {
                        m.options.add(v);
                    } else {
                        m.log = Path.of(v);
                    }
                }
                default -> {
                    return null;
                }
            }
        }
        if (positional.size() < 2) {
            return null;
        }
        m.paths = positional;
        return m;
    }

    /** Parsed -o options. */
    record MountOptions(long backingTimeoutMillis, int threads, boolean debug, boolean autoUnmount,
                        boolean readOnly, List<String> fuseOptions, boolean recordProfile,
                        List<String> prefetch, String metricsFile) {
        boolean singleThreaded() {
            return threads == 1;
        }
    }

    /**
     * Options that belong to mount(8), fstab(5) or systemd.mount(5), not to the filesystem: util-linux hands
     * some of them to a mount helper ({@code nofail}, {@code _netdev}, {@code user}), an fstab line may carry
     * any, and libfuse 2 refuses every one ("fuse: unknown option"). {@code x-*} and {@code comment=*} are
     * matched by prefix in {@link #isHostOption}.
     */
    static final java.util.Set<String> HOST_OPTIONS = java.util.Set.of(
            "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "owner", "group");

    /** True for an option that mount, fstab or systemd consumed: accepted, never handed to libfuse. */
    static boolean isHostOption(String opt) {
        return HOST_OPTIONS.contains(opt) || opt.startsWith("x-") || opt.startsWith("comment=")
                || opt.startsWith("user=");
    }

    /** corfs's options that take one value: given twice, they are refused (not "the last one wins"). */
    static final List<String> SINGLE_VALUED = List.of("backing_timeout", "profile", "metrics_file", "threads");

    /** Refuses a second {@code KEY=} of a {@link #SINGLE_VALUED} option, naming both values. */
    private static void onlyOnce(java.util.Map<String, String> given, String opt) {
        int eq = opt.indexOf('=');
        String key = eq < 0 ? opt : opt.substring(0, eq);
        if (eq > 0 && SINGLE_VALUED.contains(key)) {
            String before = given.putIfAbsent(key, opt);
            if (before != null) {
                throw new Main.ExitException(Main.EXIT_USAGE, "-o " + key + " is given twice (" + before + ", "
                        + opt + "): give it once");
            }
        }
    }

    static MountOptions parseOptions(List<String> raw) {
        long timeout = TimeUnit.SECONDS.toMillis(DEFAULT_BACKING_TIMEOUT_S);
        boolean single = false;
        int threads = 0;
        boolean debug = false;
        boolean autoUnmount = true;
        boolean ro = false;
        boolean rw = false;
        boolean profile = true;
        List<String> fuse = new ArrayList<>();
        List<String> prefetch = new ArrayList<>();
        String metricsFile = null;
        java.util.Map<String, String> given = new java.util.HashMap<>();
        for (String group : raw) {
            for (String o : group.split(",")) {
                String opt = o.trim();
                if (opt.isEmpty() || isHostOption(opt)) {
                    continue;
                }
                onlyOnce(given, opt);
                if (opt.startsWith("backing_timeout=")) {
                    String v = opt.substring("backing_timeout=".length());
                    // Whole seconds in plain digits: "1e-9", "5d" or "0x1p3" would silently mean something else.
                    if (v.isEmpty() || v.length() > 5 || !v.chars().allMatch(c -> c >= '0' && c <= '9')
                            || Long.parseLong(v) > 86_400) {
                        throw new Main.ExitException(Main.EXIT_USAGE,
                                "backing_timeout must be whole seconds from 0 to 86400, not '" + v + "'");
                    }
                    timeout = TimeUnit.SECONDS.toMillis(Long.parseLong(v)); // 0: no timeout, reads wait
                } else if (opt.equals("profile=on") || opt.equals("profile=off")) {
                    profile = opt.equals("profile=on");
                } else if (opt.startsWith("profile=")) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "-o profile must be on or off, not '"
                            + opt.substring("profile=".length()) + "'");
                } else if (opt.startsWith("prefetch=")) {
                    String v = opt.substring("prefetch=".length());
                    if (v.isEmpty()) {
                        throw new Main.ExitException(Main.EXIT_USAGE, "-o prefetch= needs a profile FILE (or IMAGE=FILE)");
                    }
                    prefetch.add(v);
                } else if (opt.startsWith("metrics_file=")) {
                    metricsFile = opt.substring("metrics_file=".length());
                } else if (opt.equals("ro")) {
                    ro = true;
                } else if (opt.equals("rw")) {
                    rw = true;
                } else if (opt.startsWith("threads=")) {
                    String v = opt.substring("threads=".length());
                    try {
                        threads = Integer.parseInt(v);
                        if (threads < 1 || threads > FuseMount.MAX_THREADS) {
                            throw new NumberFormatException();
                        }
                    } catch (NumberFormatException e) {
                        throw new Main.ExitException(Main.EXIT_USAGE,
                                "threads must be a whole number from 1 to " + FuseMount.MAX_THREADS + ", not '" + v + "'");
                    }
                } else if (opt.equals("single_threaded") || opt.equals("s")) {
                    single = true;
                } else if (opt.equals("debug")) {
                    debug = true;
                } else if (opt.equals("no_auto_unmount")) {
                    autoUnmount = false;
                } else if (opt.equals("auto_unmount")) {
                    autoUnmount = true;
                } else if (opt.startsWith("fsname=") || opt.startsWith("subtype=")) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "-o " + opt + ": corfs sets fsname and subtype itself");
                } else if (opt.startsWith("modules=") || opt.startsWith("subdir=")) {
                    // libfuse's stacking modules would put another filesystem's view over corfs's root
                    throw new Main.ExitException(Main.EXIT_USAGE, "-o " + opt + ": libfuse modules are not supported");
                } else {
                    fuse.add(opt);
                }
            }
        }
        if (ro && rw) {
            throw new Main.ExitException(Main.EXIT_USAGE, "-o ro and -o rw contradict");
        }
        if (single && threads > 1) {
            throw new Main.ExitException(Main.EXIT_USAGE, "-o single_threaded and threads=" + threads + " contradict");
        }
        int n = single ? 1 : threads > 0 ? threads : FuseMount.DEFAULT_THREADS;
        if (ro && !prefetch.isEmpty()) {
            throw new Main.ExitException(Main.EXIT_USAGE, "-o prefetch on a read-only mount: nothing could be stored");
        }
        return new MountOptions(timeout, n, debug, autoUnmount, ro, fuse, profile, prefetch, metricsFile);
    }

    @Override
    public Integer call() throws Exception {
        corfs.StartupTrace.mark("parsed");
        List<Path> leaves = paths.subList(0, paths.size() - 1);
        Path mountPoint = paths.get(paths.size() - 1);
        MountOptions mo = parseOptions(options);
        if (mo.readOnly()) {
            readOnly = true; // -o ro is --read-only: corfs refuses writes itself (libfuse's ro would only EROFS)
        } else if (readOnly && options.stream().anyMatch(g -> List.of(g.split(",")).contains("rw"))) {
            throw new Main.ExitException(Main.EXIT_USAGE, "--read-only and -o rw contradict");
        }
        if (readOnly && !mo.prefetch().isEmpty()) {
            throw new Main.ExitException(Main.EXIT_USAGE, "-o prefetch on a read-only mount: nothing could be stored");
        }
        prefetchOf(leaves, mo.prefetch()); // usage errors before a daemon starts (it inherits this directory)
        if (mo.metricsFile() != null) {
            try {
                MetricsFile.check(mo.metricsFile()); // the daemon checks again: say so before starting it
            } catch (corfs.CorfsException e) {
                throw new Main.ExitException(Main.EXIT_USAGE, e.getMessage());
            }
        }
        if (!foreground && LaunchedMount.active()) {
            return becomeDaemon(leaves, mountPoint, mo);
        }
        return foreground ? runForeground(leaves, mountPoint, mo) : startDaemon(leaves, mountPoint, mo);
    }

    // ---- foreground: the daemon itself ------------------------------------------------------------

    private int runForeground(List<Path> leaves, Path mountPoint, MountOptions mo) throws Exception {
        PrintStream readyPipe = System.out;
        boolean launched = LaunchedMount.active() && !foreground; // the launcher's relay reads LaunchedMount's lines
        if (reportReady && !launched) {
            readyPipe.println(PID + " " + ProcessHandle.current().pid());
            if (readyPipe.checkError()) { // flushes: EPIPE when nobody reads (the JVM ignores SIGPIPE)
                LOG.warn("nobody waits for this daemon (its starter, corfs mount, is gone): not mounting {}",
                        mountPoint);
                return Main.EXIT_FAILURE;
            }
        }
        DaemonLog.tagLines(mountPoint, leaves.stream().map(l -> l.getFileName().toString()).toList());
        FuseMount mount;
        MetricsFile metrics = null;
        // SIGTERM/SIGINT, from here on: unmount, flush, close, then exit 0 (not the JVM's 143/130) when all went
        // well; during the start, stop it or undo what it made (see DaemonStop).
        DaemonStop<FuseMount> onSignal = DaemonStop.register(MountCommand::closeMount);
        try {
            RunFiles.secureDir(); // refuse a runtime dir someone else controls before mounting anything
            Path mp = FuseMount.checkMountPoint(mountPoint, force);
            corfs.StartupTrace.mark("checked");
            MountSession session = MountSession.open(leaves,
                    new MountSession.Options(readOnly, force, mo.backingTimeoutMillis(), mo.recordProfile(),
                            prefetchOf(leaves, mo.prefetch())));
            corfs.StartupTrace.mark("session-open");
            if (!onSignal.mounting()) {
                session.close();
                throw new corfs.CorfsException(corfs.CorfsException.Reason.IO, "stopped by a signal before mounting");
            }
            mount = FuseMount.mount(session, mp, readOnly, new FuseMount.Options(
                    leaves.get(0).toAbsolutePath().normalize().toString(), mo.threads(), mo.debug(),
                    mo.fuseOptions(), force, mo.autoUnmount()));
            if (mo.metricsFile() != null) {
                try {
                    metrics = MetricsFile.start(MetricsFile.check(mo.metricsFile()), mount.mountPoint(), session);
                } catch (IOException | RuntimeException e) {
                    closeMount(mount, "a failed start");
                    throw new corfs.CorfsException(corfs.CorfsException.Reason.IO, "metrics file " + mo.metricsFile()
                            + ": " + Main.message(e), e);
                }
            }
            onSignal.serving(mount, metrics);
        } catch (Throwable t) {
            onSignal.startFailed(); // after undoing what was made: a signal now has nothing to close
            onSignal.release();
            if (reportReady && !launched) {
                readyPipe.println(ERROR + " " + Main.oneLine(Main.message(t)));
                readyPipe.flush();
            }
            throw t;
        }
        Path mp = mount.mountPoint();
        try {
            RunFiles.writePid(mp);
        } catch (IOException e) {
            LOG.warn("cannot write the pid file {}: {}", RunFiles.pidFile(mp), e.toString());
        }
        LOG.info("ready: {} at {} (pid {})", leaves, mp, ProcessHandle.current().pid());
        corfs.StartupTrace.mark("ready");
        if (reportReady) {
            boolean told;
            if (launched) {
                if (!quiet) {
                    System.out.println(Main.oneLine(String.format("mounted at %s (daemon pid %d, log %s)", mp,
                            ProcessHandle.current().pid(), where)));
                }
                told = LaunchedMount.ready(Main.oneLine(mp.toString())); // one line: the launcher reads lines
            } else {
                readyPipe.println(READY + " " + Main.oneLine(mp.toString())); // one line: the starter reads lines
                told = !readyPipe.checkError(); // flushes: EPIPE when nobody reads (the JVM ignores SIGPIPE)
            }
            settled.countDown();
            detachStdout();
            if (!told) {
                // The starter was stopped (Ctrl-C, kill) while this daemon started: it said the mount failed,
                // and nobody knows of this one. Do not leave it mounted behind their back.
                LOG.warn("nobody was told {} is ready (its starter, corfs mount, is gone): unmounting", mp);
                onSignal.close("a lost starter");
                onSignal.release();
                return Main.EXIT_FAILURE;
            }
        }
        while (!mount.awaitLoopExit(TimeUnit.HOURS.toMillis(1))) {
            // the loop runs until unmounted
        }
        LOG.info("{} was unmounted; flushing and closing", mp);
        boolean ok = onSignal.close("unmount"); // the metrics file first: the mount's final counters
        onSignal.release();
        return ok ? 0 : Main.EXIT_FAILURE;
    }

    /**
     * The {@code -o prefetch=} values, leaf by leaf: {@code FILE} when one leaf is mounted, {@code IMAGE=FILE}
     * (IMAGE a leaf's file name, up to the first '=' that follows one) for any; FILE absolute, or relative
     * to the directory corfs mount runs in. One profile per leaf.
     */
    static java.util.Map<String, Path> prefetchOf(List<Path> leaves, List<String> values) {
        java.util.Map<String, Path> out = new java.util.LinkedHashMap<>();
        for (String v : values) {
            String image = null;
            String file = v;
            for (Path leaf : leaves) {
                String name = leaf.getFileName().toString();
                if (v.startsWith(name + "=") && v.length() > name.length() + 1) {
                    image = name;
                    file = v.substring(name.length() + 1);
                    break;
                }
            }
            if (image == null) {
                if (leaves.size() != 1) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "-o prefetch=" + v + ": " + leaves.size()
                            + " leaves are mounted; name the leaf: prefetch=IMAGE=FILE");
                }
                image = leaves.get(0).getFileName().toString();
            }
            if (out.put(image, Path.of(file).toAbsolutePath().normalize()) != null) {
                throw new Main.ExitException(Main.EXIT_USAGE, "-o prefetch: two profiles for " + image);
            }
        }
        return out;
    }

    private static boolean closeMount(FuseMount mount, String why) {
        try {
            mount.close();
            return true;
        } catch (Throwable t) {
            LOG.error("closing {} after {} failed: {}", mount.mountPoint(), why, t.toString(), t);
            RunFiles.writeFailure(mount.mountPoint(), Main.message(t).replace('\n', ' '));
            return false;
        } finally {
            RunFiles.removePid(mount.mountPoint());
        }
    }

    /**
     * Points fd 1 at the log so the parent's pipe sees EOF and nothing more. With {@code --log} (as the
     * parent starts the daemon) the log is stderr's file, opened safely by the parent: fd 1 becomes a
     * duplicate of fd 2, and the log's path is never opened again (it may have been replaced meanwhile).
     */
    private void detachStdout() {
        try {
            if (log != null || journal) {
                if (Libc.get().dup2(2, 1) < 0) {
                    throw new IOException("dup2: " + Libc.message(Libc.errno()));
                }
            } else {
                Libc.redirectStdout(Path.of("/dev/null"));
            }
        } catch (IOException | LinkageError e) {
            LOG.warn("cannot detach stdout: {}", e.toString());
            System.out.close();
        }
        System.setOut(new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true,
                StandardCharsets.UTF_8));
    }

    /** Where the daemon logs, as messages name it: its log file, or "the journal". */
    private String where = "";
    /** Counted down once READY is written (see {@link #becomeDaemon}'s deadline). */
    private final java.util.concurrent.CountDownLatch settled = new java.util.concurrent.CountDownLatch(1);

    // ---- background, started by the launcher: this JVM is the daemon -------------------------------------

    /**
     * What {@link #startDaemon} and the daemon it starts do, in this JVM ({@link LaunchedMount}): open the log as
     * the starter would (stderr becomes it), then mount as the daemon does. A failure becomes the message the
     * starter would print ("corfs: reason (what libfuse said)") and its exit code; a mount not ready within the
     * starter's wait fails the same way.
     */
    private int becomeDaemon(List<Path> leaves, Path mountPoint, MountOptions mo) throws Exception {
        Path logFile = (log != null ? log : leaves.get(0).resolveSibling(leaves.get(0).getFileName() + ".log"))
                .toAbsolutePath();
        boolean toJournal = log == null && DaemonLog.stderrIsJournal();
        RunFiles.secureDir();
        long logStart = 0;
        if (toJournal) {
            journal = true;
        } else {
            int logFd = openLog(logFile);
            try {
                logStart = Files.size(Path.of("/proc/self/fd/" + logFd));
                if (Libc.get().dup2(logFd, 2) < 0) {
                    throw new IOException("dup2: " + Libc.message(Libc.errno()));
                }
            } finally {
                Libc.get().close(logFd);
            }
            log = logFile;
        }
        where = toJournal ? "the journal" : logFile.toString();
        System.setErr(new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.err), true,
                StandardCharsets.UTF_8)); // the log from now on; the user's lines go on the pipe (Main.run)
        LaunchedMount.logIs(where);
        reportReady = true;
        long readyWaitS = DAEMON_READY_TIMEOUT_S + leaves.size() * TimeUnit.MILLISECONDS.toSeconds(mo.backingTimeoutMillis());
        Thread deadline = new Thread(() -> {
            try {
                if (!settled.await(readyWaitS, TimeUnit.SECONDS)) {
                    LOG.error("not ready within {} s: exiting", readyWaitS);
                    System.out.flush();
                    PrintStream p = LaunchedMount.pipe();
                    p.println(LaunchedMount.ERR + " corfs: " + Main.oneLine("the mount did not become ready within "
                            + readyWaitS + " s; see " + where));
                    p.println(LaunchedMount.EXIT + " " + (quiet ? HostHelpers.MOUNT_FAILURE : Main.EXIT_FAILURE));
                    p.flush();
                    System.exit(Main.EXIT_FAILURE); // a mount made meanwhile is unmounted by its shutdown hook
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "corfs-ready-deadline");
        deadline.setDaemon(true);
        deadline.start();
        try {
            return runForeground(leaves, mountPoint, mo);
        } catch (Throwable t) {
            if (settled.getCount() == 0) {
                throw t;
            }
            String reason = Main.message(t);
            LOG.error("corfs: {}", Main.oneLine(reason));
            throw new Main.ExitException(Main.EXIT_FAILURE, reason.replace('\n', ' ') + (toJournal ? " (see the journal)" : libfuseSaid(logFile, logStart)));
        } finally {
            settled.countDown();
        }
    }

    // ---- background: start the daemon and wait for READY ----------------------------------------------

    private int startDaemon(List<Path> leaves, Path mountPoint, MountOptions mo) throws Exception {
        Path logFile = (log != null ? log : leaves.get(0).resolveSibling(leaves.get(0).getFileName() + ".log"))
                .toAbsolutePath();
        boolean toJournal = log == null && DaemonLog.stderrIsJournal(); // under systemd: the journal, not LEAF.log
        List<String> cmd = new ArrayList<>();
        cmd.add("/bin/sh");
        cmd.add("-c");
        cmd.add(RELAY);
        cmd.add("sh");
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (COMMAND_JVM_ONLY.contains(a)) {
                continue; // the launcher's choices for a short-lived command, not for the daemon
            }
            if (a.startsWith("-X") || a.startsWith("-D") || a.startsWith("-ea") || a.startsWith("-da")) {
                cmd.add(a);
            }
        }
        cmd.add("-cp");
        cmd.add(ownClassPath());
        cmd.add(Main.class.getName());
        cmd.add("mount");
        cmd.add("-f");
        cmd.add("--report-ready");
        if (toJournal) {
            cmd.add("--journal");
        } else {
            cmd.add("--log");
            cmd.add(logFile.toString());
        }
        if (readOnly) {
            cmd.add("--read-only");
        }
        if (force) {
            cmd.add("--force");
        }
        for (String o : options) {
            cmd.add("-o");
            cmd.add(o);
        }
        cmd.add("--");
        for (Path p : paths) {
            cmd.add(p.toAbsolutePath().toString());
        }
        LOG.debug("starting daemon: {}", cmd);
        corfs.StartupTrace.mark("spawn");
        RunFiles.secureDir(); // the daemon would refuse it too: say so before starting it
        long logStart;
        Process child;
        int logFd = toJournal ? -1 : openLog(logFile);
        if (toJournal) {
            logStart = 0;
            child = new ProcessBuilder(cmd)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(ProcessBuilder.Redirect.PIPE)
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
        } else {
            try {
                // The daemon's stderr is the file just opened (through /proc/self/fd), never the path again.
                File opened = new File("/proc/self/fd/" + logFd);
                logStart = opened.length();
                child = new ProcessBuilder(cmd)
                        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                        .redirectOutput(ProcessBuilder.Redirect.PIPE)
                        .redirectError(ProcessBuilder.Redirect.appendTo(opened))
                        .start();
            } finally {
                Libc.get().close(logFd);
            }
        }
        corfs.StartupTrace.mark("spawned");
        BlockingQueue<String> lines = new ArrayBlockingQueue<>(16);
        java.util.concurrent.atomic.AtomicLong daemonPid = new java.util.concurrent.atomic.AtomicLong(-1);
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.startsWith(PID + " ") && daemonPid.get() < 0) {
                        try {
                            daemonPid.set(Long.parseLong(line.substring(PID.length() + 1).trim()));
                        } catch (NumberFormatException e) {
                            LOG.debug("the daemon's first line is not a pid: {}", line);
                        }
                    } else if (line.startsWith(READY) || line.startsWith(ERROR)) {
                        lines.offer(line);
                        return;
                    }
                }
                lines.offer("EOF");
            } catch (IOException e) {
                lines.offer("EOF");
            }
        }, "corfs-daemon-reader");
        reader.setDaemon(true);
        reader.start();
        // The daemon probes each leaf's backing with the backing timeout before it answers: wait for that too,
        // so a slow backing is reported by the daemon's own message, not by this wait.
        long readyWaitS = DAEMON_READY_TIMEOUT_S + leaves.size() * TimeUnit.MILLISECONDS.toSeconds(mo.backingTimeoutMillis());
        // Stopped while waiting (SIGTERM, SIGINT to this JVM only): stop the relay too, so the daemon's READY finds
        // nobody reading and the daemon unmounts itself (see runForeground) instead of staying mounted unannounced.
        Thread stopRelay = new Thread(() -> {
            child.descendants().forEach(ProcessHandle::destroy);
            child.destroy();
        }, "corfs-stop-relay");
        Runtime.getRuntime().addShutdownHook(stopRelay);
        String line = lines.poll(readyWaitS, TimeUnit.SECONDS);
        try {
            Runtime.getRuntime().removeShutdownHook(stopRelay);
        } catch (IllegalStateException e) {
            // shutting down already: the hook stops the relay
        }
        corfs.StartupTrace.mark("got-ready");
        String where = toJournal ? "the journal" : logFile.toString();
        long pid = daemonPid.get();
        if (line == null) {
            child.destroy();
            if (pid > 0) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
            }
            throw new Main.ExitException(Main.EXIT_FAILURE, "the mount did not become ready within "
                    + readyWaitS + " s; see " + where);
        }
        if (line.startsWith(READY)) {
            if (quiet) {
                return 0;
            }
            System.out.println(Main.oneLine(String.format("mounted at %s (daemon pid %d, log %s)",
                    line.substring(Math.min(line.length(), READY.length() + 1)), pid, where)));
            return 0;
        }
        if (line.startsWith(ERROR)) {
            throw new Main.ExitException(Main.EXIT_FAILURE, line.substring(ERROR.length()).trim()
                    + (toJournal ? " (see the journal)" : libfuseSaid(logFile, logStart)));
        }
        // The pipe ended without READY or ERROR. If the relay ended (killed) while the daemon lives on, nobody would
        // report its mount: stop it. The daemon is not our child (see RELAY): its exit code is not ours to read.
        java.util.Optional<ProcessHandle> daemon = pid > 0 ? ProcessHandle.of(pid) : java.util.Optional.empty();
        if (daemon.isPresent()) {
            try {
                daemon.get().onExit().get(1, TimeUnit.SECONDS);
            } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
                daemon.get().destroy();
                throw new Main.ExitException(Main.EXIT_FAILURE, "the mount daemon (pid " + pid + ") lost its starter"
                        + " before it was ready, and was stopped; see " + where);
            }
        }
        int code = child.waitFor(5, TimeUnit.SECONDS) ? child.exitValue() : -1;
        throw new Main.ExitException(Main.EXIT_FAILURE, "the mount daemon" + (pid > 0 ? " (pid " + pid + ")" : "")
                + (pid < 0 && code > 0 ? " could not be started (its starter exited with code " + code + ")" : " exited")
                + " before it was ready; see " + where);
    }

    /**
     * Opens (creating 0600) the daemon's log for appending without following a symbolic link, and refuses
     * anything but a regular file owned by this user with one link: a log planted by someone else (a link
     * to a file of theirs or of root's) is never written. A leaf's own files other than its log (its data
     * file, {@code LEAF.corfs}, its sidecars) are refused too: appending to them corrupts the leaf.
     *
     * @return the open file descriptor (the caller closes it)
     */
    static int openLog(Path logFile) throws IOException {
        Path owner = corfs.image.LeafImage.leafOwning(logFile);
        if (owner != null && !logFile.equals(owner.resolveSibling(owner.getFileName() + ".log"))) {
            throw new Main.ExitException(Main.EXIT_FAILURE, "log file " + logFile + (owner.equals(logFile)
                    ? " is the data file of a corfs leaf" : " is one of the leaf " + owner + "'s own files")
                    + ": refusing to write to it (choose another with --log)");
        }
        int fd = Libc.get().open(logFile.toString(),
                Libc.O_WRONLY | Libc.O_APPEND | Libc.O_CREAT | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.oNoFollow(), 0600);
        if (fd < 0) {
            int e = Libc.errno();
            throw new Main.ExitException(Main.EXIT_FAILURE, "log file " + logFile + (e == Libc.ELOOP
                    ? " is a symbolic link: refusing to write through it (remove it, or choose another with --log)"
                    : ": " + Libc.message(e)));
        }
        try {
            java.util.Map<String, Object> a = java.nio.file.Files.readAttributes(Path.of("/proc/self/fd/" + fd),
                    "unix:mode,uid,nlink");
            int mode = (Integer) a.get("mode");
            String problem = (mode & 0170000) != 0100000 ? "is not a regular file"
                    : (Integer) a.get("uid") != RunFiles.uid() ? "is owned by uid " + a.get("uid") + ", not by you"
                    : (Integer) a.get("nlink") != 1 ? "has " + a.get("nlink") + " hard links"
                    : null;
            if (problem != null) {
                throw new Main.ExitException(Main.EXIT_FAILURE, "log file " + logFile + " " + problem
                        + ": refusing to write to it (remove it, or choose another with --log)");
            }
            return fd;
        } catch (IOException | RuntimeException e) {
            Libc.get().close(fd);
            throw e;
        }
    }

    /** libfuse prints its reasons ("fuse: unknown option ...") on stderr, which is the daemon's log. */
    private static String libfuseSaid(Path logFile, long from) {
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(logFile.toFile(), "r")) {
            long len = Math.min(f.length() - from, 64 * 1024);
            if (len <= 0) {
                return "";
            }
            byte[] b = new byte[(int) len];
            f.seek(from);
            f.readFully(b);
            List<String> said = new ArrayList<>();
            for (String l : new String(b, StandardCharsets.UTF_8).split("\n")) {
                if (l.startsWith("fuse:") || l.startsWith("fusermount")) {
                    said.add(l.trim());
                }
            }
            return said.isEmpty() ? " (see " + logFile + ")" : " (" + String.join("; ", said) + ")";
        } catch (IOException e) {
            return " (see " + logFile + ")";
        }
    }

    private static String ownClassPath() {
        try {
            return Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        } catch (Exception e) {
            return System.getProperty("java.class.path");
        }
    }
}
