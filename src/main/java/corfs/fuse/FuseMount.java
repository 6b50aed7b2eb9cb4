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
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One mounted corfs filesystem: the libfuse loop on its own thread over a {@link MountSession}.
 *
 * <p>{@link #mount} returns only once the kernel lists the mount point as {@code fuse.corfs} (jnr-fuse's
 * non-blocking mount reports success after two seconds whether or not it worked); it fails loudly with the
 * loop's own error otherwise. The FuseMount owns the session from then on, and closes it even when the
 * mount fails.
 *
 * <p>{@link #close()} is idempotent and bounded: unmount ({@code fusermount -u}, lazily if busy), wait for
 * the loop thread, then close the session (which stops jobs, flushes and closes the files), in that order.
 * When someone unmounts from outside ({@code fusermount -u}), the loop ends; {@link #awaitLoopExit} returns
 * and the caller closes.
 */
public final class FuseMount implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FuseMount.class);
    private static final long READY_TIMEOUT_MS = 10_000;
    private static final long UNMOUNT_TIMEOUT_MS = 10_000;
    private static final long LOOP_EXIT_TIMEOUT_MS = 10_000;
    static final String LOOP_THREAD = "corfs-fuse-loop";

    /**
     * How to mount.
     *
     * @param source         what the mount table shows as the device: {@code corfs:<source>} (the first leaf's path)
     * @param singleThreaded run libfuse's loop on one thread ({@code -s})
     * @param debug          libfuse debug output ({@code -d})
     * @param fuseOptions    extra {@code -o} options for libfuse, as given by the user
     * @param force          clear a dead FUSE mount at the mount point first
     * @param autoUnmount    ask libfuse for {@code auto_unmount} (the kernel mount goes when the process dies)
     */
    public record Options(String source, boolean singleThreaded, boolean debug, List<String> fuseOptions, boolean force,
                          boolean autoUnmount) {
        public Options {
            fuseOptions = List.copyOf(fuseOptions);
        }
    }

    private final MountSession session;
    private final Path mountPoint;
    private final CorfsFilesystem fs;
    private final Thread loop;
    private final AtomicReference<Throwable> loopFailure;
    private boolean closed;

    private FuseMount(MountSession session, Path mountPoint, CorfsFilesystem fs, Thread loop,
                      AtomicReference<Throwable> loopFailure) {
        this.session = session;
        this.mountPoint = mountPoint;
        this.fs = fs;
        this.loop = loop;
        this.loopFailure = loopFailure;
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
            CorfsFilesystem fs = new CorfsFilesystem(disks, new ControlFile(new SessionTarget(session)), readOnly);
            String[] args = fuseArgs(options);
            LOG.info("mounting {} leaf(s) at {} ({})", disks.size(), mp, String.join(" ", args));
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread loop = new Thread(() -> {
                try {
                    fs.mount(mp, true, options.debug(), args);
                } catch (Throwable t) {
                    failure.set(t);
                    LOG.debug("FUSE loop failed", t);
                }
            }, LOOP_THREAD);
            loop.setDaemon(false);
            loop.start();
            awaitMounted(mp, fs, loop, failure);
            LOG.info("mounted at {}", mp);
            return new FuseMount(session, mp, fs, loop, failure);
        } catch (Throwable t) {
            closeQuietly(session);
            throw t;
        }
    }

    private static void closeQuietly(MountSession session) {
        try {
            session.close();
        } catch (Throwable t) {
            LOG.warn("closing the session after a failed mount: {}", t.toString());
        }
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
        if (options.singleThreaded()) {
            args.add("-s");
        }
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
            if (!isDeadMount(e)) {
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

    static boolean isDeadMount(IOException e) {
        String m = e.getMessage();
        return m != null && m.contains("Transport endpoint is not connected");
    }

    /**
     * Waits until libfuse has called {@code init} and the kernel lists the mount. The mount table alone is not
     * enough: libfuse 2 mounts before it parses every option and unmounts again when one is bad.
     */
    private static void awaitMounted(Path mp, CorfsFilesystem fs, Thread loop, AtomicReference<Throwable> failure)
            throws IOException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READY_TIMEOUT_MS);
        while (true) {
            if (fs.initialized() && loop.isAlive() && MountTable.isCorfsMounted(mp)) {
                return;
            }
            if (!loop.isAlive()) {
                Throwable t = failure.get();
                throw new CorfsException(Reason.IO, "mount at " + mp + " failed"
                        + (t != null ? ": " + rootMessage(t) : " (the FUSE loop ended; see the log)"), t);
            }
            if (System.nanoTime() > deadline) {
                fusermountQuietly(mp, true);
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

    /** Waits up to {@code millis} for the FUSE loop to end (an unmount from outside); true if it has. */
    public boolean awaitLoopExit(long millis) throws InterruptedException {
        loop.join(Math.max(1, millis));
        return !loop.isAlive();
    }

    /** Unmounts (if still mounted), waits for the loop, then closes the session. Idempotent and bounded. */
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
        try {
            if (!awaitLoopExit(LOOP_EXIT_TIMEOUT_MS)) {
                LOG.warn("the FUSE loop did not end within {} s; closing the session anyway",
                        LOOP_EXIT_TIMEOUT_MS / 1000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Throwable t = loopFailure.get();
        if (t != null) {
            LOG.warn("the FUSE loop ended with an error: {}", rootMessage(t));
        }
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
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed: " + (out.isEmpty() ? "exit " + p.exitValue() : out));
        }
    }

    @Override
    public String toString() {
        return "FuseMount[" + mountPoint + ", " + fs.getClass().getSimpleName() + "]";
    }
}
