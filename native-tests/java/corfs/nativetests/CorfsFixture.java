package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Everything a native test needs to drive corfs the way a user does: the {@code bin/corfs} launcher and
 * real tools as subprocesses, in a fresh directory per test.
 *
 * <p>Register it with {@code @RegisterExtension final CorfsFixture fx = new CorfsFixture();}. Before each
 * test it skips (an assumption, not a failure) when {@code /dev/fuse} or {@code fusermount} is missing and
 * makes a temp directory. After each test, whatever happened, it unmounts every mount point it handed
 * out ({@code fusermount -u}, then {@code -u -z}), kills any corfs daemon still serving one, and then
 * fails the test if {@code /proc/mounts} still shows a mount under its directory: a test that leaves a
 * mount behind is a bug.
 *
 * <p>Every subprocess runs with a timeout, its stdin from {@code /dev/null} and its output in files (so a
 * daemon that inherits them never blocks a pipe). Not thread-safe except {@link #run}, {@link #status}
 * and the read-only helpers, which tests may call from several threads.
 */
public final class CorfsFixture implements BeforeEachCallback, AfterEachCallback {

    /** Default bound for one corfs CLI command. */
    public static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);

    private static final Path REPO = Paths.get(System.getProperty("corfs.home", System.getProperty("user.dir")))
            .toAbsolutePath();
    private static Path snapshotHome;
    private Path home;
    private final Set<Path> mountPoints = new LinkedHashSet<>();
    private final Set<Long> daemonPids = new LinkedHashSet<>();
    private final java.util.Deque<Map.Entry<String, AutoCloseable>> teardowns = new java.util.ArrayDeque<>();
    private Path dir;
    private Path logs;
    private int commandCounter;

    /** What a finished subprocess left: its exit status and output. */
    public record Result(List<String> command, int exit, String stdout, String stderr) {
        public Result assertOk() {
            if (exit != 0) {
                fail("expected success: " + this);
            }
            return this;
        }

        public Result assertFails() {
            if (exit == 0) {
                fail("expected failure: " + this);
            }
            return this;
        }

        @Override
        public String toString() {
            return String.join(" ", command) + " -> exit " + exit
                    + (stdout.isBlank() ? "" : "\n--- stdout ---\n" + tail(stdout))
                    + (stderr.isBlank() ? "" : "\n--- stderr ---\n" + tail(stderr));
        }

        private static String tail(String s) {
            return s.length() <= 4000 ? s : "..." + s.substring(s.length() - 4000);
        }
    }

    // ------------------------------------------------------------------ lifecycle

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        assumeTrue(Files.exists(Paths.get("/dev/fuse")), "no /dev/fuse: FUSE tests skipped");
        assumeTrue(onPath("fusermount") || onPath("fusermount3"), "no fusermount: FUSE tests skipped");
        String name = context.getRequiredTestClass().getSimpleName() + "-"
                + context.getTestMethod().map(m -> m.getName()).orElse("test");
        home = snapshotHome();
        dir = Files.createTempDirectory("corfs-it-" + name + "-");
        logs = Files.createDirectories(dir.resolve("logs"));
    }

    @Override
    public void afterEach(ExtensionContext context) throws Exception {
        if (dir == null) {
            return;
        }
        List<String> problems = new ArrayList<>();
        List<Path> mounts = new ArrayList<>(mountPoints);
        java.util.Collections.reverse(mounts);
        for (Path mnt : mounts) {
            try {
                forceUnmount(mnt);
            } catch (RuntimeException | IOException e) {
                problems.add("cleaning " + mnt + ": " + e);
            }
        }
        for (long pid : daemonPids) {
            if (isLiveProcess(pid)) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
                problems.add("corfs daemon " + pid + " was still alive after unmount; killed");
            }
        }
        while (!teardowns.isEmpty()) {
            Map.Entry<String, AutoCloseable> t = teardowns.pop();
            try {
                t.getValue().close();
            } catch (Exception | AssertionError e) {
                problems.add("undoing " + t.getKey() + ": " + e);
            }
        }
        if (context.getExecutionException().isPresent()) {
            try (Stream<Path> files = Files.list(dir)) {
                for (Path log : files.filter(f -> f.toString().endsWith(".log")).toList()) {
                    List<String> lines = Files.readAllLines(log);
                    System.err.println("[CorfsFixture] " + context.getDisplayName() + ": last lines of " + log + ":\n  "
                            + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 40), lines.size())));
                }
            } catch (IOException | RuntimeException e) {
                System.err.println("[CorfsFixture] cannot show daemon logs: " + e);
            }
        }
        List<String> left = mountsUnder(dir);
        if (left.isEmpty()) {
            deleteRecursively(dir);
        } else {
            problems.add("mounts left behind under " + dir + ": " + left + " (directory kept)");
        }
        mountPoints.clear();
        daemonPids.clear();
        teardowns.clear();
        if (!left.isEmpty()) {
            fail(String.join("\n", problems));
        }
        if (!problems.isEmpty()) {
            System.err.println("[CorfsFixture] teardown of " + context.getDisplayName() + ": " + problems);
        }
    }

    /**
     * Registers something a test set up beside corfs (a FUSE fault layer, a tmpfs or loop mount, a loop
     * device, a user) to be undone after the test, whatever happened: after every corfs mount of the test is
     * unmounted and its daemons are gone (which may still hold files there), before the check for mounts
     * left behind. Runs in reverse order of registration; a failure is reported and the others still run.
     */
    public void onTeardown(String what, AutoCloseable undo) {
        teardowns.push(Map.entry(what, undo));
    }

    /**
     * After the daemon was killed: {@code fusermount -u -z MNT} if the kernel still shows the mount (it may
     * already be gone when the daemon mounted with auto_unmount); asserts it is gone.
     */
    public void clearDeadMount(Path mnt) {
        if (isMounted(mnt)) {
            Result r = run(Duration.ofSeconds(30), fusermount(), "-u", "-z", mnt.toString());
            // a failure is fine if auto_unmount removed the mount meanwhile
            assertTrue(!isMounted(mnt), "dead mount at " + mnt + " not cleared: " + r);
        }
    }

    /** Unmounts {@code mnt} whatever state it is in: clean, busy or dead. Waits for its daemon to go. */
    public void forceUnmount(Path mnt) throws IOException {
        List<Long> pids = daemonPidsFor(mnt);
        if (isMounted(mnt)) {
            run(Duration.ofSeconds(30), fusermount(), "-u", mnt.toString());
        }
        if (isMounted(mnt)) {
            run(Duration.ofSeconds(30), fusermount(), "-u", "-z", mnt.toString());
        }
        pids.addAll(daemonPidsFor(mnt));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        for (long pid : pids) {
            while (isLiveProcess(pid) && System.nanoTime() < deadline) {
                sleep(50);
            }
            if (isLiveProcess(pid)) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            }
        }
    }

    // ------------------------------------------------------------------ paths and processes

    /**
     * A private copy of {@code bin/corfs} and {@code target/corfs.jar}, taken once per JVM, so that a
     * {@code mvn package} running in the same tree meanwhile cannot swap the jar under a running test. The
     * launcher finds the jar relative to itself, so the copy runs exactly as the original would.
     */
    private static synchronized Path snapshotHome() throws IOException {
        if (snapshotHome != null) {
            return snapshotHome;
        }
        Path jar = REPO.resolve("target/corfs.jar");
        Path launcher = REPO.resolve("bin/corfs");
        assertTrue(Files.isExecutable(launcher), launcher + " is missing or not executable");
        assertTrue(Files.isRegularFile(jar), jar + " is not built (run mvn package)");
        Path snap = Files.createTempDirectory("corfs-it-home-");
        Files.createDirectories(snap.resolve("bin"));
        Files.createDirectories(snap.resolve("target"));
        Files.copy(launcher, snap.resolve("bin/corfs"));
        for (int attempt = 0; ; attempt++) {
            Files.copy(jar, snap.resolve("target/corfs.jar"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            try (java.util.jar.JarFile jf = new java.util.jar.JarFile(snap.resolve("target/corfs.jar").toFile())) {
                if (jf.getManifest() != null && jf.getManifest().getMainAttributes().getValue("Main-Class") != null) {
                    break;
                }
            } catch (IOException e) {
                // being rewritten by a build: try again
            }
            if (attempt > 50) {
                fail(jar + " is not a runnable jar");
            }
            sleep(200);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                deleteRecursively(snap);
            } catch (IOException e) {
                // best effort
            }
        }, "corfs-it-home-cleanup"));
        snapshotHome = snap;
        return snap;
    }

    /** The test's own directory (deleted after the test when nothing is left mounted in it). */
    public Path dir() {
        return dir;
    }

    /** The repository root. */
    public Path repo() {
        return REPO;
    }

    public Path launcher() {
        return home.resolve("bin/corfs");
    }

    /** Runs {@code bin/corfs ARGS} with the default timeout. */
    public Result corfs(String... args) {
        return corfs(COMMAND_TIMEOUT, args);
    }

    public Result corfs(Duration timeout, String... args) {
        assertTrue(Files.isExecutable(launcher()), launcher() + " is missing or not executable");
        List<String> cmd = new ArrayList<>();
        cmd.add(launcher().toString());
        cmd.addAll(Arrays.asList(args));
        return run(timeout, cmd.toArray(String[]::new));
    }

    /** Runs {@code sh -c SCRIPT}. */
    public Result sh(String script) {
        return run(COMMAND_TIMEOUT, "sh", "-c", script);
    }

    /**
     * Runs a command with a timeout. On timeout the command and everything it started are killed and the
     * test fails with what it printed so far.
     */
    public Result run(Duration timeout, String... command) {
        return run(timeout, Map.of(), command);
    }

    /**
     * {@code corfs ARGS} with changes to the environment: a null value removes the variable (e.g.
     * {@code XDG_RUNTIME_DIR}); {@code CORFS_JAVA_OPTS} reaches the JVM, and a daemon inherits its {@code -D}s.
     */
    public Result corfsWithEnv(Map<String, String> env, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(launcher().toString());
        cmd.addAll(Arrays.asList(args));
        return run(COMMAND_TIMEOUT, env, cmd.toArray(String[]::new));
    }

    /** {@link #run(Duration, String...)} with changes to the environment (a null value removes the variable). */
    public Result run(Duration timeout, Map<String, String> env, String... command) {
        int n;
        synchronized (this) {
            n = ++commandCounter;
        }
        Path out = logs.resolve(n + ".out");
        Path err = logs.resolve(n + ".err");
        ProcessBuilder pb = new ProcessBuilder(command)
                .directory(dir.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(out.toFile())
                .redirectError(err.toFile());
        env.forEach((k, v) -> {
            if (v == null) {
                pb.environment().remove(k);
            } else {
                pb.environment().put(k, v);
            }
        });
        try {
            Process p = pb.start();
            boolean finished;
            try {
                finished = p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                throw e;
            }
            if (!finished) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                fail("timed out after " + timeout + ": " + new Result(List.of(command), -1, read(out), read(err)));
            }
            return new Result(List.of(command), p.exitValue(), read(out), read(err));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + List.of(command), e);
        } catch (InterruptedException e) {
            // assertTimeoutPreemptively gave up on the test: do not leave the command running.
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + List.of(command), e);
        }
    }

    private static String read(Path p) {
        try {
            return Files.readString(p, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "<unreadable: " + e + ">";
        }
    }

    static boolean onPath(String tool) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String d : path.split(":")) {
            if (Files.isExecutable(Paths.get(d, tool))) {
                return true;
            }
        }
        return Files.isExecutable(Paths.get("/usr/sbin", tool)) || Files.isExecutable(Paths.get("/sbin", tool));
    }

    static String fusermount() {
        return onPath("fusermount") ? "fusermount" : "fusermount3";
    }

    // ------------------------------------------------------------------ images

    /**
     * Makes a backing of {@code size} bytes from {@code seed}: runs of random data, holes (never written,
     * sparse), written zeros and a repeating byte, in random order and lengths (4 KiB to 1 MiB, not
     * aligned to clusters). The same seed always gives the same bytes.
     */
    public Path makeBacking(String name, long size, long seed) throws IOException {
        Path p = dir.resolve(name);
        Random r = new Random(seed);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            long pos = 0;
            while (pos < size) {
                int len = (int) Math.min(size - pos, 4096 + r.nextInt(1 << 20));
                int kind = r.nextInt(10);
                if (kind < 2) {
                    pos += len; // hole
                    continue;
                }
                byte[] b = new byte[len];
                if (kind < 7) {
                    r.nextBytes(b);
                } else if (kind < 9) {
                    Arrays.fill(b, (byte) (1 + r.nextInt(255)));
                } // else: written zeros
                ch.write(ByteBuffer.wrap(b), pos);
                pos += len;
            }
        }
        try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
            raf.setLength(size);
        }
        return p;
    }

    /** {@code corfs create --backing BACKING [EXTRA...] dir/LEAFNAME}, asserted to succeed. */
    public Path createLeaf(Path backing, String leafName, String... extra) {
        Path leaf = dir.resolve(leafName);
        List<String> args = new ArrayList<>(List.of("create", "--backing", backing.toString()));
        args.addAll(Arrays.asList(extra));
        args.add(leaf.toString());
        corfs(args.toArray(String[]::new)).assertOk();
        assertTrue(Files.exists(leaf), "create made no " + leaf);
        assertTrue(Files.exists(metadataOf(leaf)), "create made no " + metadataOf(leaf));
        return leaf;
    }

    public static Path metadataOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + ".corfs");
    }

    /** A fresh, empty mount point directory in the test's directory, torn down after the test. */
    public Path newMountPoint(String name) throws IOException {
        Path mnt = Files.createDirectories(dir.resolve(name));
        mountPoints.add(mnt);
        return mnt;
    }

    /** Runs {@code corfs mount [OPTIONS...] LEAVES... MNT} (no assertion); MNT is torn down after the test. */
    public Result tryMount(Path mnt, List<String> options, Path... leaves) {
        mountPoints.add(mnt);
        List<String> args = new ArrayList<>();
        args.add("mount");
        args.addAll(options);
        for (Path leaf : leaves) {
            args.add(leaf.toString());
        }
        args.add(mnt.toString());
        Result r = corfs(args.toArray(String[]::new));
        if (r.exit() == 0) {
            daemonPids.addAll(daemonPidsFor(mnt));
        }
        return r;
    }

    /** Mounts and asserts that the CLI succeeded and that the kernel shows a fuse.corfs mount at MNT. */
    public Path mount(Path mnt, List<String> options, Path... leaves) {
        Result r = tryMount(mnt, options, leaves);
        r.assertOk();
        String type = mountType(mnt);
        assertEquals("fuse.corfs", type, "mount returned 0 but /proc/mounts shows " + type + " at " + mnt
                + "; " + r);
        return mnt;
    }

    public Path mount(Path mnt, Path... leaves) {
        return mount(mnt, List.of(), leaves);
    }

    /** {@code corfs umount MNT}, asserted: exit 0, gone from /proc/mounts, its daemon exited. */
    public void umount(Path mnt) {
        List<Long> pids = daemonPidsFor(mnt);
        corfs("umount", mnt.toString()).assertOk();
        assertTrue(!isMounted(mnt), "corfs umount returned 0 but " + mnt + " is still mounted");
        for (long pid : pids) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (isLiveProcess(pid)) {
                if (System.nanoTime() > deadline) {
                    fail("daemon " + pid + " still alive 5 s after corfs umount " + mnt + " returned");
                }
                sleep(50);
            }
        }
    }

    /** True if the process exists and is not a zombie. */
    public static boolean isLiveProcess(long pid) {
        try {
            String stat = Files.readString(Paths.get("/proc", Long.toString(pid), "stat"));
            int close = stat.lastIndexOf(')');
            return close > 0 && stat.length() > close + 2 && stat.charAt(close + 2) != 'Z';
        } catch (IOException e) {
            return false;
        }
    }

    // ------------------------------------------------------------------ mount table and daemons

    /** The fstype /proc/mounts shows at {@code mnt}, or null. */
    public static String mountType(Path mnt) {
        String want = mnt.toAbsolutePath().toString();
        for (String[] f : procMounts()) {
            if (f[1].equals(want)) {
                return f[2];
            }
        }
        return null;
    }

    public static boolean isMounted(Path mnt) {
        return mountType(mnt) != null;
    }

    /** Mount points under {@code root} that /proc/mounts shows, with their types. */
    public static List<String> mountsUnder(Path root) {
        String prefix = root.toAbsolutePath() + "/";
        List<String> out = new ArrayList<>();
        for (String[] f : procMounts()) {
            if (f[1].startsWith(prefix)) {
                out.add(f[1] + " (" + f[2] + ")");
            }
        }
        return out;
    }

    private static List<String[]> procMounts() {
        try {
            List<String[]> out = new ArrayList<>();
            for (String line : Files.readAllLines(Paths.get("/proc/mounts"))) {
                String[] f = line.split(" ");
                if (f.length >= 3) {
                    f[1] = unescapeMount(f[1]);
                    out.add(f);
                }
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String unescapeMount(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()) {
                b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    /**
     * The processes serving {@code mnt}: every process but this JVM whose command line names the mount
     * point (the daemon gets it as an argument). Java processes only, so that a {@code cat} or
     * {@code sh} the test happens to run on the mount is not mistaken for the daemon.
     */
    public static List<Long> daemonPidsFor(Path mnt) {
        String want = mnt.toAbsolutePath().toString();
        long self = ProcessHandle.current().pid();
        List<Long> out = new ArrayList<>();
        try (Stream<Path> procs = Files.list(Paths.get("/proc"))) {
            procs.filter(p -> p.getFileName().toString().chars().allMatch(Character::isDigit)).forEach(p -> {
                long pid = Long.parseLong(p.getFileName().toString());
                if (pid == self) {
                    return;
                }
                try {
                    byte[] raw = Files.readAllBytes(p.resolve("cmdline"));
                    String[] args = new String(raw, StandardCharsets.UTF_8).split("\0");
                    if (args.length == 0 || !args[0].contains("java")) {
                        return;
                    }
                    for (String a : args) {
                        if (a.equals(want) || a.endsWith("=" + want)) {
                            out.add(pid);
                            return;
                        }
                    }
                } catch (IOException | RuntimeException e) {
                    // the process went away meanwhile
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    // ------------------------------------------------------------------ status

    /** {@code cat MNT/control}, parsed: image name to its fields, in order. */
    public Map<String, Map<String, String>> status(Path mnt) {
        Result r = run(Duration.ofSeconds(30), "cat", mnt.resolve("control").toString()).assertOk();
        return parseStatus(r.stdout());
    }

    /** One leaf's status fields; fails if the image is not listed. */
    public Map<String, String> status(Path mnt, String image) {
        Map<String, Map<String, String>> all = status(mnt);
        Map<String, String> s = all.get(image);
        if (s == null) {
            fail("status has no image " + image + ": " + all);
        }
        return s;
    }

    public static Map<String, Map<String, String>> parseStatus(String text) {
        Map<String, Map<String, String>> out = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            Map<String, String> fields = new LinkedHashMap<>();
            int errorAt = line.indexOf(" error=");
            String head = errorAt >= 0 ? line.substring(0, errorAt) : line;
            for (String kv : head.trim().split(" +")) {
                int eq = kv.indexOf('=');
                if (eq > 0) {
                    fields.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
            }
            if (errorAt >= 0) {
                fields.put("error", line.substring(errorAt + " error=".length()));
            }
            out.put(fields.getOrDefault("image", "?"), fields);
        }
        return out;
    }

    /**
     * Polls {@code cat MNT/control} until the image's fields satisfy {@code until}, or fails after
     * {@code timeout} with the last status seen.
     */
    public Map<String, String> awaitStatus(Path mnt, String image, Duration timeout, String what,
            Predicate<Map<String, String>> until) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Map<String, String> last = null;
        while (true) {
            last = status(mnt, image);
            if (until.test(last)) {
                return last;
            }
            if (System.nanoTime() > deadline) {
                fail("status of " + image + " never became " + what + " within " + timeout + "; last: " + last);
            }
            sleep(100);
        }
    }

    /** Waits until the image's job is {@code state} (e.g. "completed"); fails early on failed/cancelled. */
    public Map<String, String> awaitJobState(Path mnt, String image, String state, Duration timeout) {
        return awaitStatus(mnt, image, timeout, "state=" + state, s -> {
            String st = s.get("state");
            if (!state.equals(st) && ("failed".equals(st) || "cancelled".equals(st))) {
                fail("job ended in state " + st + " while waiting for " + state + ": " + s);
            }
            return state.equals(st);
        });
    }

    /**
     * Writes {@code line} to MNT/control from a shell: {@code sh -c '/bin/echo LINE > MNT/control'}.
     * Coreutils' echo is used because dash's built-in one reports every write error as "I/O error",
     * while coreutils prints the errno's own message ("Invalid argument", ...).
     */
    public Result control(Path mnt, String line) {
        return run(Duration.ofSeconds(30), "sh", "-c", "/bin/echo \"$1\" > \"$2\"", "sh", line,
                mnt.resolve("control").toString());
    }

    // ------------------------------------------------------------------ content

    /** {@code cmp A B}, asserted equal (cmp's report in the failure message). */
    public void assertSameContent(Path a, Path b) {
        Result r = run(Duration.ofMinutes(5), "cmp", a.toString(), b.toString());
        if (r.exit() != 0) {
            fail("content differs: " + r);
        }
    }

    /**
     * Fills the first {@code size} bytes of {@code file} with random data of {@code seed}, 1 MiB at a time:
     * no holes or zero clusters, so every cluster is a real read of a backing made of it.
     */
    public static void fillRandom(Path file, long size, long seed) throws IOException {
        Random r = new Random(seed);
        byte[] b = new byte[1 << 20];
        for (long pos = 0; pos < size; pos += b.length) {
            r.nextBytes(b);
            pwrite(file, pos, b);
        }
    }

    /**
     * {@code dd iflag=direct} of {@code length} bytes at {@code offset} of an exposed file, in 64 KiB
     * requests, so that each reaches the daemon; the bytes (if it worked) in {@code out}.
     */
    public Result directRead(Path img, long offset, int length, Path out) {
        return run(Duration.ofSeconds(60), "dd", "if=" + img, "of=" + out, "bs=65536",
                "iflag=direct,skip_bytes,count_bytes", "skip=" + offset, "count=" + length, "status=none");
    }

    /** Writes {@code data} at {@code offset} of {@code file} in place (the model side of a dd). */
    public static void pwrite(Path file, long offset, byte[] data) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) {
                ch.write(b, offset + b.position());
            }
        }
    }

    public static byte[] pread(Path file, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(length);
            while (b.hasRemaining()) {
                int n = ch.read(b, offset + b.position());
                if (n < 0) {
                    break;
                }
            }
            return Arrays.copyOf(b.array(), b.position());
        }
    }

    /**
     * Writes {@code data} at {@code offset} of {@code target} with
     * {@code dd if=PATCH of=TARGET bs=LEN count=1 seek=OFFSET oflag=seek_bytes conv=notrunc[,fsync]}.
     */
    public Result dd(Path target, long offset, byte[] data, boolean fsync) throws IOException {
        Path patch = Files.createTempFile(dir, "patch-", ".bin");
        Files.write(patch, data);
        try {
            return run(Duration.ofSeconds(60), "dd", "if=" + patch, "of=" + target, "bs=" + data.length, "count=1",
                    "iflag=fullblock", "seek=" + offset, "oflag=seek_bytes",
                    "conv=notrunc" + (fsync ? ",fsync" : ""), "status=none");
        } finally {
            Files.deleteIfExists(patch);
        }
    }

    public static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    private static void deleteRecursively(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
