package corfs.engine;

import corfs.backing.Backing;
import corfs.image.LeafHeader;
import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.io.FileOps;
import corfs.io.PortableFileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Power-cut simulation (issue 3, "Crash consistency"). The engine runs on a file layer that records
 * every positional write and every fsync of every file (leaf data, metadata, backing) in one ordered
 * list. Then, for each cut point k, the three files are rebuilt from their initial contents with
 * (a) only the writes made durable before k (a write to F is durable if a force of F follows it before
 * k), and (b) those plus a random subset of the non-durable ones (disks reorder). Each rebuilt state is
 * checked without repair ({@link LeafImages#check}), reopened, and every byte of the disk must equal
 * its value at the last acknowledged flush before k or a value a guest write made after it. In the
 * commit phase the backing holds each dirty cluster old or new, the leaf reads the newest data, and
 * re-running the commit steps finishes the job.
 *
 * <p>Writes are applied whole (no torn writes): a write either survives the cut or does not.
 */
@DisplayName("Power cut at every point of a recorded write/fsync sequence")
class PowerCutTest {
    private static final int SIZE = 1024 * 1024 + 12345;
    private static final int CLUSTER = 4096;
    private static final int MAX_CUTS = 350;

    @TempDir
    Path dir;

    enum Scenario {
        /** COR reads, guest writes, zeroing, flushes, partial streams, then a commit, then more writes. */
        COMMIT,
        /** The same mix, then a stream of everything and the standalone flag. */
        STREAM_TO_STANDALONE,
        /**
         * As STREAM_TO_STANDALONE, with the stream's fills copied from the backing into the leaf "in the
         * kernel" ({@link FileOps.SparseFile#copyTo}, modelled as a recorded write of the leaf).
         */
        STREAM_IN_KERNEL
    }

    // ------------------------------------------------------------------ the recording file layer

    /** One recorded event: a write of {@code bytes} at {@code offset}, or a force when bytes is null. */
    record Event(int file, long offset, byte[] bytes, FileTime mtimeAfter) {
        boolean isForce() {
            return bytes == null;
        }
    }

    /**
     * Wraps every channel opened through {@link #openChannel} so that each positional write and each
     * force is logged in one global order and applied to the real file too. Holes are punched as
     * written zeros by {@link PortableFileOps}, through a recorded channel, so they are part of the log.
     */
    static final class RecordingFileOps extends PortableFileOps {
        private final List<Path> files = new ArrayList<>();
        private final List<Event> events = new ArrayList<>();
        private final boolean copies;

        RecordingFileOps(boolean copies) {
            this.copies = copies;
        }

        /**
         * With {@code copies}, open files copy between each other like {@code copy_file_range}: the bytes
         * go from this file's channel through the target's recorded channel, so a copy is a logged write.
         */
        @Override
        public SparseFile open(Path path, boolean writable) throws IOException {
            SparseFile base = super.open(path, writable);
            if (!copies) {
                return base;
            }
            FileChannel channel = writable
                    ? openChannel(path, StandardOpenOption.READ, StandardOpenOption.WRITE)
                    : openChannel(path, StandardOpenOption.READ);
            return new CopyingFile(base, channel);
        }

        /** A portable sparse file that can copy to another one (see {@link #open}). */
        record CopyingFile(SparseFile base, FileChannel channel) implements SparseFile {
            @Override
            public boolean copySupported() {
                return true;
            }

            @Override
            public long copyTo(long offset, SparseFile target, long targetOffset, long length) throws IOException {
                if (!(target instanceof CopyingFile t)) {
                    return -1;
                }
                ByteBuffer buf = ByteBuffer.allocate((int) Math.min(length, 1 << 20));
                int n = channel.read(buf, offset);
                if (n <= 0) {
                    return 0;
                }
                buf.flip();
                long pos = targetOffset;
                while (buf.hasRemaining()) {
                    pos += t.channel.write(buf, pos);
                }
                return n;
            }

            @Override
            public void punchHole(long offset, long length) throws IOException {
                base.punchHole(offset, length);
            }

            @Override
            public long nextData(long offset) throws IOException {
                return base.nextData(offset);
            }

            @Override
            public long nextHole(long offset) throws IOException {
                return base.nextHole(offset);
            }

            @Override
            public long allocatedBytes() throws IOException {
                return base.allocatedBytes();
            }

            @Override
            public void close() throws IOException {
                try (FileChannel c = channel) {
                    base.close();
                }
            }
        }

        synchronized int fileId(Path path) {
            Path p = path.toAbsolutePath().normalize();
            int i = files.indexOf(p);
            if (i < 0) {
                files.add(p);
                i = files.size() - 1;
            }
            return i;
        }

        synchronized int eventCount() {
            return events.size();
        }

        synchronized List<Event> events() {
            return List.copyOf(events);
        }

        synchronized List<Path> files() {
            return List.copyOf(files);
        }

        @Override
        public FileChannel openChannel(Path path, OpenOption... options) throws IOException {
            int id = fileId(path);
            return new DelegatingFileChannel(path, FileChannel.open(path, options)) {
                @Override
                public int write(ByteBuffer src, long position) throws IOException {
                    synchronized (RecordingFileOps.this) {
                        ByteBuffer copy = src.duplicate();
                        int n = inner.write(src, position);
                        byte[] bytes = new byte[n];
                        copy.get(bytes);
                        events.add(new Event(id, position, bytes, Files.getLastModifiedTime(path)));
                        return n;
                    }
                }

                @Override
                public void force(boolean metaData) throws IOException {
                    synchronized (RecordingFileOps.this) {
                        inner.force(metaData);
                        events.add(new Event(id, -1, null, null));
                    }
                }
            };
        }
    }

    // ------------------------------------------------------------------ the model

    /** A guest write (or zeroing) that began when the log held {@code startEvent} events. */
    record GuestOp(int startEvent, long offset, byte[] data) {
    }

    /** A flush that returned when the log held {@code event} events, and the disk it acknowledged. */
    record Ack(int event, byte[] snapshot) {
    }

    /** What the workload did, for the checks. */
    record Run(List<GuestOp> ops, List<Ack> acks, int commitStart, int commitEnd, byte[] atCommit,
               boolean[] dirtyAtCommit, byte[] originalBacking) {
    }

    // ------------------------------------------------------------------ the test

    @ParameterizedTest(name = "{0}")
    @EnumSource(Scenario.class)
    @DisplayName("every cut point, durable writes only and with a random subset of the rest, obeys the flush rule")
    void everyCutPoint(Scenario scenario) {
        long seed = Long.getLong("corfs.seed", System.nanoTime());
        assertTimeoutPreemptively(Duration.ofSeconds(300), () -> runScenario(scenario, seed),
                () -> scenario + " (seed " + seed + ")");
    }

    private void runScenario(Scenario scenario, long seed) throws Exception {
        Random random = new Random(seed);
        Path backing = dir.resolve("base.raw");
        byte[] original = TestLeaves.writeBacking(backing, SIZE, seed);
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, false);
        Path meta = LeafImage.metadataPathOf(leaf);

        RecordingFileOps rec = new RecordingFileOps(scenario == Scenario.STREAM_IN_KERNEL);
        Map<Integer, byte[]> initial = new HashMap<>();
        Map<Integer, FileTime> initialMtime = new HashMap<>();
        for (Path p : List.of(leaf, meta, backing)) {
            int id = rec.fileId(p);
            initial.put(id, Files.readAllBytes(p));
            initialMtime.put(id, Files.getLastModifiedTime(p));
        }

        Run run = workload(scenario, random, leaf, rec, original, seed);
        List<Event> events = rec.events();
        List<Path> files = rec.files();
        assertEquals(3, files.size(), "only the leaf, its metadata and the backing are written: " + files);

        // cut points: all when few, else every point around a force plus a random sample
        TreeSet<Integer> cuts = new TreeSet<>();
        cuts.add(0);
        cuts.add(events.size());
        if (events.size() + 1 <= MAX_CUTS) {
            for (int k = 0; k <= events.size(); k++) {
                cuts.add(k);
            }
        } else {
            List<Integer> forces = new ArrayList<>();
            for (int i = 0; i < events.size(); i++) {
                if (events.get(i).isForce()) {
                    forces.add(i);
                }
            }
            while (cuts.size() < MAX_CUTS / 2 && !forces.isEmpty()) {
                int f = forces.remove(random.nextInt(forces.size()));
                cuts.add(f);
                cuts.add(f + 1);
            }
            while (cuts.size() < MAX_CUTS) {
                cuts.add(random.nextInt(events.size() + 1));
            }
        }

        // replay: durable contents advance incrementally (all durable writes of F precede its pending ones)
        Map<Integer, byte[]> durable = new HashMap<>();
        Map<Integer, FileTime> durableMtime = new HashMap<>(initialMtime);
        Map<Integer, List<Event>> pending = new HashMap<>();
        for (var e : initial.entrySet()) {
            durable.put(e.getKey(), e.getValue().clone());
            pending.put(e.getKey(), new ArrayList<>());
        }
        int applied = 0;
        int tried = 0;
        for (int k : cuts) {
            for (; applied < k; applied++) {
                Event e = events.get(applied);
                if (e.isForce()) {
                    for (Event w : pending.get(e.file())) {
                        apply(durable.get(e.file()), w);
                        durableMtime.put(e.file(), w.mtimeAfter());
                    }
                    pending.get(e.file()).clear();
                } else {
                    pending.get(e.file()).add(e);
                }
            }
            for (int variant = 0; variant < 2; variant++) {
                Random subset = new Random(seed ^ (31L * k + variant));
                for (int f = 0; f < files.size(); f++) {
                    byte[] content = durable.get(f).clone();
                    FileTime mtime = durableMtime.get(f);
                    if (variant == 1) {
                        for (Event w : pending.get(f)) {
                            if (subset.nextBoolean()) {
                                apply(content, w);
                                mtime = w.mtimeAfter();
                            }
                        }
                    }
                    rewrite(files.get(f), content, mtime);
                }
                String where = scenario + " cut " + k + "/" + events.size() + (variant == 0 ? " durable only"
                        : " with a random subset of unsynced writes") + " (seed " + seed + ")";
                verifyCut(run, k, leaf, backing, where);
                tried++;
            }
        }
        System.out.printf("PowerCutTest %s: %d events, %d cut points, %d cut states checked (seed %d)%n",
                scenario, events.size(), cuts.size(), tried, seed);
        assertTrue(tried >= 2 * Math.min(MAX_CUTS, events.size() + 1) - 2);
    }

    private Run workload(Scenario scenario, Random random, Path leaf, RecordingFileOps rec, byte[] original,
                         long seed) throws IOException {
        byte[] model = original.clone();
        List<GuestOp> ops = new ArrayList<>();
        List<Ack> acks = new ArrayList<>();
        acks.add(new Ack(0, original.clone()));
        int commitStart = Integer.MAX_VALUE;
        int commitEnd = Integer.MAX_VALUE;
        byte[] atCommit = null;
        boolean[] dirtyAtCommit = null;
        try (LeafDisk disk = TestLeaves.open(leaf, rec)) {
            int clusters = (int) disk.clusters();
            assertEquals(scenario == Scenario.STREAM_IN_KERNEL, disk.copiesInKernel(), "copies in the kernel");
            mixedOps(disk, random, rec, model, ops, acks, 120, seed);
            disk.flush();
            acks.add(new Ack(rec.eventCount(), model.clone()));
            if (scenario == Scenario.COMMIT) {
                commitStart = rec.eventCount();
                atCommit = model.clone();
                dirtyAtCommit = new boolean[clusters];
                for (int c = 0; c < clusters; c++) {
                    dirtyAtCommit[c] = disk.image().dirty().get(c);
                }
                assertTrue(disk.dirtyBytes() > 0, "the workload leaves something to commit");
                var running = new LeafHeader.JobRecord(JobKind.COMMIT, JobState.RUNNING, 0, OnError.STOP, null);
                disk.image().updateHeader(h -> h.withJob(running));
                try (Backing.Writer writer = disk.backing().openWriter()) {
                    List<long[]> copied = new ArrayList<>();
                    for (int first = 0; first < clusters; first += 24) {
                        copied.add(disk.copyDirtyToBacking(first, Math.min(clusters - 1, first + 23), writer));
                        if (random.nextInt(3) == 0 || first + 24 >= clusters) {
                            writer.flush();
                            for (long[] c : copied) {
                                disk.markCommitted(c);
                            }
                            copied.clear();
                            disk.flush();
                        }
                    }
                }
                assertEquals(0, disk.dirtyBytes());
                var identity = disk.backing().identity();
                var done = new LeafHeader.JobRecord(JobKind.COMMIT, JobState.COMPLETED, 0, OnError.STOP, null);
                disk.image().updateHeader(h -> h.withBackingIdentity(identity).withJob(done));
                commitEnd = rec.eventCount();
                // every cluster written so far is now local and clean: write into them (issue 7, defect 1)
                writesToCleanClusters(disk, random, rec, model, ops, acks, seed);
                mixedOps(disk, random, rec, model, ops, acks, 30, seed);
            } else {
                // steps overlap the 41-cluster fills, so no cluster is left out before the standalone flag
                for (int first = 0; first < clusters; first += 1 + random.nextInt(41)) {
                    disk.fill(first, Math.min(clusters - 1, first + 40));
                    if (random.nextInt(4) == 0) {
                        disk.flush(); // the stream's flushes are not guest acknowledgements
                    }
                }
                disk.flush();
                disk.image().updateHeader(h -> h.withStandalone(true));
                mixedOps(disk, random, rec, model, ops, acks, 20, seed);
            }
            assertArrayEquals(model, TestLeaves.readAll(disk), "the live disk matches the model (seed " + seed + ")");
        }
        return new Run(ops, acks, commitStart, commitEnd, atCommit, dirtyAtCommit, original);
    }

    private static void mixedOps(LeafDisk disk, Random random, RecordingFileOps rec, byte[] model,
                                 List<GuestOp> ops, List<Ack> acks, int count, long seed) throws IOException {
        int clusters = (int) disk.clusters();
        for (int i = 0; i < count; i++) {
            int kind = random.nextInt(20);
            int off = random.nextInt(SIZE);
            int len = 1 + random.nextInt(Math.min(SIZE - off, 3 * CLUSTER + 1000));
            if (kind < 6) {
                byte[] data = new byte[len];
                random.nextBytes(data);
                ops.add(new GuestOp(rec.eventCount(), off, data));
                assertEquals(len, disk.write(ByteBuffer.wrap(data), off));
                System.arraycopy(data, 0, model, off, len);
            } else if (kind < 8) {
                ops.add(new GuestOp(rec.eventCount(), off, new byte[len]));
                disk.zeroRange(off, len);
                Arrays.fill(model, off, off + len, (byte) 0);
            } else if (kind < 13) {
                ByteBuffer b = ByteBuffer.allocate(len);
                assertEquals(len, disk.read(b, off));
                assertArrayEquals(Arrays.copyOfRange(model, off, off + len), b.array(),
                        "COR read at " + off + "+" + len + " (seed " + seed + ")");
            } else if (kind < 16) {
                disk.flush();
                acks.add(new Ack(rec.eventCount(), model.clone()));
            } else {
                int first = random.nextInt(clusters);
                disk.fill(first, Math.min(clusters - 1, first + random.nextInt(32)));
            }
        }
    }

    /**
     * Writes, zeroes and partial writes into clusters that are local and clean (committed, streamed or
     * filled), a few between flushes: each is the first write to a clean cluster, whose dirty bit must
     * be durable no later than its data.
     */
    private static void writesToCleanClusters(LeafDisk disk, Random random, RecordingFileOps rec, byte[] model,
                                              List<GuestOp> ops, List<Ack> acks, long seed) throws IOException {
        int clusters = (int) disk.clusters();
        List<Integer> clean = new ArrayList<>();
        for (int c = 0; c < clusters; c++) {
            if (disk.image().local().get(c) && !disk.image().dirty().get(c)) {
                clean.add(c);
            }
        }
        assertTrue(clean.size() > 8, "the workload leaves clean local clusters (seed " + seed + ")");
        java.util.Collections.shuffle(clean, random);
        for (int i = 0; i < Math.min(24, clean.size()); i++) {
            int c = clean.get(i);
            int room = Math.min(CLUSTER, SIZE - c * CLUSTER); // the last cluster may be partial
            int off = c * CLUSTER + (i % 3 == 0 ? 0 : random.nextInt(Math.max(1, room / 2)));
            int len = Math.min(SIZE - off, i % 3 == 0 ? CLUSTER : 1 + random.nextInt(CLUSTER / 2));
            if (i % 5 == 4) {
                ops.add(new GuestOp(rec.eventCount(), off, new byte[len]));
                disk.zeroRange(off, len);
                Arrays.fill(model, off, off + len, (byte) 0);
            } else {
                byte[] data = new byte[len];
                random.nextBytes(data);
                ops.add(new GuestOp(rec.eventCount(), off, data));
                assertEquals(len, disk.write(ByteBuffer.wrap(data), off));
                System.arraycopy(data, 0, model, off, len);
            }
            if (i % 4 == 3) {
                disk.flush();
                acks.add(new Ack(rec.eventCount(), model.clone()));
            }
        }
    }

    // ------------------------------------------------------------------ checking one cut state

    private static void verifyCut(Run run, int k, Path leaf, Path backing, String where) throws IOException {
        List<String> problems = new ArrayList<>(LeafImages.check(leaf));
        // a cut after the last local bit, before the standalone flag: reported, and the next open sets it
        boolean flagPending = problems.removeIf(p -> p.contains("not marked standalone"));
        assertEquals(List.of(), problems, "check of " + where);
        byte[] backingNow = Files.readAllBytes(backing);
        byte[] exposed;
        try (LeafDisk disk = TestLeaves.open(leaf, new PortableFileOps())) {
            if (flagPending) {
                assertTrue(disk.image().header().standalone(), where + ": the open records the standalone flag");
            }
            exposed = TestLeaves.readAll(disk);
            checkFlushRule(run, k, exposed, where);
            checkCleanMeansBacking(disk, backingNow, exposed, where);
            if (k > run.commitStart() && k <= run.commitEnd()) {
                checkCommitCut(run, disk, backingNow, exposed, where);
            }
        }
    }

    /** Each byte: its value at the last acknowledged flush before k, or one written after it. */
    private static void checkFlushRule(Run run, int k, byte[] exposed, String where) {
        Ack ack = run.acks().get(0);
        for (Ack a : run.acks()) {
            if (a.event() <= k) {
                ack = a;
            }
        }
        List<GuestOp> after = new ArrayList<>();
        for (GuestOp op : run.ops()) {
            if (op.startEvent() >= ack.event() && op.startEvent() < k) {
                after.add(op);
            }
        }
        byte[] snap = ack.snapshot();
        for (int i = 0; i < exposed.length; i++) {
            if (exposed[i] == snap[i]) {
                continue;
            }
            boolean allowed = false;
            for (GuestOp op : after) {
                long rel = i - op.offset();
                if (rel >= 0 && rel < op.data().length && op.data()[(int) rel] == exposed[i]) {
                    allowed = true;
                    break;
                }
            }
            if (!allowed) {
                fail(where + ": byte " + i + " (cluster " + i / CLUSTER + ") reads " + exposed[i]
                        + "; at the flush acknowledged at event " + ack.event() + " it was " + snap[i]
                        + ", and none of the " + after.size() + " writes since wrote that value"
                        + (exposed[i] == run.originalBacking()[i] ? " (it is the backing's original byte)" : ""));
            }
        }
    }

    /**
     * A local cluster that is not dirty reads as the backing: otherwise its data differs from what a
     * commit would leave in the backing, and no commit ever copies it (clean for ever).
     */
    private static void checkCleanMeansBacking(LeafDisk disk, byte[] backingNow, byte[] exposed, String where) {
        for (long c = 0; c < disk.clusters(); c++) {
            if (!disk.image().local().get(c) || disk.image().dirty().get(c)) {
                continue;
            }
            int from = (int) (c * CLUSTER);
            int to = (int) Math.min(SIZE, from + CLUSTER);
            int m = Arrays.mismatch(exposed, from, to, backingNow, from, to);
            if (m >= 0) {
                fail(where + ": cluster " + c + " is local and clean, but reads " + exposed[from + m] + " at byte "
                        + (from + m) + " where the backing holds " + backingNow[from + m]
                        + ": data written without its dirty bit (a commit would never copy it)");
            }
        }
    }

    /** A commit cut halfway: backing old or new per dirty cluster, leaf newest, re-running commit finishes. */
    private static void checkCommitCut(Run run, LeafDisk disk, byte[] backingNow, byte[] exposed, String where)
            throws IOException {
        byte[] old = run.originalBacking();
        byte[] fresh = run.atCommit();
        for (int i = 0; i < backingNow.length; i++) {
            boolean dirty = run.dirtyAtCommit()[i / CLUSTER];
            if (backingNow[i] != old[i] && (!dirty || backingNow[i] != fresh[i])) {
                fail(where + ": backing byte " + i + " (cluster " + i / CLUSTER + (dirty ? ", dirty" : ", clean")
                        + ") is " + backingNow[i] + ", neither old " + old[i] + " nor new " + fresh[i]);
            }
        }
        assertArrayEquals(fresh, exposed, where + ": the leaf reads the newest data during a commit");
        try (Backing.Writer writer = disk.backing().openWriter()) {
            long[] copied = disk.copyDirtyToBacking(0, disk.clusters() - 1, writer);
            writer.flush();
            disk.markCommitted(copied);
            disk.flush();
        }
        assertEquals(0, disk.dirtyBytes(), where + ": re-running the commit clears every dirty bit");
        assertArrayEquals(TestLeaves.readAll(disk), Files.readAllBytes(Path.of(disk.backing().location())),
                where + ": after re-running the commit the backing equals the disk");
    }

    // ------------------------------------------------------------------ helpers

    private static void apply(byte[] content, Event w) {
        System.arraycopy(w.bytes(), 0, content, Math.toIntExact(w.offset()), w.bytes().length);
    }

    /** Rewrites a file in place (same inode, same size) and sets its mtime to what the cut left it. */
    private static void rewrite(Path path, byte[] content, FileTime mtime) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE)) {
            assertEquals(content.length, ch.size(), "file size never changes: " + path);
            ByteBuffer b = ByteBuffer.wrap(content);
            while (b.hasRemaining()) {
                ch.write(b, b.position());
            }
        }
        Files.setLastModifiedTime(path, mtime);
    }
}
