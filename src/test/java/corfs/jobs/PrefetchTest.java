package corfs.jobs;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.FileBacking;
import corfs.engine.DelayBacking;
import corfs.engine.LeafDisk;
import corfs.engine.TestLeaves;
import corfs.image.AccessProfile;
import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.image.PrefetchRecord;
import corfs.io.FileOps;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.PrefetchState;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static corfs.jobs.JobTesting.await;
import static corfs.jobs.JobTesting.awaitState;
import static corfs.jobs.JobTesting.status;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The prefetch job: {@link PrefetchRun} over a counting file backing, and {@link PrefetchJob} through a mount session. */
@DisplayName("Prefetch: profile order, local clusters skipped, guest writes kept, a window that follows the guest, refusals")
class PrefetchTest {
    private static final int CLUSTER = 65536;
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    /** A fresh leaf over {@code backing}, opened over a counting (DelayBacking, no delay) real file backing. */
    private LeafDisk countingDisk(Path backing, DelayBacking[] counter) throws Exception {
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, CLUSTER, true);
        LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false);
        counter[0] = new DelayBacking(FileBacking.open(backing, FileOps.system()), 4, 0);
        return new LeafDisk("leaf.img", image, counter[0], false);
    }

    /** {@code count} extents of {@code length} bytes at shuffled whole-MiB slots, in profile order. */
    private static AccessProfile profile(Path backing, long size, int count, int length, long seed) throws Exception {
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < size / MIB; i++) {
            slots.add(i);
        }
        java.util.Collections.shuffle(slots, new Random(seed));
        List<AccessProfile.Entry> entries = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            entries.add(new AccessProfile.Entry((long) slots.get(i) * MIB, length, i * 10L));
        }
        return new AccessProfile(FileBacking.identityOf(backing).token(), size, CLUSTER, entries);
    }

    private static void awaitTrue(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("never: " + what);
            }
            Thread.sleep(5);
        }
    }

    private static byte[] read(LeafDisk disk, long offset, int length) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(length);
        while (b.hasRemaining()) {
            if (disk.read(b, offset + b.position()) <= 0) {
                break;
            }
        }
        return b.array();
    }

    @Nested
    @DisplayName("a run over a file backing")
    class Runs {
        @Test
        @DisplayName("completes: every profile cluster local with the backing's bytes, nothing else fetched")
        void completes() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                byte[] content = TestLeaves.writeBacking(backing, 16 * MIB, 5);
                AccessProfile p = profile(backing, 16 * MIB, 12, 256 * 1024, 7);
                DelayBacking[] counter = new DelayBacking[1];
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    CompletableFuture<PrefetchState> end = new CompletableFuture<>();
                    PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> end.complete(o), () -> 0);
                    run.start();
                    assertEquals(PrefetchState.COMPLETED, end.get(30, TimeUnit.SECONDS));
                    run.close();
                    assertEquals(p.totalBytes(), run.doneBytes());
                    assertEquals(p.totalBytes(), disk.localBytes(), "only the profile's clusters are local");
                    for (AccessProfile.Entry e : p.entries()) {
                        assertTrue(disk.image().local().allSet(e.offset() / CLUSTER, e.end() / CLUSTER));
                        assertArrayEquals(Arrays.copyOfRange(content, (int) e.offset(), (int) e.end()),
                                read(disk, e.offset(), (int) e.length()));
                    }
                }
            });
        }

        @Test
        @DisplayName("completes while the guest keeps doing I/O off the profile (local reads, no misses): the window"
                + " still grows, the run does not stop at its first window")
        void busyGuestOffProfile() {
            assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
                Path backing = dir.resolve("base.raw");
                byte[] content = TestLeaves.writeBacking(backing, 64 * MIB, 9);
                AccessProfile p = profile(backing, 64 * MIB, 48, 512 * 1024, 10); // 24 MiB, past an 8 MiB window
                DelayBacking[] counter = new DelayBacking[1];
                java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    long off = 768 * 1024; // the second half of a MiB slot: never in the profile
                    read(disk, off, 4096); // local from now on
                    Thread guest = new Thread(() -> {
                        try {
                            while (!stop.get()) {
                                read(disk, off, 4096); // a busy guest: I/O all the time, no misses
                            }
                        } catch (Exception e) {
                            throw new IllegalStateException(e);
                        }
                    }, "test-busy-guest");
                    guest.start();
                    try {
                        CompletableFuture<PrefetchState> end = new CompletableFuture<>();
                        PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> end.complete(o),
                                System::nanoTime);
                        run.start();
                        try {
                            assertEquals(PrefetchState.COMPLETED, end.get(30, TimeUnit.SECONDS),
                                    "the run completes beside a busy guest");
                        } catch (java.util.concurrent.TimeoutException e) {
                            fail("stalled beside a busy guest: " + run.doneBytes() + " of " + p.totalBytes() + " bytes");
                        } finally {
                            run.close();
                        }
                    } finally {
                        stop.set(true);
                        guest.join(10_000);
                    }
                    for (AccessProfile.Entry e : p.entries()) {
                        assertArrayEquals(Arrays.copyOfRange(content, (int) e.offset(), (int) e.end()),
                                read(disk, e.offset(), (int) e.length()));
                    }
                }
            });
        }

        @Test
        @DisplayName("skips local clusters: a fully local profile completes with no fill and no backing read;"
                + " a half local one fills only the missing chunks")
        void skipsLocal() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 16 * MIB, 9);
                AccessProfile p = profile(backing, 16 * MIB, 10, MIB, 3);
                DelayBacking[] counter = new DelayBacking[1];
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    for (int i = 0; i < 10; i += 2) {
                        AccessProfile.Entry e = p.entries().get(i);
                        disk.fill(e.offset() / CLUSTER, e.end() / CLUSTER - 1);
                    }
                    long readsBefore = counter[0].reads();
                    CompletableFuture<PrefetchState> end = new CompletableFuture<>();
                    // 10 MiB of profile: past the first window, reached by the idle growth (no guest reads here)
                    PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> end.complete(o),
                            System::nanoTime);
                    run.start();
                    assertTrue(run.doneBytes() >= 5L * MIB, "the local half is counted done at start");
                    assertEquals(PrefetchState.COMPLETED, end.get(30, TimeUnit.SECONDS));
                    run.close();
                    assertEquals(5, run.fills(), "one fill per missing 1 MiB chunk, none for the local ones");
                    assertTrue(counter[0].reads() > readsBefore);

                    long readsAfter = counter[0].reads();
                    CompletableFuture<PrefetchState> again = new CompletableFuture<>();
                    PrefetchRun second = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> again.complete(o),
                            () -> 0);
                    second.start();
                    assertEquals(PrefetchState.COMPLETED, again.getNow(null), "nothing left: completed at start");
                    second.close();
                    assertEquals(0, second.fills());
                    assertEquals(readsAfter, counter[0].reads(), "no backing read for local clusters");
                    assertEquals(p.totalBytes(), second.doneBytes());
                }
            });
        }

        @Test
        @DisplayName("never overwrites guest writes: before it starts and racing it")
        void keepsGuestWrites() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                long seed = System.nanoTime();
                Random random = new Random(seed);
                Path backing = dir.resolve("base.raw");
                byte[] model = TestLeaves.writeBacking(backing, 16 * MIB, seed);
                AccessProfile p = profile(backing, 16 * MIB, 8, MIB, seed); // within the first window
                DelayBacking[] counter = new DelayBacking[1];
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    write(disk, random, model, p, 20);
                    CompletableFuture<PrefetchState> end = new CompletableFuture<>();
                    PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> end.complete(o), () -> 0);
                    run.start();
                    write(disk, random, model, p, 40); // racing the fills
                    assertEquals(PrefetchState.COMPLETED, end.get(30, TimeUnit.SECONDS));
                    run.close();
                    assertArrayEquals(model, TestLeaves.readAll(disk), "seed " + seed);
                }
            });
        }

        private void write(LeafDisk disk, Random random, byte[] model, AccessProfile p, int count) throws Exception {
            for (int i = 0; i < count; i++) {
                AccessProfile.Entry e = p.entries().get(random.nextInt(p.entries().size()));
                int off = (int) e.offset() + random.nextInt((int) e.length() - 1);
                byte[] data = new byte[1 + random.nextInt(Math.min((int) e.end() - off, 100_000))];
                random.nextBytes(data);
                assertEquals(data.length, disk.write(ByteBuffer.wrap(data), off));
                System.arraycopy(data, 0, model, off, data.length);
            }
        }

        @Test
        @DisplayName("follows the guest: a window of 8 MiB, doubled by hits, halved by a miss, moved by the position")
        void followsGuest() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 32 * MIB, 11);
                AccessProfile p = profile(backing, 32 * MIB, 32, MIB, 13);
                DelayBacking[] counter = new DelayBacking[1];
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    CompletableFuture<PrefetchState> end = new CompletableFuture<>();
                    // A clock that never moves: the window never grows by itself (no idle growth).
                    PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> end.complete(o), () -> 0);
                    run.start();
                    awaitTrue(() -> run.doneBytes() == 8L * MIB, "the first window fetched");
                    Thread.sleep(300);
                    assertEquals(8L * MIB, run.doneBytes(), "nothing past the window before the guest reads");
                    assertEquals(8, run.fills());
                    for (int i = 0; i < 8; i++) {
                        assertLocal(disk, p.entries().get(i), true);
                    }
                    assertLocal(disk, p.entries().get(8), false);

                    for (int i = 0; i < 4; i++) { // four hits: 4 MiB found local, half the window
                        AccessProfile.Entry e = p.entries().get(i);
                        read(disk, e.offset(), (int) e.length());
                    }
                    assertEquals(16L * MIB, run.window().window(), run.window().toString());
                    assertEquals(3, run.window().guestEntry());
                    awaitTrue(() -> run.doneBytes() == 20L * MIB, "through entry 3 plus 16 MiB");
                    Thread.sleep(300);
                    assertEquals(20L * MIB, run.doneBytes());
                    assertLocal(disk, p.entries().get(19), true);
                    assertLocal(disk, p.entries().get(20), false);

                    AccessProfile.Entry far = p.entries().get(25); // the guest jumps ahead and misses
                    read(disk, far.offset(), (int) far.length());
                    assertEquals(8L * MIB, run.window().window(), "a miss halves the window");
                    assertEquals(25, run.window().guestEntry());
                    assertEquals(PrefetchState.COMPLETED, end.get(30, TimeUnit.SECONDS),
                            "26 MiB + 8 MiB covers the rest; what the guest skipped follows");
                    run.close();
                    assertEquals(p.totalBytes(), disk.localBytes());
                }
            });
        }

        private void assertLocal(LeafDisk disk, AccessProfile.Entry e, boolean local) {
            assertEquals(local, disk.image().local().allSet(e.offset() / CLUSTER, e.end() / CLUSTER),
                    "entry at " + e.offset());
        }

        @Test
        @DisplayName("the guest-read listener is installed only while the run goes on")
        void listener() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 32 * MIB, 1);
                AccessProfile p = profile(backing, 32 * MIB, 32, MIB, 2);
                DelayBacking[] counter = new DelayBacking[1];
                try (LeafDisk disk = countingDisk(backing, counter)) {
                    PrefetchRun run = new PrefetchRun(disk, p, FileOps.system(), (r, o, t) -> { }, () -> 0);
                    run.start();
                    assertFalse(disk.guestReads(null, null), "the run follows the guest");
                    run.close();
                    assertTrue(disk.guestReads(null, null), "removed when closed");
                    run.close(); // idempotent
                }
            });
        }
    }

    @Nested
    @DisplayName("through a mount session")
    class Session {
        private Path leafOver(Path backing) throws Exception {
            Path leaf = dir.resolve("leaf.img");
            LeafImage.create(leaf, backing, CLUSTER, false);
            return leaf;
        }

        @Test
        @DisplayName("control command: completes, status fields, the record removed; a stream beside it is untouched")
        void command() {
            assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
                Path backing = dir.resolve("base.raw");
                byte[] content = TestLeaves.writeBacking(backing, 16 * MIB, 21);
                Path leaf = leafOver(backing);
                AccessProfile p = profile(backing, 16 * MIB, 6, 512 * 1024, 22);
                Path file = dir.resolve("boot.profile");
                p.write(file);
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    assertEquals(PrefetchState.NONE, status(s).prefetch());
                    s.prefetch(null, file);
                    LeafStatus st = await(s, x -> x.prefetch() == PrefetchState.COMPLETED, 30_000, "prefetch completed");
                    assertEquals(p.totalBytes(), st.prefetchDone());
                    assertEquals(p.totalBytes(), st.prefetchTotal());
                    assertEquals(JobKind.NONE, st.job(), "the prefetch is not the stream job");
                    assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)), "completed: nothing pending");

                    s.prefetch("leaf.img", file); // again, with a stream beside it; cancel the stream only
                    s.startJob(null, JobKind.STREAM, 1L << 20, null);
                    s.cancel(null);
                    assertTrue(status(s).prefetch() == PrefetchState.COMPLETED
                            || status(s).prefetch() == PrefetchState.RUNNING);
                    s.startJob(null, JobKind.STREAM, null, null);
                    awaitState(s, JobState.COMPLETED, 30_000);
                    assertArrayEquals(content, TestLeaves.readAll(s.find("leaf.img")));
                }
            });
        }

        @Test
        @DisplayName("a pending record resumes at the next open, counting what is local; completion removes it")
        void resume() {
            assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 16 * MIB, 31);
                Path leaf = leafOver(backing);
                AccessProfile p = profile(backing, 16 * MIB, 8, MIB, 32);
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    for (int i = 0; i < 3; i++) { // the guest read part of it before
                        AccessProfile.Entry e = p.entries().get(i);
                        read(s.find("leaf.img"), e.offset(), (int) e.length());
                    }
                }
                PrefetchRecord.save(leaf, p);
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    LeafStatus st = status(s);
                    assertTrue(st.prefetch() == PrefetchState.RUNNING || st.prefetch() == PrefetchState.COMPLETED, "" + st);
                    assertTrue(st.prefetchDone() >= 3L * MIB, "the local part counted at start: " + st.prefetchDone());
                    await(s, x -> x.prefetch() == PrefetchState.COMPLETED, 30_000, "prefetch completed");
                    assertEquals(p.totalBytes(), s.find("leaf.img").localBytes());
                }
                assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)));
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    assertEquals(PrefetchState.NONE, status(s).prefetch());
                }
                // A prefetch command that succeeds clears the last refusal shown in the status.
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    s.recordError("leaf.img", "prefetch: missing FILE");
                    assertEquals("prefetch: missing FILE", status(s).commandError());
                    Path file = leaf.resolveSibling("ok.profile");
                    p.write(file);
                    s.prefetch("leaf.img", file);
                    assertEquals(null, status(s).commandError());
                    await(s, x -> x.prefetch() == PrefetchState.COMPLETED, 30_000, "prefetch completed");
                }
                // A pending prefetch others may write (planted in a shared directory) is not run.
                PrefetchRecord.save(leaf, p);
                Files.setPosixFilePermissions(PrefetchRecord.pathOf(leaf),
                        java.nio.file.attribute.PosixFilePermissions.fromString("rw-rw-rw-"));
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    assertEquals(PrefetchState.FAILED, status(s).prefetch(), "a planted prefetch ran");
                }
            });
        }

        @Test
        @DisplayName("refused, changing nothing: another backing's profile, another size, a read-only mount; cancel")
        void refusals() {
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
                Path backing = dir.resolve("base.raw");
                TestLeaves.writeBacking(backing, 8 * MIB, 41);
                Path other = dir.resolve("other.raw");
                TestLeaves.writeBacking(other, 8 * MIB, 42);
                Path leaf = leafOver(backing);
                Path foreign = dir.resolve("foreign.profile");
                profile(other, 8 * MIB, 4, MIB, 1).write(foreign);
                Path bigger = dir.resolve("bigger.profile");
                new AccessProfile(FileBacking.identityOf(backing).token(), 16 * MIB, CLUSTER,
                        List.of(new AccessProfile.Entry(12L * MIB, MIB, 0))).write(bigger);
                Path good = dir.resolve("good.profile");
                profile(backing, 8 * MIB, 4, MIB, 1).write(good);
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    CorfsException e = assertThrows(CorfsException.class, () -> s.prefetch(null, foreign));
                    assertEquals(Reason.INVALID_ARGUMENT, e.reason());
                    assertTrue(e.getMessage().contains(foreign.toString()), e.getMessage());
                    assertTrue(e.getMessage().contains(FileBacking.identityOf(backing).describe()), e.getMessage());
                    e = assertThrows(CorfsException.class, () -> s.prefetch(null, bigger));
                    assertEquals(Reason.INVALID_ARGUMENT, e.reason());
                    assertTrue(e.getMessage().contains("another size"), e.getMessage());
                    e = assertThrows(CorfsException.class, () -> s.prefetch(null, dir.resolve("missing")));
                    assertEquals(Reason.NOT_FOUND, e.reason());
                    assertEquals(PrefetchState.NONE, status(s).prefetch());
                    assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)));
                    e = assertThrows(CorfsException.class, () -> s.cancelPrefetch(null));
                    assertEquals(Reason.NO_JOB, e.reason());
                }
                CorfsException e = assertThrows(CorfsException.class, () -> MountSession.open(List.of(leaf),
                        new MountSession.Options(false, false, 0, Map.of("leaf.img", foreign))));
                assertEquals(Reason.INVALID_ARGUMENT, e.reason());
                e = assertThrows(CorfsException.class, () -> MountSession.open(List.of(leaf),
                        new MountSession.Options(true, false, 0, Map.of("leaf.img", good))));
                assertEquals(Reason.READ_ONLY, e.reason());
                PrefetchRecord.save(leaf, AccessProfile.read(good));
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(true, false, 0))) {
                    assertEquals(PrefetchState.NONE, status(s).prefetch(), "a read-only mount runs no prefetch");
                    e = assertThrows(CorfsException.class, () -> s.prefetch(null, good));
                    assertEquals(Reason.READ_ONLY, e.reason());
                }
                try (MountSession s = MountSession.open(List.of(leaf), new MountSession.Options(false, false, 0))) {
                    s.cancelPrefetch(null);
                    assertEquals(PrefetchState.CANCELLED, status(s).prefetch());
                    assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)), "cancel forgets the prefetch");
                }
            });
        }

        @Test
        @DisplayName("create --prefetch: recorded after the checks; another backing's profile refused with nothing made")
        void create() throws Exception {
            Path backing = dir.resolve("base.raw");
            TestLeaves.writeBacking(backing, 8 * MIB, 51);
            Path other = dir.resolve("other.raw");
            TestLeaves.writeBacking(other, 8 * MIB, 52);
            Path foreign = dir.resolve("foreign.profile");
            profile(other, 8 * MIB, 4, MIB, 1).write(foreign);
            Path good = dir.resolve("good.profile");
            AccessProfile p = profile(backing, 8 * MIB, 4, MIB, 1);
            p.write(good);
            Path leaf = dir.resolve("leaf.img");
            CorfsException e = assertThrows(CorfsException.class, () -> LeafImages.create(leaf, backing.toString(),
                    null, Map.of(), CLUSTER, false, foreign));
            assertEquals(Reason.INVALID_ARGUMENT, e.reason());
            assertFalse(Files.exists(leaf));
            assertFalse(Files.exists(LeafImages.metadataPath(leaf)));
            LeafImages.create(leaf, backing.toString(), null, Map.of(), CLUSTER, false, good);
            assertEquals(p, PrefetchRecord.load(leaf).orElseThrow());
            assertEquals("rw-------", java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(PrefetchRecord.pathOf(leaf))));
            LeafImages.create(leaf, backing.toString(), null, Map.of(), CLUSTER, true, null);
            assertFalse(Files.exists(PrefetchRecord.pathOf(leaf)), "a new leaf does not inherit an old record");
        }
    }
}
