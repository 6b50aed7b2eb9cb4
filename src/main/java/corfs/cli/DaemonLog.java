package corfs.cli;

import corfs.control.ControlParser;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import corfs.vocabulary.LogLeaf;

/**
 * Where the daemon's log goes and what each line carries.
 *
 * <ul>
 * <li>Under systemd, stderr is the journal: systemd says so with {@code JOURNAL_STREAM=DEV:INO}, the device
 * and inode of the stream it connected to fd 2 (systemd.exec(5)); corfs believes it only when fd 2 is still
 * that stream (a child whose stderr was redirected inherits the variable, not the stream). Then the daemon
 * logs to stderr without timestamps of its own (the journal stamps each line), and a daemon started without
 * {@code --log} keeps the journal as its stderr instead of opening {@code LEAF.log}.</li>
 * <li>Every line the daemon logs starts with {@code mount=MOUNTPOINT leaf=NAME} (both percent-encoded like the
 * status's image names): the leaf is the one the logging thread is working on ({@link LogLeaf}, set
 * where work on one leaf begins), else the mount's only leaf, else {@code -} (a line about the whole mount).
 * Done by a {@link PrintStream} over fd 2 that slf4j-simple writes through ({@code System.err}, looked up at
 * each line), so the logging backend stays stock.</li>
 * </ul>
 */
final class DaemonLog {
    private static final String SHOW_DATE_TIME = "org.slf4j.simpleLogger.showDateTime";

    private DaemonLog() {
    }

    /** True when fd 2 is the stream systemd's {@code JOURNAL_STREAM} names. */
    static boolean stderrIsJournal() {
        return stderrIsJournal(System.getenv("JOURNAL_STREAM"));
    }

    static boolean stderrIsJournal(String journalStream) {
        if (journalStream == null) {
            return false;
        }
        int colon = journalStream.indexOf(':');
        if (colon <= 0) {
            return false;
        }
        try {
            long dev = Long.parseLong(journalStream.substring(0, colon));
            long ino = Long.parseLong(journalStream.substring(colon + 1));
            Map<String, Object> a = Files.readAttributes(Path.of("/proc/self/fd/2"), "unix:dev,ino");
            return ((Number) a.get("dev")).longValue() == dev && ((Number) a.get("ino")).longValue() == ino;
        } catch (java.io.IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Called first thing in {@code main}, before any logger exists: without timestamps when stderr is the
     * journal (unless the property was given explicitly).
     */
    static void configure() {
        if (System.getProperty(SHOW_DATE_TIME) == null && stderrIsJournal()) {
            System.setProperty(SHOW_DATE_TIME, "false");
        }
    }

    /** From now on every line on {@code System.err} names the mount and its leaf (see the class comment). */
    static void tagLines(Path mountPoint, List<String> leafNames) {
        String mount = "mount=" + ControlParser.encodeImage(mountPoint.toAbsolutePath().normalize().toString()) + " leaf=";
        String only = leafNames.size() == 1 ? ControlParser.encodeImage(leafNames.get(0)) : "-";
        System.setErr(new Tagged(new FileOutputStream(FileDescriptor.err), mount, only));
    }

    /** Prefixes each line written with {@code println}; slf4j-simple writes a whole line per call. */
    private static final class Tagged extends PrintStream {
        private final String mount;
        private final String defaultLeaf;

        Tagged(FileOutputStream out, String mount, String defaultLeaf) {
            super(out, true, StandardCharsets.UTF_8);
            this.mount = mount;
            this.defaultLeaf = defaultLeaf;
        }

        private String prefix() {
            String leaf = LogLeaf.current();
            return mount + (leaf == null ? defaultLeaf : ControlParser.encodeImage(leaf)) + ' ';
        }

        @Override
        public void println(String x) {
            synchronized (this) {
                super.print(prefix());
                super.println(oneLine(x));
            }
        }

        /**
         * {@code x} with control characters escaped ({@link Main#oneLine}), tabs kept (stack trace lines start
         * with one): a path with a newline in a message must not start a line without the tag.
         */
        private static String oneLine(String x) {
            if (x == null || x.indexOf('\t') < 0) {
                return Main.oneLine(x);
            }
            String[] parts = x.split("\t", -1);
            StringBuilder b = new StringBuilder(x.length());
            for (int i = 0; i < parts.length; i++) {
                if (i > 0) {
                    b.append('\t');
                }
                b.append(Main.oneLine(parts[i]));
            }
            return b.toString();
        }

        @Override
        public void println(Object x) {
            println(String.valueOf(x));
        }
    }
}
