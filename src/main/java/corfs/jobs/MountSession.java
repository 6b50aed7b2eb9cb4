package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.OnError;
import corfs.vocabulary.JobState;
import corfs.vocabulary.LeafStatus;
import corfs.vocabulary.LogLeaf;
import corfs.backing.TimeoutBacking;
import corfs.backing.BackingMeter;
import corfs.backing.MeteredBacking;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.Backing;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingSpec;
import corfs.backing.Backings;
import corfs.backing.Deadline;
import corfs.backing.FileBacking;
import corfs.engine.AccessRecorder;
import corfs.engine.LeafDisk;
import corfs.image.BackingChange;
import corfs.image.LeafHeader;
import corfs.image.LeafImage;
import corfs.image.ProfileLog;
import corfs.io.FileOps;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Everything one mount serves: its leaves, their filler thread, the periodic flusher and the target of
 * control commands. Engine-level and FUSE-free, so the whole mount is testable without a kernel.
 *
 * <h2>Opening</h2>
 * Every leaf is opened and checked before anything is served; if one is refused, all opened so far are
 * closed and nothing on disk has changed. A leaf is refused when its metadata is corrupt, when another
 * process holds it, when its backing is missing or of another size, or when the backing's identity
 * changed since it was recorded, unless {@code force} or this leaf's own commit changed it
 * ({@link BackingChange}, the rule check and info use too; then the new identity is recorded, by a writable
 * mount, before anything is served).
 *
 * <h2>Threads</h2>
 * Two named threads per mount: the filler (jobs) and the flusher, which makes bitmap changes durable
 * once a second, like a disk with a volatile write cache committing in the background (an fsync from the
 * guest is the barrier that matters), and appends each leaf's newly recorded access profile
 * ({@link AccessRecorder}) to its sidecar. Commands arrive on FUSE threads.
 *
 * <h2>Closing</h2>
 * Reverse order of opening: stop the prefetches (their sidecars stay, so they resume next time) on a
 * thread {@code corfs-close-prefetches} while this one stops the filler (running jobs stay recorded as
 * running and resume next time), both waiting for their fills in flight, then stop the flusher, save each
 * leaf's access profile, flush and close each leaf. Idempotent.
 *
 * <h2>Prefetch</h2>
 * Each leaf has a {@link PrefetchJob} beside its stream/commit job: {@code -o prefetch} starts one at
 * open (a profile that does not fit the leaf refuses the mount), otherwise a pending one (its sidecar)
 * resumes; the status carries its fields.
 */
public final class MountSession implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MountSession.class);
    private static final long FLUSH_INTERVAL_MS = 1000;

    /**
     * Options from the mount command line.
     *
     * @param recordProfile record each leaf's access profile ({@link AccessRecorder}; {@code -o profile=off}
     *                      turns it off); a read-only mount records nothing
     * @param prefetch      leaf file name to the profile it prefetches ({@code -o prefetch=}); every name must
     *                      be one of the leaves mounted
     */
    public record Options(boolean readOnly, boolean force, long backingTimeoutMillis, boolean recordProfile,
                          Map<String, Path> prefetch) {
        public Options {
            prefetch = Map.copyOf(prefetch);
        }

        public Options(boolean readOnly, boolean force, long backingTimeoutMillis) {
            this(readOnly, force, backingTimeoutMillis, true, Map.of());
        }

        public Options(boolean readOnly, boolean force, long backingTimeoutMillis, boolean recordProfile) {
            this(readOnly, force, backingTimeoutMillis, recordProfile, Map.of());
        }

        public Options(boolean readOnly, boolean force, long backingTimeoutMillis, Map<String, Path> prefetch) {
            this(readOnly, force, backingTimeoutMillis, true, prefetch);
        }
    }

    private final Map<String, LeafDisk> disks;
    /** The access-profile recorders by leaf name (leaves that record nothing have none); flushed with the bits. */
    private final Map<String, AccessRecorder> recorders;
    private final Filler filler;
    private final Map<String, PrefetchJob> prefetches;
    private final Thread flusher;
    private final AtomicBoolean closed = new AtomicBoolean();

    private MountSession(Map<String, LeafDisk> disks, Map<String, AccessRecorder> recorders, Filler filler,
                         String mountName, FileOps fileOps) {
        this.disks = disks;
        this.recorders = recorders;
        this.filler = filler;
        Map<String, PrefetchJob> p = new LinkedHashMap<>();
        for (LeafDisk d : disks.values()) {
            p.put(d.name(), new PrefetchJob(d, fileOps));
        }
        this.prefetches = Collections.unmodifiableMap(p);
        this.flusher = new Thread(this::flushLoop, "corfs-flusher-" + mountName);
        this.flusher.setDaemon(true);
    }

    /** Opens and checks every leaf, resumes recorded jobs and starts the threads. */
    public static MountSession open(List<Path> leaves, Options options) throws IOException {
        return open(leaves, options, FileOps.system());
    }

    public static MountSession open(List<Path> leaves, Options options, FileOps fileOps) throws IOException {
        if (leaves.isEmpty()) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "no leaf to mount");
        }
        refuseBadPrefetch(leaves, options);
        Map<String, LeafDisk> disks = new LinkedHashMap<>();
        Map<String, AccessRecorder> recorders = new LinkedHashMap<>();
        try {
            for (Path leaf : leaves) {
                String name = leaf.getFileName().toString();
                if (disks.containsKey(name)) {
                    throw new CorfsException(Reason.INVALID_ARGUMENT, "two leaves are named " + name
                            + ": each appears under the mount point by its file name");
                }
                if (name.equals("control")) {
                    throw new CorfsException(Reason.INVALID_ARGUMENT, "a leaf may not be named 'control'");
                }
                try (LogLeaf tag = LogLeaf.tag(name)) {
                    disks.put(name, openDisk(leaf, options, fileOps, recorders));
                }
            }
        } catch (IOException | RuntimeException e) {
            closeRecorders(recorders, e);
            for (LeafDisk d : disks.values()) {
                try {
                    d.close();
                } catch (IOException closeFailure) {
                    e.addSuppressed(closeFailure);
                }
            }
            throw e;
        }
        String mountName = disks.keySet().iterator().next();
        Filler filler = new Filler(new ArrayList<>(disks.values()), fileOps, mountName);
        MountSession session = new MountSession(disks, recorders, filler, mountName, fileOps);
        try {
            for (LeafDisk d : disks.values()) {
                filler.restore(d);
            }
            for (LeafDisk d : disks.values()) {
                Path profile = options.prefetch().get(d.name());
                if (profile != null) {
                    session.prefetches.get(d.name()).start(profile);
                } else {
                    session.prefetches.get(d.name()).resume();
                }
            }
        } catch (IOException | RuntimeException e) {
            session.close();
            throw e;
        }
        filler.start();
        session.flusher.start();
        return session;
    }

    /** -o prefetch names a leaf not mounted, or asks a read-only mount: refused before anything is opened. */
    private static void refuseBadPrefetch(List<Path> leaves, Options options) throws CorfsException {
        if (options.prefetch().isEmpty()) {
            return;
        }
        if (options.readOnly()) {
            throw new CorfsException(Reason.READ_ONLY, "prefetch on a read-only mount: nothing could be stored");
        }
        for (String name : options.prefetch().keySet()) {
            if (leaves.stream().noneMatch(l -> l.getFileName().toString().equals(name))) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, "prefetch names " + name + ", which is not a leaf"
                        + " of this mount");
            }
        }
    }

    private static LeafDisk openDisk(Path leaf, Options options, FileOps fileOps,
                                     Map<String, AccessRecorder> recorders) throws IOException {
        LeafImage image = LeafImage.open(leaf, fileOps, options.readOnly(), false, options.force());
        Backing backing = null;
        try {
            LeafHeader h = image.header();
            long timeoutMillis = leafTimeoutMillis(h, options);
            Probe probe = Probe.open(leaf, h, timeoutMillis, fileOps);
            backing = probe == null ? null : probe.backing(); // closed below if the mount is refused
            String shown = BackingSpec.redact(h.backingSpec());
            if (probe == null) {
                LOG.info("{}: standalone; backing {} is not reachable and not needed", leaf.getFileName(), shown);
            } else {
                BackingIdentity now = probe.identity();
                BackingIdentity recorded = h.backingIdentity();
                if (now.size() != h.virtualSize()) {
                    throw new CorfsException(Reason.INVALID_ARGUMENT, leaf + ": backing " + shown + " is "
                            + now.size() + " bytes, but the leaf is " + h.virtualSize() + " (a different disk?)");
                }
                switch (BackingChange.judge(h, now)) {
                    case SAME -> { }
                    case CHANGED_BY_COMMIT -> {
                        LOG.info("{}: backing changed by this leaf's commit, interrupted before it could record the"
                                + " new identity; accepted{}", leaf.getFileName(), options.readOnly() ? "" : " and recorded");
                        if (!options.readOnly()) {
                            boolean commitResumes = h.job().kind() == JobKind.COMMIT && h.job().state() == JobState.RUNNING;
                            image.updateHeader(x -> x.withBackingIdentity(now).withJob(withBackingWritten(x.job(),
                                    commitResumes)));
                        }
                    }
                    case CHANGED -> {
                        if (!options.force()) {
                            throw new CorfsException(Reason.INVALID_ARGUMENT, leaf + ": " + BackingChange.problem(h, now)
                                    + ". Use --force only if its content is unchanged");
                        }
                        // --force is the operator's acknowledgement: record it, so the next mount does not ask
                        // again (this mount's copy-on-read fills the leaf from the new backing anyway). Before
                        // anything is served, so no cluster of the new backing lands under the old identity.
                        // A read-only mount cannot record it: the next mount asks again.
                        boolean record = !options.readOnly() && !image.readOnly();
                        LOG.warn("{}: backing changed ({} now, {} recorded); accepted because of --force{}",
                                leaf.getFileName(), now.describe(), recorded.describe(),
                                record ? " and recorded" : " for this read-only mount only (not recorded)");
                        if (record) {
                            image.updateHeader(x -> x.withBackingIdentity(now));
                        }
                    }
                }
                backing = timeoutMillis > 0 ? new TimeoutBacking(backing, timeoutMillis) : backing;
                backing = new MeteredBacking(backing, new BackingMeter()); // outermost: what callers wait
            }
            String name = leaf.getFileName().toString();
            AccessRecorder recorder = null;
            if (probe != null && options.recordProfile() && !options.readOnly() && !image.readOnly()) {
                recorder = openRecorder(leaf, image.header());
            }
            if (recorder != null) {
                recorders.put(name, recorder); // closed by the caller if this or a later leaf is refused
            }
            return new LeafDisk(name, image, backing, options.readOnly(), recorder);
        } catch (IOException | RuntimeException e) {
            if (backing != null) {
                try {
                    backing.close();
                } catch (IOException | RuntimeException closeFailure) {
                    e.addSuppressed(closeFailure);
                }
            }
            image.close();
            throw e;
        }
    }

    /**
     * The recorder of a leaf's access profile, or null (logged) when its sidecar cannot be opened or made:
     * a profile is an optimisation, never a reason to refuse a mount.
     */
    private static AccessRecorder openRecorder(Path leaf, LeafHeader h) {
        try {
            return AccessRecorder.open(leaf, ProfileLog.Header.of(h));
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: not recording its access profile: {}", leaf.getFileName(), e.toString());
            return null;
        }
    }

    private static void closeRecorders(Map<String, AccessRecorder> recorders, Exception failure) {
        for (AccessRecorder r : recorders.values()) {
            try {
                r.close();
            } catch (IOException | RuntimeException closeFailure) {
                failure.addSuppressed(closeFailure);
            }
        }
    }

    /**
     * The per-call deadline of a leaf's backing: its own {@code timeout=SECONDS} option when it has one
     * (set at create or set-backing for that backing), else the mount's {@code backing_timeout}.
     */
    /** How long a mount waits to reach a network backing when no deadline is set (backing_timeout=0). */
    private static final long DEFAULT_OPEN_MS = 30_000;

    private static long leafTimeoutMillis(LeafHeader h, Options options) throws CorfsException {
        long seconds = Backings.parseTimeoutSeconds(h.backingOptions());
        return seconds > 0 ? seconds * 1000 : options.backingTimeoutMillis();
    }

    /**
     * The options a leaf's backing is opened with at mount. An NBD backing waits for its server (a call's
     * deadline covers the wait for the keeper's reconnect) by its own {@code timeout} option: when the leaf
     * sets none, the mount's {@code backing_timeout} is given as that option, and {@code backing_timeout=0}
     * (no timeout) as the longest one, a day, so that reads wait for a server that comes back instead of
     * failing after NBD's default 30 s. Other transports get the leaf's options unchanged.
     */
    static Map<String, String> openOptions(String spec, Map<String, String> leafOptions, long mountTimeoutMillis) {
        if (leafOptions.containsKey("timeout") || !new corfs.backing.nbd.NbdTransport().accepts(spec)) {
            return leafOptions;
        }
        long seconds = mountTimeoutMillis > 0 ? Math.min(corfs.backing.nbd.NbdTransport.NO_TIMEOUT_SECONDS,
                (mountTimeoutMillis + 999) / 1000) : corfs.backing.nbd.NbdTransport.NO_TIMEOUT_SECONDS;
        Map<String, String> out = new java.util.LinkedHashMap<>(leafOptions);
        out.put("timeout", Long.toString(seconds));
        return out;
    }

    /** A backing as found at mount: its identity, then the backing opened (a file: read-only, shared lock). */
    private record Probe(BackingIdentity identity, Backing backing) {
        /**
         * Opens the backing a leaf records, bounded by {@code timeoutMillis} (connect, stat, open and lock
         * go to a server). Null when it is missing or unreachable and the leaf is standalone (it does not
         * need it); a missing or unreachable backing of a leaf that is not standalone is refused with a
         * message naming it and the cause.
         */
        static Probe open(Path leaf, LeafHeader h, long timeoutMillis, FileOps fileOps) throws IOException {
            String shown = BackingSpec.redact(h.backingSpec());
            Optional<Path> file = BackingSpec.RAW.equals(h.backingFormat()) ? BackingSpec.localFile(h.backingSpec())
                    : Optional.empty();
            if (file.isPresent()) {
                Path path = file.get();
                Probe p = Deadline.within("open of backing " + path, timeoutMillis, () -> ofFile(path, fileOps),
                        Probe::close);
                if (p == null && !h.standalone()) {
                    throw new CorfsException(Reason.NOT_FOUND, leaf + ": backing " + path
                            + " is missing and the leaf is not standalone (not fully streamed)");
                }
                return p;
            }
            Backings backings = new Backings(fileOps);
            try {
                return Deadline.within("open of backing " + shown, timeoutMillis > 0 ? timeoutMillis : DEFAULT_OPEN_MS,
                        () -> {
                            Backing b = backings.open(h.backingSpec(), h.backingFormat(),
                                    openOptions(h.backingSpec(), h.backingOptions(), timeoutMillis));
                            try {
                                return new Probe(b.identity(), b);
                            } catch (IOException | RuntimeException e) {
                                b.close();
                                throw e;
                            }
                        }, Probe::close);
            } catch (IOException e) {
                if (h.standalone()) {
                    LOG.warn("{}: backing {} cannot be opened ({}); the leaf is standalone and does not need it",
                            leaf.getFileName(), shown, e.getMessage());
                    return null;
                }
                throw new CorfsException(e instanceof CorfsException c ? c.reason() : Reason.IO, leaf + ": backing "
                        + shown + " cannot be opened and the leaf is not standalone: " + e.getMessage(), e);
            }
        }

        /** Null when the file is missing. */
        private static Probe ofFile(Path path, FileOps fileOps) throws IOException {
            if (!Files.exists(path)) {
                return null;
            }
            BackingIdentity identity = FileBacking.identityOf(path);
            return new Probe(identity, FileBacking.open(path, fileOps));
        }

        void close() {
            try {
                backing.close();
            } catch (IOException | RuntimeException e) {
                LOG.warn("closing backing {}: {}", backing.location(), e.toString());
            }
        }
    }

    /** The record with {@code backingWritten} set as given (a resuming commit keeps it until it closes). */
    private static LeafHeader.JobRecord withBackingWritten(LeafHeader.JobRecord r, boolean value) {
        return new LeafHeader.JobRecord(r.kind(), r.state(), r.speed(), r.onError(), r.error(), r.id(), value);
    }

    public List<LeafDisk> leaves() {
        return List.copyOf(disks.values());
    }

    /** The leaf exposed under this name, or null. */
    public LeafDisk find(String name) {
        return disks.get(name);
    }

    // ------------------------------------------------------------------ commands (any thread)
    // IMAGE may be null where exactly one leaf is mounted. Each throws a CorfsException whose reason
    // says why it could not be carried out, having changed nothing.

    /** Starts a job; returns its number, unique per leaf (the status's job_id). */
    public long startJob(String image, JobKind kind, Long speed, OnError onError) throws IOException {
        return startJobAt(image, kind, speed == null ? null : JobSpeed.fixed(speed), onError);
    }

    /** Starts a job at a speed (null: unlimited; auto: a stream only, else INVALID_ARGUMENT). */
    public long startJobAt(String image, JobKind kind, JobSpeed speed, OnError onError) throws IOException {
        String name = resolve(image);
        if (kind == JobKind.COMMIT) {
            refuseSharedBacking(name);
        }
        try (LogLeaf tag = LogLeaf.tag(name)) {
            return filler.startJobAt(name, kind, speed, onError);
        }
    }

    /**
     * Refuses a commit into a backing that another leaf mounted here still reads (not standalone): the
     * commit would change data under that leaf. Compared by recorded identity, so aliases of one NBD
     * export (two socket paths, a host name and an address) are seen through. A file backing is also
     * guarded by its locks, across processes; an NBD export read by another process cannot be seen from
     * here (NBD has no locks): the operator must not commit into an export others read.
     */
    private void refuseSharedBacking(String name) throws CorfsException {
        LeafDisk mine = disks.get(name);
        String token = mine.image().header().backingIdentity().token();
        for (LeafDisk other : disks.values()) {
            if (other != mine && !other.image().header().standalone()
                    && other.image().header().backingIdentity().token().equals(token)) {
                throw new CorfsException(Reason.BUSY, name + ": leaf " + other.name() + " mounted here reads the same"
                        + " backing (" + BackingSpec.redact(other.image().header().backingSpec()) + "): a commit would"
                        + " change data under it. Stream it to standalone or unmount it first");
            }
        }
    }

    public void pause(String image) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            filler.pause(name);
        }
    }

    public void resume(String image) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            filler.resume(name);
        }
    }

    public void cancel(String image) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            filler.cancel(name);
        }
    }

    public void setSpeed(String image, long bytesPerSecond) throws IOException {
        setSpeed(image, JobSpeed.fixed(bytesPerSecond));
    }

    /** Sets the job's speed: a limit, or auto (a stream only, else INVALID_ARGUMENT). */
    public void setSpeed(String image, JobSpeed speed) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            filler.setSpeed(name, speed);
        }
    }

    /**
     * Makes the running or paused stream fetch these byte ranges next, in this order, then go on where it
     * was. Each is {offset, length}; length 0 means one cluster. A range outside the disk is
     * INVALID_ARGUMENT and queues none; no running or paused stream is NO_JOB.
     */
    public void prioritize(String image, List<long[]> byteRanges) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            filler.prioritize(name, byteRanges);
        }
    }

    /**
     * Starts prefetching the profile in {@code file} (an absolute path) on the leaf, replacing its pending
     * or running prefetch; see {@link PrefetchJob#start}.
     */
    public void prefetch(String image, Path file) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            prefetches.get(name).start(file);
            filler.recordCommandError(name, null); // a command that succeeds clears the last refusal
        }
    }

    /** Stops the leaf's prefetch and forgets it; see {@link PrefetchJob#cancel}. */
    public void cancelPrefetch(String image) throws IOException {
        String name = resolve(image);
        try (LogLeaf tag = LogLeaf.tag(name)) {
            prefetches.get(name).cancel();
            filler.recordCommandError(name, null);
        }
    }

    /** For tests: the prefetch job of leaf {@code name}. */
    PrefetchJob prefetchJob(String name) {
        return prefetches.get(name);
    }

    private String resolve(String image) throws CorfsException {
        if (image == null) {
            if (disks.size() != 1) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, disks.size()
                        + " leaves are mounted: name the image (" + String.join(", ", disks.keySet()) + ")");
            }
            return disks.keySet().iterator().next();
        }
        if (!disks.containsKey(image)) {
            throw new CorfsException(Reason.NOT_FOUND, "no image named '" + image + "' is mounted here");
        }
        return image;
    }

    /**
     * Remembers why a command line was refused, as the status's command_error of the leaf it named (of
     * every leaf when it named none and several are mounted). A job's own error is never overwritten.
     */
    public void recordError(String image, String message) {
        if (image != null && disks.containsKey(image)) {
            filler.recordCommandError(image, message);
        } else {
            for (String name : disks.keySet()) {
                filler.recordCommandError(name, message);
            }
        }
    }

    /** The status of every leaf, in mount order. */
    public List<LeafStatus> status() {
        List<LeafStatus> out = new ArrayList<>(disks.size());
        for (Map.Entry<String, LeafDisk> e : disks.entrySet()) {
            PrefetchJob.Snapshot p = prefetches.get(e.getKey()).snapshot();
            out.add(filler.status(e.getKey()).withPrefetch(p.state(), p.doneBytes(), p.totalBytes())
                    .withCounters(e.getValue().counters()));
        }
        return Collections.unmodifiableList(out);
    }

    // ------------------------------------------------------------------ flusher

    private void flushLoop() {
        while (!closed.get()) {
            synchronized (this) {
                try {
                    wait(FLUSH_INTERVAL_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
            if (closed.get()) {
                return;
            }
            for (AccessRecorder r : recorders.values()) {
                r.flush(); // logs its own failures
            }
            for (LeafDisk d : disks.values()) {
                if (d.readOnly() || !d.image().hasUnflushedChanges()) {
                    continue;
                }
                try (LogLeaf tag = LogLeaf.tag(d.name())) {
                    d.flush();
                } catch (IOException | RuntimeException e) {
                    LOG.warn("{}: background flush failed: {}", d.name(), e.toString());
                }
            }
        }
    }

    /** Stops the jobs (they resume at the next mount), flushes and closes every leaf. Idempotent. */
    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        // The prefetches and the filler each wait (30 s at most) for their fills in flight: side by side, so
        // a hung backing holds an unmount once, not twice (68-70 s before, one after the other).
        // One closer per leaf: a leaf's close waits for its fills, so closing them one after the other made a
        // second leaf's prefetch run on (still issuing fills) while the first one's hung fill was waited for,
        // and past the bound below a third leaf's prefetch was never stopped before its disk was closed.
        List<Thread> prefetchClosers = new ArrayList<>(prefetches.size());
        for (Map.Entry<String, PrefetchJob> e : prefetches.entrySet()) {
            PrefetchJob p = e.getValue();
            Thread t = new Thread(p::close, "corfs-close-prefetches-" + e.getKey());
            t.setDaemon(true);
            t.start();
            prefetchClosers.add(t);
        }
        filler.close();
        long closeDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        for (Thread t : prefetchClosers) { // each run's close is bounded; this only bounds the wait for them all
            try {
                t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(closeDeadline - System.nanoTime())));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        synchronized (this) {
            notifyAll();
        }
        try {
            flusher.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        IOException failure = null;
        for (LeafDisk d : disks.values()) {
            try (LogLeaf tag = LogLeaf.tag(d.name())) {
                AccessRecorder r = recorders.get(d.name());
                if (r != null) {
                    try {
                        r.close(); // the last records; FUSE serves no more I/O by now
                    } catch (IOException | RuntimeException e) {
                        LOG.warn("{}: saving its access profile failed: {}", d.name(), e.toString());
                    }
                }
                d.close();
            } catch (IOException e) {
                LOG.warn("{}: close failed: {}", d.name(), e.toString());
                if (failure == null) {
                    failure = e;
                }
            }
        }
        LOG.info("closed {} leaf(s); every write is flushed", disks.size());
        if (failure != null) {
            throw failure;
        }
    }
}
