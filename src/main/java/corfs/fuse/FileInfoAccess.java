package corfs.fuse;

import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.struct.FuseFileInfo;

/**
 * Reads and writes {@code struct fuse_file_info} of libfuse 2.9 at its real offsets.
 *
 * <p>jnr-fuse 0.5.8 declares this struct wrongly (it omits {@code writepage} and widens the bitfields),
 * so its {@code fh} lies past the end of the 40-byte C struct: never use {@code fi.fh} or
 * {@code fi.direct_io}. The C layout on LP64 Linux:
 * <pre>
 *   int flags            @0
 *   unsigned long fh_old @8
 *   int writepage        @16
 *   bitfields            @20  (bit0 direct_io, bit1 keep_cache, bit2 flush, bit3 nonseekable, ...)
 *   uint64_t fh          @24
 *   uint64_t lock_owner  @32
 * </pre>
 */
final class FileInfoAccess {
    static final int O_ACCMODE = 3;
    static final int O_RDONLY = 0;
    private static final int OFF_FLAGS = 0;
    private static final int OFF_BITS = 20;
    private static final int OFF_FH = 24;
    private static final int DIRECT_IO = 1;
    private static final int KEEP_CACHE = 1 << 1;
    private static final int NONSEEKABLE = 1 << 3;

    private FileInfoAccess() {
    }

    private static Pointer memory(FuseFileInfo fi) {
        return Struct.getMemory(fi);
    }

    static int flags(FuseFileInfo fi) {
        return memory(fi).getInt(OFF_FLAGS);
    }

    /** True when the open asks for write access (O_WRONLY or O_RDWR). */
    static boolean wantsWrite(FuseFileInfo fi) {
        return (flags(fi) & O_ACCMODE) != O_RDONLY;
    }

    static long fh(FuseFileInfo fi) {
        return memory(fi).getLong(OFF_FH);
    }

    static void setFh(FuseFileInfo fi, long fh) {
        memory(fi).putLong(OFF_FH, fh);
    }

    /** Bypass the page cache for this open (every read reaches corfs) and forbid seeking. */
    static void setDirectIoNonSeekable(FuseFileInfo fi) {
        Pointer m = memory(fi);
        int bits = m.getInt(OFF_BITS);
        m.putInt(OFF_BITS, (bits | DIRECT_IO | NONSEEKABLE) & ~KEEP_CACHE);
    }
}
