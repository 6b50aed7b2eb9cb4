package corfs.cli;

import corfs.CorfsException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code corfs} command line. Every failure ends as one line on stderr, {@code corfs: <message>}, and
 * a non-zero exit; stack traces go to the debug log only.
 */
@Command(name = "corfs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        scope = CommandLine.ScopeType.INHERIT,
        description = "Copy-on-read leaf images over FUSE, with stream and commit jobs driven by a control file.",
        subcommands = {
            LeafCommands.Create.class, LeafCommands.SetBacking.class, LeafCommands.Info.class, LeafCommands.Map.class, LeafCommands.Check.class,
            MountCommand.class, UmountCommand.class, StatusCommand.class,
            JobCommands.Stream.class, JobCommands.Commit.class, JobCommands.Pause.class,
            JobCommands.Resume.class, JobCommands.Cancel.class, JobCommands.Speed.class, JobCommands.Prioritize.class,
            PrefetchCommand.class,
            HostHelpers.Mount.class, HostHelpers.Umount.class, ProfileCommands.Profile.class,
            CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    /** Exit code of a usage error (sysexits EX_USAGE; 2 means "problems found" for check). */
    static final int EXIT_USAGE = 64;
    static final int EXIT_FAILURE = 1;
    private static final String LOG_LEVEL = "org.slf4j.simpleLogger.defaultLogLevel";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
    }

    public static void main(String[] args) {
        System.exit(start(args));
    }

    /** Runs one command line as {@code corfs ARGS} does, logging set up, and returns the process's exit code. */
    static int start(String... args) {
        corfs.StartupTrace.mark("main");
        DaemonLog.configure(); // before any logger exists: no timestamps of ours when stderr is the journal
        // Offline commands log only warnings; a mount (the daemon) logs its events. Set before any logger exists.
        boolean mount = args.length > 0 && (args[0].equals("mount") || args[0].equals(HostHelpers.MOUNT_HELPER));
        if (!mount && System.getProperty(LOG_LEVEL) == null) {
            System.setProperty(LOG_LEVEL, "warn");
        }
        int code = run(args);
        corfs.StartupTrace.mark("exit");
        return HostHelpers.isHelper(args) ? HostHelpers.mountExitCode(code) : code;
    }

    /** Runs one command line and returns its exit code. */
    static int run(String... args) {
        MountCommand mount = MountCommand.parseQuickly(args);
        if (mount != null) {
            PrintStream err = System.err; // the user's: a daemon's stderr becomes its log before it can fail
            try {
                return mount.call();
            } catch (Exception e) {
                return failed(e, err);
            }
        }
        CommandLine cl = commandLine(args);
        if (LaunchedMount.active()) {
            // now, not when first used: by then stderr may be the daemon's log, and these lines are the user's
            cl.setOut(new PrintWriter(new java.io.OutputStreamWriter(System.out, java.nio.charset.StandardCharsets.UTF_8), true));
            cl.setErr(new PrintWriter(new java.io.OutputStreamWriter(System.err, java.nio.charset.StandardCharsets.UTF_8), true));
        }
        cl.setExecutionExceptionHandler((e, line, parsed) -> failed(e, line.getErr()));
        cl.setExecutionStrategy(parsed -> {
            for (CommandLine.ParseResult p = parsed; p != null; p = p.subcommand()) {
                if (p.isVersionHelpRequested()) {
                    PrintWriter out = p.commandSpec().commandLine().getOut();
                    Version.report().forEach(out::println);
                    out.flush();
                    return 0;
                }
            }
            return new CommandLine.RunLast().execute(parsed);
        });
        cl.setParameterExceptionHandler((e, a) -> {
            PrintWriter err = e.getCommandLine().getErr();
            err.println("corfs: " + oneLine(e.getMessage()) + " (see '"
                    + e.getCommandLine().getCommandSpec().qualifiedName() + " --help')");
            err.flush();
            return EXIT_USAGE;
        });
        return cl.execute(args);
    }

    /** A command's failure: one line on {@code err}, {@code corfs: <message>}; returns the exit code. */
    private static int failed(Throwable e, Appendable err) {
        Logger log = LoggerFactory.getLogger(Main.class);
        log.debug("command failed", e);
        try {
            err.append("corfs: ").append(oneLine(message(e))).append(System.lineSeparator());
        } catch (java.io.IOException ignored) {
            // nowhere to say it: the exit code still says it failed
        }
        if (err instanceof java.io.Flushable f) {
            try {
                f.flush();
            } catch (java.io.IOException ignored) {
                // as above
            }
        }
        return e instanceof ExitException x ? x.code : EXIT_FAILURE;
    }

    /**
     * The command line that runs {@code args}. When {@code args[0]} names a command, only that command is built
     * under a lean root ({@link Lean}, the same name, help, version and inherited options as {@link Main}):
     * picocli builds every command it is given, by reflection, before it parses anything, and building all
     * twenty took about a third of a {@code corfs status} (issue 11's fast start). Otherwise (no command,
     * {@code help}, an option, a typo) the whole tree, as {@code --help} and the error messages need it.
     */
    static CommandLine commandLine(String... args) {
        Class<?> only = args.length > 0 && !args[0].equals("help") ? Commands.BY_NAME.get(args[0]) : null;
        CommandLine cl;
        if (only == null) {
            cl = new CommandLine(new Main());
        } else {
            cl = new CommandLine(new Lean());
            cl.addSubcommand(args[0], new CommandLine(only));
        }
        // An argument is what it says: picocli would otherwise read '@x' as the contents of the file x (in the
        // current directory when relative), so a leaf or mount point named '@x' would become whatever x holds, and
        // MountCommand.parseQuickly (which takes '@x' as a path) would no longer parse as picocli does.
        cl.setExpandAtFiles(false);
        return cl;
    }

    /** Command name (and alias) → class, from {@link Main}'s annotation: one list for the CLI, man pages, completion. */
    private static final class Commands {
        /** Built on first use, not with {@link Main}: reading twenty annotations is wasted on a quickly parsed mount. */
        static final java.util.Map<String, Class<?>> BY_NAME = commands();
    }

    private static java.util.Map<String, Class<?>> commands() {
        java.util.Map<String, Class<?>> byName = new java.util.HashMap<>();
        for (Class<?> c : Main.class.getAnnotation(Command.class).subcommands()) {
            Command command = c.getAnnotation(Command.class);
            if (command == null) {
                continue;
            }
            byName.put(command.name(), c);
            for (String alias : command.aliases()) {
                byName.put(alias, c);
            }
        }
        return java.util.Map.copyOf(byName);
    }

    /** The root of a command line built for one command ({@link #commandLine}): {@link Main} without the others. */
    @Command(name = "corfs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
            scope = CommandLine.ScopeType.INHERIT)
    static final class Lean implements Runnable {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public void run() {
            throw new CommandLine.ParameterException(spec.commandLine(), "a command is required");
        }
    }

    /**
     * {@code text} with every control character shown as an escape ({@code \n}, {@code \x1b}...): a
     * message quoting a name the user typed (a path with a newline, an escape sequence) stays one line
     * and cannot drive the terminal.
     */
    static String oneLine(String text) {
        if (text == null || text.chars().noneMatch(Main::isControl)) {
            return text;
        }
        StringBuilder sb = new StringBuilder(text.length() + 8);
        text.chars().forEach(c -> {
            switch (c) {
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c > 0xff && isControl(c)) {
                        sb.append(String.format("\\u%04x", c));
                    } else if (isControl(c)) {
                        sb.append(String.format("\\x%02x", c));
                    } else {
                        sb.append((char) c);
                    }
                }
            }
        });
        return sb.toString();
    }

    private static boolean isControl(int c) {
        return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0x2028 || c == 0x2029;
    }

    /** The one-line message of a failure. */
    static String message(Throwable e) {
        if (e instanceof CorfsException || e instanceof ExitException) {
            return e.getMessage();
        }
        if (e instanceof java.nio.file.NoSuchFileException n) {
            return n.getFile() + ": no such file or directory";
        }
        if (e instanceof java.nio.file.AccessDeniedException a) {
            return a.getFile() + ": permission denied";
        }
        if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            return f.getFile() + ": " + f.getReason();
        }
        String m = e.getMessage();
        return m != null && !m.isBlank() ? m : e.toString();
    }

    /** A failure with a chosen exit code and message. */
    static final class ExitException extends RuntimeException {
        final int code;

        ExitException(int code, String message) {
            super(message);
            this.code = code;
        }
    }

    /**
     * corfs's version, as picocli shows it (man pages, a subcommand's {@code --version}). Cheap on purpose:
     * with {@code scope = INHERIT} picocli asks every subcommand's version while it builds the command line,
     * on every run; the full report ({@link #report()}) is printed only when {@code --version} is asked for.
     */
    static final class Version implements CommandLine.IVersionProvider {
        private static final String RESOURCE = "/corfs/version.properties";

        @Override
        public String[] getVersion() {
            return new String[] {"corfs " + built().getProperty("version", "unknown")};
        }

        /**
         * {@code corfs --version}: corfs's version and the versions of what it runs on, the Java runtime, libfuse
         * (as loaded: the library file's version, or why it cannot be loaded) and jnr-fuse (as built), so that a
         * bug report carries them.
         */
        static List<String> report() {
            java.util.Properties built = built();
            return List.of(
                    "corfs " + built.getProperty("version", "unknown"),
                    "Java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ", "
                            + System.getProperty("java.home") + ")",
                    "libfuse " + corfs.fuse.FuseMount.libfuseVersion(),
                    "jnr-fuse " + built.getProperty("jnr-fuse.version", "unknown"));
        }

        /** What the build recorded (Maven filters the resource); empty when run from unfiltered classes. */
        static java.util.Properties built() {
            java.util.Properties p = new java.util.Properties();
            try (java.io.InputStream in = Main.class.getResourceAsStream(RESOURCE)) {
                if (in != null) {
                    p.load(in);
                }
            } catch (java.io.IOException e) {
                // reported as unknown
            }
            return p;
        }
    }
}
