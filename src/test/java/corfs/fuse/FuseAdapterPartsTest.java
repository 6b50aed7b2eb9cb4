package corfs.fuse;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import ru.serce.jnrfuse.ErrorCodes;
import ru.serce.jnrfuse.struct.FuseFileInfo;

@DisplayName("FUSE adapter parts that need no mount")
class FuseAdapterPartsTest {

    @Nested
    @DisplayName("FileInfoAccess uses libfuse 2.9's real struct layout")
    class FileInfo {
        private final Pointer mem = Memory.allocateDirect(Runtime.getSystemRuntime(), 64, true);
        private final FuseFileInfo fi = FuseFileInfo.of(mem);

        @Test
        void flagsAtZeroAndAccessMode() {
            mem.putInt(0, 0x8000 | 0 /* O_LARGEFILE|O_RDONLY */);
            assertFalse(FileInfoAccess.wantsWrite(fi));
            mem.putInt(0, 0x8000 | 1);
            assertTrue(FileInfoAccess.wantsWrite(fi));
            mem.putInt(0, 0x8000 | 2);
            assertTrue(FileInfoAccess.wantsWrite(fi));
        }

        @Test
        void fhAt24() {
            FileInfoAccess.setFh(fi, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, mem.getLong(24));
            assertEquals(0x1122334455667788L, FileInfoAccess.fh(fi));
            assertEquals(0, mem.getLong(32), "lock_owner untouched");
        }

        @Test
        void directIoAndNonSeekableBits() {
            mem.putInt(20, 0b10); // keep_cache set by someone
            FileInfoAccess.setDirectIoNonSeekable(fi);
            assertEquals(0b1001, mem.getInt(20));
            assertEquals(0, mem.getInt(16), "writepage untouched");
        }
    }

    @Nested
    @DisplayName("struct fuse_buf is reset at libfuse 2.9's offsets")
    class FuseBufLayout {
        @Test
        void resetLikeFuseDoWork() {
            Pointer buf = Memory.allocateDirect(Runtime.getSystemRuntime(), LibFuseSession.FuseBuf.SIZE, false);
            for (int i = 0; i < LibFuseSession.FuseBuf.SIZE; i++) {
                buf.putByte(i, (byte) 0x5a);
            }
            LibFuseSession.FuseBuf.reset(buf, 0x7f00_1234_5000L, 135_168);
            assertEquals(135_168, buf.getLong(0), "size");
            assertEquals(0, buf.getLong(8), "flags and padding");
            assertEquals(0x7f00_1234_5000L, buf.getLong(16), "mem");
            assertEquals(0, buf.getLong(24), "fd and padding");
            assertEquals(0, buf.getLong(32), "pos");
            assertEquals(40, LibFuseSession.FuseBuf.SIZE);
        }
    }

    @Nested
    @DisplayName("Errno maps every failure in one place")
    class Errnos {
        @Test
        void reasons() {
            assertEquals(-ErrorCodes.EINVAL(), Errno.toErrno(new CorfsException(Reason.INVALID_ARGUMENT, "x"), "t", "/"));
            assertEquals(-ErrorCodes.ENOENT(), Errno.toErrno(new CorfsException(Reason.NOT_FOUND, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EBUSY(), Errno.toErrno(new CorfsException(Reason.BUSY, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EROFS(), Errno.toErrno(new CorfsException(Reason.READ_ONLY, "x"), "t", "/"));
            assertEquals(-ErrorCodes.ENOSPC(), Errno.toErrno(new CorfsException(Reason.NO_SPACE, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EIO(), Errno.toErrno(new CorfsException(Reason.IO, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EFBIG(), Errno.toErrno(new CorfsException(Reason.FILE_TOO_BIG, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EPERM(), Errno.toErrno(new CorfsException(Reason.NOT_PERMITTED, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EOPNOTSUPP(),
                    Errno.toErrno(new CorfsException(Reason.NOT_SUPPORTED, "x"), "t", "/"));
            assertEquals(-ErrorCodes.EALREADY(), Errno.toErrno(new CorfsException(Reason.NO_JOB, "x"), "t", "/"));
            for (Reason r : Reason.values()) {
                assertTrue(Errno.of(r) > 0, r.name());
            }
        }

        @Test
        void plainFailures() {
            assertEquals(-ErrorCodes.ENOSPC(), Errno.toErrno(new IOException("No space left on device"), "t", "/"));
            assertEquals(-ErrorCodes.EIO(), Errno.toErrno(new IOException("boom"), "t", "/"));
            assertEquals(-ErrorCodes.EIO(), Errno.toErrno(new IllegalStateException(), "t", "/"));
            assertEquals(-ErrorCodes.EIO(), Errno.toErrno(new OutOfMemoryError(), "t", "/"));
        }
    }

    @Nested
    @DisplayName("Mount arguments and mount point checks")
    class Mounting {
        @TempDir
        Path dir;

        @Test
        void defaultOptions() {
            String[] args = FuseMount.fuseArgs(new FuseMount.Options("/a,b/leaf.raw", FuseMount.DEFAULT_THREADS, false,
                    List.of("allow_other"), false, true));
            assertArrayEquals(new String[] {"-o", "fsname=corfs:/a\\,b/leaf.raw,subtype=corfs,big_writes,"
                    + "max_write=131072,max_read=131072,kernel_cache,attr_timeout=1,entry_timeout=3600,"
                    + "default_permissions,auto_unmount,allow_other"}, args);
        }

        @Test
        @DisplayName("argv as jnr-fuse built it, never -s: one thread is a pool of one")
        void argvNeverSingleThreaded() {
            String[] argv = FuseMount.fuseArgv(Path.of("/mnt/x"),
                    new FuseMount.Options("x", 1, true, List.of(), false, false));
            assertArrayEquals(new String[] {"corfs", "-f", "-d", "/mnt/x", "-o"}, java.util.Arrays.copyOf(argv, 5));
            assertEquals(6, argv.length);
            assertFalse(argv[5].contains("auto_unmount"));
            assertFalse(List.of(argv).contains("-s"));
        }

        @Test
        void threadBounds() {
            assertThrows(IllegalArgumentException.class, () -> new FuseMount.Options("x", -1, false, List.of(), false, true));
            assertThrows(IllegalArgumentException.class,
                    () -> new FuseMount.Options("x", FuseMount.MAX_THREADS + 1, false, List.of(), false, true));
        }

        @Test
        void missingAndNotADirectory() throws IOException {
            CorfsException e = assertThrows(CorfsException.class,
                    () -> FuseMount.checkMountPoint(dir.resolve("nope"), false));
            assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
            Path file = java.nio.file.Files.createFile(dir.resolve("f"));
            e = assertThrows(CorfsException.class, () -> FuseMount.checkMountPoint(file, false));
            assertTrue(e.getMessage().contains("not a directory"), e.getMessage());
            assertEquals(dir.toRealPath(), FuseMount.checkMountPoint(dir, false));
        }

        @Test
        void mountinfoEscapes() {
            assertEquals("/tmp/a b\\c", MountTable.unescape("/tmp/a\\040b\\134c"));
            assertEquals("/plain", MountTable.unescape("/plain"));
        }
    }
}
