package corfs.cli;

import corfs.fuse.FuseMount;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.IntConsumer;

/**
 * A mount daemon's answer to SIGTERM/SIGINT (a JVM shutdown hook), in force from before anything is opened, so a
 * signal during the start never leaves a mount behind: Ctrl-C of {@code corfs mount} makes its relay send the
 * daemon SIGTERM at any point of the start. Before this hook covered the start, a SIGTERM between the kernel
 * mount ({@code fuse_setup}) and the hook's registration ended the JVM with the mount still there: dead with
 * {@code no_auto_unmount}, removed by fusermount's watchdog a moment after the exit otherwise.
 *
 * <p>States, in order: {@code OPENING} (leaves being opened, nothing mounted), {@code MOUNTING} (inside
 * {@link FuseMount#mount}), {@code SERVING} (the mount is this object's to close on a signal), then
 * {@code DONE}. A signal in {@code OPENING} stops the start before it mounts ({@code STOPPED}: the main thread's
 * {@link #mounting} then refuses); in {@code MOUNTING} the hook waits (bounded) for the mount to be made or to
 * fail, then closes what was made; in {@code SERVING} it closes the mount. The hook ends the JVM with the close's
 * status ({@link Runtime#halt}: 0 when all went well, not the JVM's 143/130) once it closed a mount; otherwise it
 * returns and the JVM ends as it would have.
 *
 * <p>The main thread closes a serving mount through {@link #close} too, with the hook still registered: a
 * SIGTERM that lands during that close (the launcher's relay sends one as it leaves, so the daemon's READY and
 * the signal race) then waits for it in the hook instead of ending the JVM halfway through it. Before, the main
 * thread removed the hook first, and such a SIGTERM ended the JVM with the mount still there.
 *
 * <p>Threads: the main thread calls {@link #mounting}, {@link #serving}, {@link #startFailed} and
 * {@link #release}; {@link #close} is called by the main thread and the hook (the JVM's shutdown thread). The
 * state is guarded by {@code this}, the close by {@code closeLock}; lock order: {@code closeLock}, then
 * {@code this}, and nothing waits while holding {@code this} except the hook's bounded wait for the mount.
 */
final class DaemonStop<M> implements Runnable {
    /**
     * How long a signal during {@link FuseMount#mount} waits for it to end: it bounds each of its own waits by
     * 10 s, and a failing mount has four of them (setup, the mount showing, its undoing fusermount, the
     * workers' exit).
     */
    static final long MOUNTING_WAIT_MS = TimeUnit.SECONDS.toMillis(60);

    private enum State { OPENING, STOPPED, MOUNTING, SERVING, DONE }

    /** Closes a mount; true when all went well. */
    interface Closer<M> {
        boolean close(M mount, String why);
    }

    private final Closer<M> closer;
    private final Thread hook;
    private final Consumer<Thread> unregister;
    private final IntConsumer halt;
    private State state = State.OPENING;
    private M mount;
    private AutoCloseable beforeClose;
    private final Object closeLock = new Object();
    /** The first close's result; guarded by {@code closeLock}. */
    private Boolean closedOk;

    /** Registers the hook with this JVM; it ends the JVM with {@link Runtime#halt}. */
    static DaemonStop<FuseMount> register(Closer<FuseMount> closer) {
        Runtime rt = Runtime.getRuntime();
        return new DaemonStop<>(closer, rt::addShutdownHook, rt::removeShutdownHook, rt::halt);
    }

    /** For tests: {@code register}/{@code unregister} stand for the JVM's hooks, {@code halt} for its end. */
    DaemonStop(Closer<M> closer, Consumer<Thread> register, Consumer<Thread> unregister, IntConsumer halt) {
        this.closer = closer;
        this.unregister = unregister;
        this.halt = halt;
        this.hook = new Thread(this, "corfs-shutdown");
        register.accept(hook);
    }

    /** Main thread, before {@link FuseMount#mount}: false when a signal came first (do not mount). */
    synchronized boolean mounting() {
        if (state == State.STOPPED) {
            return false;
        }
        assert state == State.OPENING : state;
        state = State.MOUNTING;
        return true;
    }

    /**
     * Main thread: the mount is made; from now a signal closes {@code beforeClose} (the metrics file, may be null)
     * and then {@code m}.
     */
    synchronized void serving(M m, AutoCloseable beforeClose) {
        assert state == State.MOUNTING : state;
        this.mount = m;
        this.beforeClose = beforeClose;
        state = State.SERVING;
        notifyAll();
    }

    /** Main thread: the start failed (and undid what it made); a signal has nothing to close. */
    synchronized void startFailed() {
        if (state == State.OPENING || state == State.MOUNTING) {
            state = State.DONE;
        }
        notifyAll();
    }

    /**
     * Closes the serving mount: {@code beforeClose}, then the mount. Once: a second caller waits for the first
     * close and gets its result. True when all went well.
     */
    boolean close(String why) {
        synchronized (closeLock) {
            if (closedOk == null) {
                M m;
                AutoCloseable first;
                synchronized (this) {
                    assert state == State.SERVING || state == State.DONE : state;
                    state = State.DONE;
                    m = mount;
                    first = beforeClose;
                }
                if (first != null) {
                    try {
                        first.close();
                    } catch (Exception e) {
                        // the metrics file's last write: the mount matters, not this
                    }
                }
                closedOk = closer.close(m, why);
            }
            return closedOk;
        }
    }

    /** Main thread, after its own {@link #close}: the hook is no longer needed (the JVM's exit is the command's). */
    void release() {
        try {
            unregister.accept(hook);
        } catch (IllegalStateException e) {
            // shutting down already: the hook closes (or has closed) and exits
        }
    }

    @Override
    public void run() {
        synchronized (this) {
            if (state == State.OPENING) {
                state = State.STOPPED; // nothing mounted, and the main thread will not mount now
                return;
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(MOUNTING_WAIT_MS);
            long left;
            while (state == State.MOUNTING && (left = deadline - System.nanoTime()) > 0) {
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            if (state != State.SERVING && state != State.DONE || mount == null) {
                return; // the start failed (and undid what it made), or the mount never ended within the wait
            }
        }
        boolean ok = close("signal"); // waits for a close the main thread began
        System.err.flush();
        halt.accept(ok ? 0 : 1);
    }
}
