package corfs.cli;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * A background {@code corfs mount} (or {@code mount-helper}) as the launchers run it (issue 11's fast start): one
 * JVM on the critical path instead of two. The launcher starts this JVM detached ({@code /usr/bin/setsid --fork},
 * stdin from /dev/null) with its stdout a pipe to a relay in the launcher, and this JVM runs the very command line
 * {@code corfs mount ...} would run ({@link Main#start}: the same parsing and checks), except that where the
 * command would start a daemon ({@link MountCommand}), it becomes the daemon.
 *
 * <p>What the command would print reaches the user through the relay, one line each, on the pipe:
 * <pre>
 *   PID n        this JVM's process id (first, before anything is parsed)
 *   LOG where    the daemon's log (a file, or "the journal"), once it is open
 *   OUT text     a line for the launcher's stdout (help, version, "mounted at ...")
 *   ERR text     a line for the launcher's stderr (usage errors, "corfs: reason", helper -v)
 *   EXIT n       the command ended without mounting: the launcher exits n
 *   READY mp     mounted: the launcher exits 0
 * </pre>
 * Until the log is open, slf4j's lines are ERR lines too (as a command's stderr); from then on stderr (fd 2) is the
 * log. The relay stops reading when the launcher is gone (Ctrl-C) or, at READY, sends SIGTERM to a daemon whose
 * launcher died (SIGKILL): a write of READY that fails makes this daemon unmount (see
 * {@link MountCommand#runForeground}), as a daemon nobody was told of must not stay mounted.
 */
final class LaunchedMount {
    static final String OUT = "OUT";
    static final String ERR = "ERR";
    static final String EXIT = "EXIT";
    static final String LOG_LINE = "LOG";

    /** The pipe to the launcher's relay; null unless this JVM was started by {@link #main}. */
    private static volatile PrintStream pipe;
    /** Set once READY was written: the command's exit code is then nobody's (the launcher has exited 0). */
    private static volatile boolean readySent;

    private LaunchedMount() {
    }

    public static void main(String[] args) {
        corfs.StartupTrace.mark("launched");
        PrintStream p = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        p.println(MountCommand.PID + " " + ProcessHandle.current().pid());
        if (p.checkError()) {
            System.exit(Main.EXIT_FAILURE); // nobody reads: the launcher is gone already
        }
        pipe = p;
        Lines out = new Lines(p, OUT);
        Lines err = new Lines(p, ERR);
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        int code = Main.start(args);
        if (!readySent) {
            System.out.flush();
            System.err.flush();
            out.end();
            err.end();
            p.println(EXIT + " " + code);
            p.flush();
        }
        System.exit(code);
    }

    /** True in the JVM the launcher started for a background mount. */
    static boolean active() {
        return pipe != null;
    }

    /** The pipe to the relay (only when {@link #active()}). */
    static PrintStream pipe() {
        return pipe;
    }

    /** Says {@code LOG where} once the daemon's log is known. */
    static void logIs(String where) {
        pipe.println(LOG_LINE + " " + Main.oneLine(where));
    }

    /** Writes READY; false when nobody read it (the relay is gone). */
    static boolean ready(String mountPoint) {
        System.out.flush();
        pipe.println(MountCommand.READY + " " + mountPoint);
        readySent = true;
        return !pipe.checkError();
    }

    /** Passes each complete line written to it on as {@code PREFIX line}; a line is never split or merged. */
    private static final class Lines extends OutputStream {
        private final PrintStream to;
        private final String prefix;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        Lines(PrintStream to, String prefix) {
            this.to = to;
            this.prefix = prefix + " ";
        }

        @Override
        public synchronized void write(int b) {
            if (b == '\n') {
                emit();
            } else {
                line.write(b);
            }
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            for (int i = off; i < off + len; i++) {
                write(b[i]);
            }
        }

        /** Passes on what was written since the last newline, if anything. */
        synchronized void end() {
            if (line.size() > 0) {
                emit();
            }
        }

        private void emit() {
            String text = line.toString(StandardCharsets.UTF_8);
            line.reset();
            synchronized (to) {
                to.print(prefix);
                to.println(text.endsWith("\r") ? text.substring(0, text.length() - 1) : text);
            }
        }
    }
}
