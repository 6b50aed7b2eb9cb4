package corfs.fuse;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.control.ControlFile;
import corfs.engine.LeafDisk;
import corfs.jobs.MountSession;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One mounted corfs filesystem: libfuse's session loop on a pool of corfs's own Java threads
 * ({@link FuseLoop}) over a {@link MountSession}.
 *
 * <p>{@link #mount} returns only once libfuse's {@code init} ran and the kernel lists the mount point as
 * {@code fuse.corfs}; it fails loudly otherwise, with libfuse's refusal (a bad {@code -o} option, printed by
 * libfuse on stderr) or the loop's own error. The FuseMount owns the session from then on, and closes it even
 * when the mount fails. jnr-fuse's {@code mount()} is not used: corfs calls {@code fuse_setup} and runs the
 * workers itself, so no jnr-fuse shutdown hook is registered; the caller handles signals.
 *
 * <p>Why a pool of Java threads, and 16 of them. Measured on a 2-CPU VM shared with other load (load average
 * 3-7), 256 MiB leaf made local, fio 4 KiB O_DIRECT random reads for 5 s, IOPS, median of 3 runs, two rounds
 * (noise between rounds is about 20%); {@code dd bs=1M iflag=direct}; {@code java.threads.started} during 15 s
 * of 4-job fio:
 * <pre>
 *                        4 jobs        1 job         dd 1M          threads started
 *   fuse_loop_mt (old)   30K / 31K     30K / 37K     1.7 / 2.5 GB/s 366K / 378K
 *   -s (old)             99K / 89K     16K / 19K     1.2 / 1.4 GB/s 0
 *   pool of 1            81K / 74K     16K / 66K     1.4 / 2.3 GB/s 0
 *   pool of 4            85K / 68K     36K / 43K     1.8 / 1.5 GB/s 0
 *   pool of 8            75K / 74K     37K / 38K     2.1 / 2.5 GB/s 0
 *   pool of 16           96K / 72K     38K / 36K     2.5 / 2.5 GB/s 0
 * </pre>
 * 4 to 16 workers were equal within the noise in IOPS and 2.3-3x the old multithreaded mode, and 16 was the
 * default until the tail was measured (issue 12): with 4 fio jobs on 2 CPUs the p99 was 142 us with 2
 * workers, 153 with 4, 264 with 8 and 322 with 16 (bindfs 131). Now the default is an elastic pool
 * ({@link FuseLoop}): one worker per CPU (2 to 16), and one more whenever every worker has waited 2 ms in
 * one request, so requests waiting on a hung backing (the kernel's 12 background readahead requests, say)
 * never leave reads of local clusters unserved, which is what 16 fixed workers were for, while a pool
 * that is only busy with CPU work stays small (growing whenever all were busy cost 0.7x the IOPS and 4x
 * the p99 of one worker).
 *
 * <p>The cause of the old figures: libfuse 2's {@code fuse_loop_mt} starts and retires native threads all the time under such a load, and
 * jffi attaches each new native thread to the JVM (a new {@code java.lang.Thread}) and detaches it after
 * every callback until it has done 1000, so nearly every request paid an attach and a detach
 * ({@code java.threads.started} grew by tens of thousands a second). {@code -s} avoids that but lets one slow
 * backing read hold up every other request, which corfs must not do (a hung backing must not stop reads of
 * local clusters). The workers here are attached once; their number is {@code -o threads=N}
 * (elastic by default, {@code single_threaded} means 1).
 *
 * <p>{@link #close()} is idempotent and bounded: unmount ({@code fusermount -u}, lazily if busy), exit the
 * session and wait for the workers (the unmount ends their reads of /dev/fuse), {@code fuse_teardown}, then
 * close the session (which stops jobs, flushes and closes the files), in that order. When someone unmounts
 * from outside ({@code fusermount -u}), the workers end; {@link #awaitLoopExit} returns and the caller closes.
 */
public final class FuseMount implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FuseMount.class);
    private static final long READY_TIMEOUT_MS = 10_000;
    private static final long UNMOUNT_TIMEOUT_MS = 10_000;
    private static final long LOOP_EXIT_TIMEOUT_MS = 10_000;
    /**
     * FUSE worker threads unless {@code -o threads=N} says otherwise: 0, an elastic pool (one per CPU,
     * growing while all wait on slow requests; {@link FuseLoop}); see the class comment for why.
     */
    public static final int DEFAULT_THREADS = FuseLoop.ELASTIC;
    public static final int MAX_THREADS = FuseLoop.MAX_THREADS;
    static final String SETUP_THREAD = "corfs-fuse-setup";

    /** libfuse 2, bound on first use (loading fails where libfuse.so.2 is missing). */
    private static final class Lib {
        static final LibFuseSession FUSE = LibFuseSession.load();
    }

    /**
     * How to mount.
     *
     * @param source         what the mount table shows as the device: {@code corfs:<source>} (the first leaf's path)
     * @param threads        FUSE worker threads, 1 to {@value #MAX_THREADS}, or {@link #DEFAULT_THREADS} (elastic)
     * @param debug          libfuse debug output ({@code -d})
     * @param fuseOptions    extra {@code -o} options for libfuse, as given by the user
     * @param force          clear a dead FUSE mount at the mount point first
     * @param autoUnmount    ask libfuse for {@code auto_unmount} (the kernel mount goes when the process dies)
     */
    public record Options(String source, int threads, boolean debug, List<String> fuseOptions, boolean force,
                          boolean autoUnmount) {
        public Options {
            fuseOptions = List.copyOf(fuseOptions);
            if (threads != FuseLoop.ELASTIC && (threads < FuseLoop.MIN_THREADS || threads > FuseLoop.MAX_THREADS)) {
                throw new IllegalArgumentException("threads must be " + FuseLoop.MIN_THREADS + ".."
                        + FuseLoop.MAX_THREADS + " or elastic, not " + threads);
            }
        }
    }

    /**
     * The libfuse in use, for {@code corfs --version}: the loaded library file's version and path
     * ({@code 2.9.9 (/lib/x86_64-linux-gnu/libfuse.so.2.9.9)}), its {@code fuse_version()} when the file name
     * carries none, or why it cannot be loaded. Loads libfuse; never throws.
     */
    public static String libfuseVersion() {
        int api;
        try {
            api = Lib.FUSE.fuse_version();
        } catch (LinkageError | RuntimeException e) {
            return "not loadable (" + rootMessage(e) + "; Debian: apt-get install libfuse2)";
        }
        String fromApi = api / 10 + "." + api % 10;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                int at = line.indexOf('/');
                if (at < 0 || !line.contains("/libfuse.so.")) {
                    continue;
                }
                Path lib = Path.of(line.substring(at).trim());
                Path real = lib.toRealPath();
                String name = real.getFileName().toString();
                String v = name.substring(name.indexOf(".so.") + 4);
                return (v.startsWith(fromApi) ? v : fromApi) + " (" + real + ")";
            }
        } catch (IOException | RuntimeException e) {
            LOG.debug("finding libfuse in /proc/self/maps: {}", e.toString());
        }
        return fromApi;
    }

    private final MountSession session;
    private final Path mountPoint;
    private final CorfsFilesystem fs;
    private final FuseLoop loop;
    private boolean closed;

    private FuseMount(MountSession session, Path mountPoint, CorfsFilesystem fs, FuseLoop loop) {
        this.session = session;
        this.mountPoint = mountPoint;
        this.fs = fs;
        this.loop = loop;
    }

    /**
     * Checks the mount point, mounts {@code session}'s leaves there and waits until the kernel shows the
     * mount. Takes ownership of {@code session}: it is closed if the mount fails.
     */
    public static FuseMount mount(MountSession session, Path mountPoint, boolean readOnly, Options options)
            throws IOException {
        try {
            Path mp = checkMountPoint(mountPoint, options.force());
            List<LeafDisk> disks = session.leaves();
            corfs.StartupTrace.mark("fs-new");
            CorfsFilesystem fs = new CorfsFilesystem(disks, new ControlFile(new SessionTarget(session)), readOnly);
            String[] argv = fuseArgv(mp, options);
            LOG.info("mounting {} leaf(s) at {} with {} FUSE thread(s) ({})", disks.size(), mp,
                    options.threads() == FuseLoop.ELASTIC ? FuseLoop.baseThreads() + " to " + MAX_THREADS
                            + " not waiting on the backing, " + FuseLoop.MAX_ALL_THREADS + " in all"
                            : String.valueOf(options.threads()), String.join(" ", argv));
            corfs.StartupTrace.mark("fs-built");
            FuseLoop loop = setUp(mp, fs, argv);
            corfs.StartupTrace.mark("fuse-setup-done");
            try {
                loop.start(options.threads());
                corfs.StartupTrace.mark("loop-started");
                awaitMounted(mp, fs, loop);
                corfs.StartupTrace.mark("mounted");
            } catch (Throwable t) {
                abandon(mp, loop);
                throw t;
            }
            LOG.info("mounted at {}", mp);
            return new FuseMount(session, mp, fs, loop);
        } catch (Throwable t) {
            closeQuietly(session);
            throw t;
        }
    }

    /**
     * For the class-data-sharing archive's training run ({@code corfs.cli.CdsTraining}): builds what
     * {@link #mount} builds before {@code fuse_setup} (the filesystem and jnr-fuse's callback table, the
     * libfuse binding, the loop's out-parameters) over {@code session} and drops it; mounts nothing, and
     * leaves {@code session} open (the caller closes it). The classes a mount loads from the jar (about 170 of
     * jnr-fuse, jnr-ffi and ASM) are then mapped from the archive; the classes jnr generates at run time are
     * not archived. Throws where libfuse 2 cannot be loaded.
     */
    public static void rehearse(MountSession session, Path mountPoint) {
        CorfsFilesystem fs = new CorfsFilesystem(session.leaves(), new ControlFile(new SessionTarget(session)), false);
        fuseArgv(mountPoint, new Options(mountPoint.toString(), DEFAULT_THREADS, false, List.of(), false, true));
        fs.operations();
        FuseLoop.rehearse(Lib.FUSE);
    }

    private static void closeQuietly(MountSession session) {
        try {
            session.close();
        } catch (Throwable t) {
            LOG.warn("closing the session after a failed mount: {}", t.toString());
        }
    }

    /**
     * {@code fuse_setup} on its own thread, waited for with a bound (it runs fusermount). A setup that
     * finishes after the wait gave up is torn down again.
     */
    private static FuseLoop setUp(Path mp, CorfsFilesystem fs, String[] argv) throws IOException {
        CompletableFuture<FuseLoop> setup = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                setup.complete(FuseLoop.setUp(Lib.FUSE, fs, argv));
            } catch (Throwable e) {
                setup.completeExceptionally(e);
            }
        }, SETUP_THREAD);
        t.setDaemon(true);
        t.start();
        try {
            return setup.get(READY_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            throw new CorfsException(Reason.IO, "mount at " + mp + " failed: " + rootMessage(c), c);
        } catch (TimeoutException e) {
            setup.thenAccept(FuseLoop::teardown);
            throw new CorfsException(Reason.IO, "libfuse did not set up the mount at " + mp + " within "
                    + READY_TIMEOUT_MS / 1000 + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            setup.thenAccept(FuseLoop::teardown);
            throw new CorfsException(Reason.IO, "interrupted while mounting at " + mp);
        }
    }

    /** Undoes a mount that did not become ready: unmount, stop the workers, tear down. Bounded. */
    private static void abandon(Path mp, FuseLoop loop) {
        fusermountQuietly(mp, true);
        loop.exit();
        try {
            if (!loop.awaitExit(LOOP_EXIT_TIMEOUT_MS)) {
                LOG.warn("FUSE workers at {} did not end within {} s", mp, LOOP_EXIT_TIMEOUT_MS / 1000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        teardownQuietly(loop);
    }

    private static void teardownQuietly(FuseLoop loop) {
        try {
            loop.teardown();
        } catch (Throwable t) {
            LOG.warn("fuse_teardown: {}", t.toString());
        }
    }

    /**
     * libfuse's argv as jnr-fuse built it: program name, {@code -f} (never daemonize), {@code -d} if asked,
     * the mount point, the {@code -o} options. Never {@code -s}: the workers are corfs's own.
     */
    static String[] fuseArgv(Path mp, Options options) {
        List<String> argv = new ArrayList<>(List.of("corfs", "-f"));
        if (options.debug()) {
            argv.add("-d");
        }
        argv.add(mp.toString());
        argv.addAll(List.of(fuseArgs(options)));
        return argv.toArray(String[]::new);
    }

    /**
     * libfuse arguments. attr_timeout is short on purpose: copy-on-read and the stream change st_blocks (and
     * writes mtime) behind the kernel's back, and a stat a second costs nothing on the I/O path; entries
     * never change, so entry_timeout is long.
     */
    static String[] fuseArgs(Options options) {
        List<String> opts = new ArrayList<>(List.of(
                "fsname=corfs:" + escapeOption(options.source()), "subtype=corfs", "big_writes",
                "max_write=131072", "max_read=131072", "kernel_cache",
                "attr_timeout=1", "entry_timeout=3600", "default_permissions"));
        if (options.autoUnmount()) {
            opts.add("auto_unmount");
        }
        opts.addAll(options.fuseOptions());
        List<String> args = new ArrayList<>();
        args.add("-o");
        args.add(String.join(",", opts));
        return args.toArray(String[]::new);
    }

    /** libfuse's option parser splits at commas and takes backslash escapes. */
    private static String escapeOption(String s) {
        return s.replace("\\", "\\\\").replace(",", "\\,");
    }

    /**
     * Refuses a missing mount point, one that is not a directory, a live corfs mount, and a dead FUSE mount
     * (unless {@code force}, which clears it). Returns the absolute, normalized path.
     */
    public static Path checkMountPoint(Path mountPoint, boolean force) throws IOException {
        Path mp = mountPoint.toAbsolutePath().normalize();
        try {
            BasicFileAttributes attrs = Files.readAttributes(mp, BasicFileAttributes.class);
            if (!attrs.isDirectory()) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "mount point " + mp + " is not a directory");
            }
        } catch (NoSuchFileException e) {
            throw new CorfsException(Reason.NOT_FOUND, "mount point " + mp + " does not exist");
        } catch (java.nio.file.FileSystemException e) {
            if (!isDeadMountError(e)) {
                throw e;
            }
            if (!force) {
                throw new CorfsException(Reason.BUSY, "mount point " + mp + " is a dead FUSE mount (Transport "
                        + "endpoint is not connected): clear it with 'fusermount -u " + mp
                        + "' or mount with --force");
            }
            LOG.info("clearing dead FUSE mount at {}", mp);
            fusermount(mp, true);
            return checkMountPoint(mp, false);
        }
        mp = mp.toRealPath();
        if (MountTable.isCorfsMounted(mp)) {
            throw new CorfsException(Reason.BUSY, "a corfs filesystem is already mounted at " + mp
                    + " (unmount it with 'corfs umount " + mp + "')");
        }
        return mp;
    }

    /**
     * True if {@code e} is what the kernel answers on a FUSE mount whose daemon died: ENOTCONN, or,
     * in the moment right after the death, ECONNABORTED.
     */
    public static boolean isDeadMountError(IOException e) {
        String m = e.getMessage();
        return m != null && (m.contains("Transport endpoint is not connected")
                || m.contains("Software caused connection abort"));
    }

    /**
     * Waits until libfuse has called {@code init} and the kernel lists the mount. The mount table alone is not
     * enough: libfuse 2 mounts before it parses every option and unmounts again when one is bad.
     */
    private static void awaitMounted(Path mp, CorfsFilesystem fs, FuseLoop loop) throws IOException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READY_TIMEOUT_MS);
        while (true) {
            if (fs.initialized() && loop.isRunning() && MountTable.isCorfsMounted(mp)) {
                return;
            }
            if (!loop.isRunning()) {
                String why = loop.failure();
                throw new CorfsException(Reason.IO, "mount at " + mp + " failed"
                        + (why != null ? ": " + why : " (the FUSE workers ended; see the log)"));
            }
            if (System.nanoTime() > deadline) {
                throw new CorfsException(Reason.IO, "mount at " + mp + " did not appear in the mount table within "
                        + READY_TIMEOUT_MS / 1000 + " s");
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CorfsException(Reason.IO, "interrupted while waiting for the mount at " + mp);
            }
        }
    }

    private static String rootMessage(Throwable t) {
        Throwable r = t;
        while (r.getCause() != null && r.getCause() != r) {
            r = r.getCause();
        }
        return r.getMessage() != null ? r.getMessage() : r.toString();
    }

    public Path mountPoint() {
        return mountPoint;
    }

    public MountSession session() {
        return session;
    }

    /** FUSE worker threads serving this mount. */
    public int threads() {
        return loop.threads();
    }

    /** Waits up to {@code millis} for every FUSE worker to end (an unmount from outside); true if they have. */
    public boolean awaitLoopExit(long millis) throws InterruptedException {
        return loop.awaitExit(millis);
    }

    /**
     * Unmounts (if still mounted), stops the workers, tears libfuse down, then closes the session. Idempotent
     * and bounded: workers that do not end in time (a lazily detached mount still in use) are left blocked,
     * the libfuse session is then not torn down (it would be freed under them), and the session is closed
     * anyway; the process exiting ends the connection.
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (MountTable.isCorfsMounted(mountPoint)) {
                LOG.info("unmounting {}", mountPoint);
                if (!fusermountQuietly(mountPoint, false) && MountTable.isCorfsMounted(mountPoint)) {
                    LOG.warn("{} is busy; detaching it lazily", mountPoint);
                    fusermountQuietly(mountPoint, true);
                }
            }
        } catch (IOException e) {
            LOG.warn("reading the mount table: {}", e.toString());
        }
        // Requests that arrive from now on are dropped by libfuse, never half-served after the flush below.
        loop.exit();
        try {
            if (!awaitLoopExit(LOOP_EXIT_TIMEOUT_MS)) {
                LOG.warn("the FUSE workers did not end within {} s; closing the session anyway",
                        LOOP_EXIT_TIMEOUT_MS / 1000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        String why = loop.failure();
        if (why != null) {
            LOG.warn("the FUSE loop ended with an error: {}", why);
        }
        teardownQuietly(loop);
        session.close();
        LOG.info("closed {}", mountPoint);
    }

    private static boolean fusermountQuietly(Path mp, boolean lazy) {
        try {
            fusermount(mp, lazy);
            return true;
        } catch (IOException e) {
            LOG.debug("fusermount: {}", e.getMessage());
            return false;
        }
    }

    /** Runs {@code fusermount -u [-z] MP} with a bounded wait; throws with its message if it fails. */
    public static void fusermount(Path mp, boolean lazy) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("fusermount", "-u"));
        if (lazy) {
            cmd.add("-z");
        }
        cmd.add(mp.toString());
        // fusermount runs in this process's group: a second Ctrl-C of `corfs mount -f` (SIGINT to the group)
        // kills the one the first Ctrl-C's unmount started. A fusermount killed by a signal (exit 128+n; it
        // never exits so itself) is run once more rather than read as "busy" and detached lazily.
        if (!runFusermount(cmd)) {
            LOG.info("{} was killed by a signal; running it again", String.join(" ", cmd));
            if (!runFusermount(cmd)) {
                throw new IOException(String.join(" ", cmd) + " was killed by a signal, twice");
            }
        }
    }

    /** Runs fusermount; false when a signal killed it, an IOException when it failed. */
    private static boolean runFusermount(List<String> cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectInput(ProcessBuilder.Redirect.PIPE)
                .start();
        p.getOutputStream().close();
        try {
            if (!p.waitFor(UNMOUNT_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + " did not finish within "
                        + UNMOUNT_TIMEOUT_MS / 1000 + " s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted while running " + String.join(" ", cmd));
        }
        String out = new String(p.getInputStream().readAllBytes()).trim();
        if (p.exitValue() > 128 && out.isEmpty()) {
            return false;
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed: " + (out.isEmpty() ? "exit " + p.exitValue() : out));
        }
        return true;
    }

    @Override
    public String toString() {
        return "FuseMount[" + mountPoint + ", " + fs.getClass().getSimpleName() + "]";
    }
}
