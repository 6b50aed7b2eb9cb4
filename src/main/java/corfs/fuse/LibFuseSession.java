package corfs.fuse;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Pointer;
import jnr.ffi.annotations.IgnoreError;
import jnr.ffi.types.size_t;

/**
 * The libfuse 2.9 ({@code libfuse.so.2}) functions corfs needs to run the session loop on its own threads,
 * bound through jnr-ffi. Unversioned lookups resolve to the default versions: {@code fuse_setup} and
 * {@code fuse_teardown} {@code @@FUSE_2.6}, {@code fuse_get_session} {@code @@FUSE_2.6}, {@code fuse_start/stop_cleanup_thread} {@code @@FUSE_2.9}, the
 * {@code fuse_session_*}/{@code fuse_chan_*} functions {@code @@FUSE_2.4}, and
 * {@code fuse_session_receive_buf}/{@code fuse_session_process_buf} {@code @@FUSE_2.9}.
 *
 * <p>All pointers are opaque libfuse objects except {@code struct fuse_buf}, laid out by {@link FuseBuf}.
 * Public only because jnr-ffi implements it from another class loader; nothing outside corfs.fuse uses it.
 */
public interface LibFuseSession {

    /**
     * Parses argv, mounts (via fusermount), creates the {@code struct fuse} and installs libfuse's signal
     * handlers (which it does only where the handler is still the default; the JVM's stay). Prints its reason
     * on stderr and returns NULL on failure, having unmounted again.
     *
     * @param mountpoint    out: {@code char *}, to be handed to {@link #fuse_teardown}
     * @param multithreaded out: {@code int}, 0 if argv held {@code -s}
     */
    Pointer fuse_setup(int argc, String[] argv, Pointer op, @size_t long opSize, Pointer mountpoint,
                       Pointer multithreaded, Pointer userData);

    /** Removes the signal handlers, unmounts if still mounted, destroys the fuse object, frees mountpoint. */
    void fuse_teardown(Pointer fuse, Pointer mountpoint);

    @IgnoreError
    Pointer fuse_get_session(Pointer fuse);

    /** What {@code fuse_loop_mt} does first: a native thread pruning forgotten nodes, only with {@code -o remember}. */
    int fuse_start_cleanup_thread(Pointer fuse);

    /** What {@code fuse_loop_mt} does last, before the caller's {@code fuse_teardown}. */
    void fuse_stop_cleanup_thread(Pointer fuse);

    @IgnoreError
    Pointer fuse_session_next_chan(Pointer se, Pointer ch);

    @IgnoreError
    @size_t long fuse_chan_bufsize(Pointer ch);

    /** Reads one request into {@code buf}: its length, 0 at the end (unmounted or exited), or -errno. */
    @IgnoreError
    int fuse_session_receive_buf(Pointer se, Pointer buf, Pointer chp);

    /** Handles one request received into {@code buf}; the filesystem's callbacks run on the calling thread. */
    @IgnoreError
    void fuse_session_process_buf(Pointer se, Pointer buf, Pointer ch);

    @IgnoreError
    int fuse_session_exited(Pointer se);

    @IgnoreError
    void fuse_session_exit(Pointer se);

    /** {@code FUSE_VERSION} of the loaded library: major × 10 + minor (29 for 2.9). */
    @IgnoreError
    int fuse_version();

    /** Loads libfuse 2 the way jnr-fuse does ("fuse", then "libfuse.so.2"). */
    static LibFuseSession load() {
        try {
            return LibraryLoader.create(LibFuseSession.class).failImmediately().load("fuse");
        } catch (LinkageError | RuntimeException e) {
            return LibraryLoader.create(LibFuseSession.class).failImmediately().load("libfuse.so.2");
        }
    }

    /**
     * {@code struct fuse_buf} of libfuse 2.9 (fuse_common.h) on LP64 Linux, 40 bytes:
     * <pre>
     *   size_t size               @0
     *   enum fuse_buf_flags flags @8
     *   void *mem                 @16
     *   int fd                    @24
     *   off_t pos                 @32
     * </pre>
     */
    final class FuseBuf {
        static final int SIZE = 40;
        static final int OFF_SIZE = 0;
        static final int OFF_FLAGS = 8;
        static final int OFF_MEM = 16;
        static final int OFF_FD = 24;
        static final int OFF_POS = 32;

        private FuseBuf() {
        }

        /** Resets {@code buf} to a memory buffer of {@code size} bytes at {@code mem}, as libfuse's workers do. */
        static void reset(Pointer buf, long mem, long size) {
            buf.putLong(OFF_SIZE, size);
            buf.putInt(OFF_FLAGS, 0);
            buf.putInt(OFF_FLAGS + 4, 0);
            buf.putAddress(OFF_MEM, mem);
            buf.putLong(OFF_FD, 0);
            buf.putLong(OFF_POS, 0);
        }
    }
}
