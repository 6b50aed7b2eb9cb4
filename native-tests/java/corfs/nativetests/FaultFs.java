package corfs.nativetests;

import com.kenai.jffi.MemoryIO;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import jnr.ffi.Pointer;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import ru.serce.jnrfuse.ErrorCodes;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.Timespec;

/**
 * A fault-injecting passthrough filesystem for native tests, run as its own process:
 * {@code java -cp ... corfs.nativetests.FaultFs SOURCE_DIR MOUNTPOINT STATE_FILE}. It exposes the regular
 * files of SOURCE_DIR (flat, passing through size, mode, inode and mtime, so corfs's backing identity
 * stays stable) and, on every read and write, obeys STATE_FILE, re-read each time:
 * <ul>
 *   <li>empty or {@code ok}: pass through;</li>
 *   <li>{@code eio}: every read and write fails with EIO, like a dead disk;</li>
 *   <li>lines {@code eio START LENGTH}: reads and writes overlapping a byte range fail with EIO, like bad
 *       sectors;</li>
 *   <li>{@code hang}: reads and writes block until the state changes, like a suspended device or an NFS
 *       server gone.</li>
 *   <li>{@code hang-getattr}: getattr of a file blocks until the state changes (reads still pass). libfuse 2
 *       has no lseek operation, so the kernel answers {@code lseek(SEEK_DATA/SEEK_HOLE)} itself after
 *       refreshing the size with a GETATTR (once the 1 s attribute timeout has passed): in this state an
 *       {@code lseek(SEEK_DATA)} on the file really blocks, holding the inode lock, like one on a hard NFS
 *       mount whose server is gone. {@code stat} blocks too.</li>
 * </ul>
 * It mounts with {@code direct_io}, so the kernel's page cache never answers for it: every read corfs
 * makes of the backing reaches this process and sees the fault. It exists because a kernel without
 * device-mapper cannot run {@code dmsetup}'s {@code error} target or {@code suspend}; the faults it
 * produces are the same errno, delivered by the kernel to corfs's {@code pread}.
 *
 * <p>Counts the reads it served in {@code STATE_FILE.reads} (rewritten at most every 100 ms), so a test
 * can show that a read really reached the backing.
 */
public final class FaultFs extends FuseStubFS {

    private final Path source;
    private final Path state;
    private final Map<String, FileChannel> channels = new ConcurrentHashMap<>();
    private final AtomicLong reads = new AtomicLong();

    private FaultFs(Path source, Path state) {
        this.source = source;
        this.state = state;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: FaultFs SOURCE_DIR MOUNTPOINT STATE_FILE");
            System.exit(64);
        }
        FaultFs fs = new FaultFs(Paths.get(args[0]), Paths.get(args[2]));
        Thread counter = new Thread(fs::publishReads, "faultfs-read-counter");
        counter.setDaemon(true);
        counter.start();
        fs.mount(Paths.get(args[1]), true, false, new String[] {"-o", "direct_io,use_ino,auto_unmount,fsname=faultfs"});
    }

    private void publishReads() {
        long last = -1;
        Path out = state.resolveSibling(state.getFileName() + ".reads");
        while (true) {
            long n = reads.get();
            if (n != last) {
                try {
                    Files.writeString(out, Long.toString(n));
                    last = n;
                } catch (IOException e) {
                    // try again
                }
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The current fault; blocks while it is {@code hang}. Returns null when the range may pass. */
    private String fault(long offset, long length) {
        while (true) {
            List<String> lines;
            try {
                lines = Files.readAllLines(state, StandardCharsets.UTF_8);
            } catch (IOException e) {
                lines = List.of();
            }
            boolean hang = false;
            for (String raw : lines) {
                String[] f = raw.trim().split("\\s+");
                if (f[0].equals("hang")) {
                    hang = true;
                } else if (f[0].equals("eio") && f.length == 1) {
                    return "eio";
                } else if (f[0].equals("eio") && f.length == 3) {
                    long start = Long.parseLong(f[1]);
                    long end = start + Long.parseLong(f[2]);
                    if (offset < end && start < offset + length) {
                        return "eio";
                    }
                }
            }
            if (!hang) {
                return null;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "eio";
            }
        }
    }

    /** Blocks while the state holds a {@code hang-getattr} line. */
    private void getattrFault() {
        while (true) {
            List<String> lines;
            try {
                lines = Files.readAllLines(state, StandardCharsets.UTF_8);
            } catch (IOException e) {
                lines = List.of();
            }
            if (lines.stream().noneMatch(l -> l.trim().equals("hang-getattr"))) {
                return;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private Path file(String path) {
        String name = path.substring(1);
        if (name.isEmpty() || name.contains("/")) {
            return null;
        }
        return source.resolve(name);
    }

    private FileChannel channel(String path) throws IOException {
        Path p = file(path);
        if (p == null) {
            throw new NoSuchFileException(path);
        }
        return channels.computeIfAbsent(path, k -> {
            try {
                return FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    @Override
    public int getattr(String path, FileStat stat) {
        try {
            Path p = path.equals("/") ? source : file(path);
            if (p == null) {
                return -ErrorCodes.ENOENT();
            }
            if (p != source) {
                getattrFault();
            }
            Map<String, Object> a = Files.readAttributes(p, "unix:*");
            stat.st_mode.set((Integer) a.get("mode"));
            stat.st_ino.set((Long) a.get("ino"));
            stat.st_nlink.set((Integer) a.get("nlink"));
            stat.st_uid.set((Integer) a.get("uid"));
            stat.st_gid.set((Integer) a.get("gid"));
            stat.st_size.set((Long) a.get("size"));
            stat.st_blksize.set(4096);
            stat.st_blocks.set(((Long) a.get("size") + 511) / 512);
            setTime(stat.st_mtim, (FileTime) a.get("lastModifiedTime"));
            setTime(stat.st_ctim, (FileTime) a.get("ctime"));
            setTime(stat.st_atim, (FileTime) a.get("lastAccessTime"));
            return 0;
        } catch (NoSuchFileException e) {
            return -ErrorCodes.ENOENT();
        } catch (IOException | RuntimeException e) {
            return -ErrorCodes.EIO();
        }
    }

    private static void setTime(Timespec ts, FileTime t) {
        long ns = t.to(TimeUnit.NANOSECONDS);
        ts.tv_sec.set(Math.floorDiv(ns, 1_000_000_000L));
        ts.tv_nsec.set(Math.floorMod(ns, 1_000_000_000L));
    }

    @Override
    public int readdir(String path, Pointer buf, FuseFillDir filter, @off_t long offset, FuseFileInfo fi) {
        if (!path.equals("/")) {
            return -ErrorCodes.ENOTDIR();
        }
        filter.apply(buf, ".", null, 0);
        filter.apply(buf, "..", null, 0);
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                filter.apply(buf, f.getFileName().toString(), null, 0);
            }
        } catch (IOException e) {
            return -ErrorCodes.EIO();
        }
        return 0;
    }

    @Override
    public int open(String path, FuseFileInfo fi) {
        Path p = file(path);
        return p != null && Files.isRegularFile(p) ? 0 : -ErrorCodes.ENOENT();
    }

    @Override
    public int read(String path, Pointer buf, @size_t long size, @off_t long offset, FuseFileInfo fi) {
        if (fault(offset, size) != null) {
            return -ErrorCodes.EIO();
        }
        try {
            FileChannel ch = channel(path);
            ByteBuffer dst = MemoryIO.getInstance().newDirectByteBuffer(buf.address(), (int) size);
            int total = 0;
            while (dst.hasRemaining()) {
                int n = ch.read(dst, offset + total);
                if (n < 0) {
                    break;
                }
                total += n;
            }
            reads.incrementAndGet();
            return total;
        } catch (IOException | RuntimeException e) {
            return -ErrorCodes.EIO();
        }
    }

    @Override
    public int write(String path, Pointer buf, @size_t long size, @off_t long offset, FuseFileInfo fi) {
        if (fault(offset, size) != null) {
            return -ErrorCodes.EIO();
        }
        try {
            FileChannel ch = channel(path);
            ByteBuffer src = MemoryIO.getInstance().newDirectByteBuffer(buf.address(), (int) size);
            int total = 0;
            while (src.hasRemaining()) {
                total += ch.write(src, offset + total);
            }
            return total;
        } catch (IOException | RuntimeException e) {
            return -ErrorCodes.EIO();
        }
    }

    @Override
    public int fsync(String path, int isdatasync, FuseFileInfo fi) {
        if (fault(0, Long.MAX_VALUE / 2) != null) {
            return -ErrorCodes.EIO();
        }
        try {
            channel(path).force(isdatasync == 0);
            return 0;
        } catch (IOException | RuntimeException e) {
            return -ErrorCodes.EIO();
        }
    }

    @Override
    public int flush(String path, FuseFileInfo fi) {
        return 0;
    }

    @Override
    public int release(String path, FuseFileInfo fi) {
        return 0;
    }

    @Override
    public int truncate(String path, @off_t long size) {
        return -ErrorCodes.EPERM();
    }

    /** Handle for tests: the process, its mount and its state file. */
    static final class Handle implements AutoCloseable {
        final Path mountPoint;
        final Path stateFile;
        private final Process process;
        private boolean closed;

        private Handle(Path mountPoint, Path stateFile, Process process) {
            this.mountPoint = mountPoint;
            this.stateFile = stateFile;
            this.process = process;
        }

        /**
         * Starts FaultFs over {@code sourceDir} at {@code mountPoint} and waits (10 s) until the kernel shows
         * the mount. The fixture closes it after the test, after corfs's own mounts are gone.
         */
        static Handle start(CorfsFixture fx, Path sourceDir, Path mountPoint) throws IOException {
            Files.createDirectories(mountPoint);
            Path stateFile = fx.dir().resolve("faultfs-" + mountPoint.getFileName() + ".state");
            Files.writeString(stateFile, "ok\n");
            String java = ProcessHandle.current().info().command().orElse("java");
            Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                    FaultFs.class.getName(), sourceDir.toString(), mountPoint.toString(), stateFile.toString())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectOutput(fx.dir().resolve("faultfs.out").toFile())
                    .redirectError(fx.dir().resolve("faultfs.err").toFile())
                    .start();
            Handle h = new Handle(mountPoint, stateFile, p);
            fx.onTeardown("FaultFs at " + mountPoint, h);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!"fuse.faultfs".equals(CorfsFixture.mountType(mountPoint))
                    && !"fuse".equals(CorfsFixture.mountType(mountPoint))) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    throw new AssertionError("FaultFs did not mount at " + mountPoint + ": "
                            + Files.readString(fx.dir().resolve("faultfs.err")));
                }
                CorfsFixture.sleep(50);
            }
            return h;
        }

        /** Replaces the fault state (see {@link FaultFs}); takes effect on the next read. */
        void set(String stateText) throws IOException {
            Path tmp = stateFile.resolveSibling(stateFile.getFileName() + ".tmp");
            Files.writeString(tmp, stateText + "\n");
            Files.move(tmp, stateFile, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }

        /** Reads served so far (lags up to 100 ms). */
        long reads() {
            try {
                return Long.parseLong(Files.readString(stateFile.resolveSibling(stateFile.getFileName() + ".reads"))
                        .trim());
            } catch (IOException | NumberFormatException e) {
                return 0;
            }
        }

        /** Heals, unmounts ({@code fusermount -u}, lazily if busy) and waits for the process (10 s, then kill). */
        @Override
        public void close() throws Exception {
            if (closed) {
                return;
            }
            closed = true;
            set("ok");
            for (String[] cmd : new String[][] {{CorfsFixture.fusermount(), "-u", mountPoint.toString()},
                    {CorfsFixture.fusermount(), "-u", "-z", mountPoint.toString()}}) {
                if (!CorfsFixture.isMounted(mountPoint)) {
                    break;
                }
                Process u = new ProcessBuilder(cmd).redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
                u.waitFor(30, TimeUnit.SECONDS);
            }
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
            if (CorfsFixture.isMounted(mountPoint)) {
                throw new IllegalStateException("FaultFs still mounted at " + mountPoint);
            }
        }
    }

    /** Lines for {@link Handle#set}: EIO on each {@code {start, length}} range. */
    static String eioRanges(long[]... ranges) {
        List<String> lines = new ArrayList<>();
        for (long[] r : ranges) {
            lines.add("eio " + r[0] + " " + r[1]);
        }
        return String.join("\n", lines);
    }
}
