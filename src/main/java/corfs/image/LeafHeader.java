package corfs.image;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingIdentity;
import corfs.backing.BackingSpec;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.UUID;

/**
 * The leaf's header: everything in the metadata except the cluster bitmaps. Immutable; a change is a
 * new header written with {@link LeafImage#updateHeader}.
 *
 * @param uuid           identifies this leaf; stamped into every bitmap page so that pages of another
 *                       leaf's metadata are recognised
 * @param virtualSize    size of the virtual disk (= backing size) in bytes
 * @param clusterSize    power of two, 4 KiB to 2 MiB
 * @param dataFileName   the data file's name, so swapped metadata is recognised
 * @param dataInode      the data file's inode number, so a data file replaced by another of the same name
 *                       and size is recognised (0: not recorded)
 * @param backingSpec    where the backing is: an absolute path today (see {@link BackingSpec}); may hold
 *                       credentials, so show it only through {@link BackingSpec#redact}
 * @param backingFormat  the backing's image format, {@link BackingSpec#RAW} for every leaf this version
 *                       makes
 * @param backingOptions the backing's options (KEY=VALUE, never secrets), sorted by key; empty today
 * @param backingIdentity the backing as it was at create time or after the last completed commit
 * @param standalone     every cluster is local: the backing is no longer needed
 * @param job            the current or last job (so it resumes after a remount or crash)
 * @param inUse          a writable open may have written to a local clean cluster without making its dirty
 *                       bit durable first: set durably before the first such write, cleared by a clean close
 *                       after the final flush. Found set by an open that holds the lock, it means the last
 *                       writer stopped uncleanly, and every local cluster counts as dirty (see
 *                       {@link LeafImage}, "The in-use flag"). Metadata version 3.
 */
public record LeafHeader(
        UUID uuid,
        long virtualSize,
        int clusterSize,
        String dataFileName,
        long dataInode,
        String backingSpec,
        String backingFormat,
        Map<String, String> backingOptions,
        BackingIdentity backingIdentity,
        boolean standalone,
        JobRecord job,
        boolean inUse) {

    public LeafHeader {
        Objects.requireNonNull(backingSpec, "backingSpec");
        Objects.requireNonNull(backingFormat, "backingFormat");
        Objects.requireNonNull(backingIdentity, "backingIdentity");
        backingOptions = backingOptions == null || backingOptions.isEmpty() ? Collections.emptySortedMap()
                : Collections.unmodifiableSortedMap(new TreeMap<>(backingOptions));
    }

    /** A header not in use (every header before metadata version 3). */
    public LeafHeader(UUID uuid, long virtualSize, int clusterSize, String dataFileName, long dataInode,
                      String backingSpec, String backingFormat, Map<String, String> backingOptions,
                      BackingIdentity backingIdentity, boolean standalone, JobRecord job) {
        this(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingSpec, backingFormat, backingOptions,
                backingIdentity, standalone, job, false);
    }

    /** A header over the raw backing file at the absolute path {@code backingPath}, without options. */
    public LeafHeader(UUID uuid, long virtualSize, int clusterSize, String dataFileName, long dataInode,
                      String backingPath, BackingIdentity backingIdentity, boolean standalone, JobRecord job) {
        this(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingPath, BackingSpec.RAW, Map.of(),
                backingIdentity, standalone, job);
    }

    /**
     * The job as persisted. {@code error} is null when there is none.
     *
     * @param id             the job's number, unique per leaf: each started job gets the last one plus one,
     *                       so a client can tell its own job from a later one (0: none yet, or a leaf written
     *                       by a corfs that did not number jobs)
     * @param backingWritten a commit's writer is (or was, at a crash) open on the backing, so the backing may
     *                       have changed since {@link LeafHeader#backingIdentity} was recorded: set durably
     *                       before the first write, cleared when the new identity is recorded after the last
     *                       writer closed. {@link BackingChange} accepts a changed backing on this flag.
     */
    public record JobRecord(JobKind kind, JobState state, long speed, OnError onError, String error, long id,
                            boolean backingWritten) {
        public static final JobRecord NONE = new JobRecord(JobKind.NONE, JobState.IDLE, 0, OnError.STOP, null);

        /** A record without a job number and with no writer open (tests, older callers). */
        public JobRecord(JobKind kind, JobState state, long speed, OnError onError, String error) {
            this(kind, state, speed, onError, error, 0, false);
        }
    }

    public long clusters() {
        return (virtualSize + clusterSize - 1) / clusterSize;
    }

    /**
     * The backing's local file, the only kind of backing this version opens: the path the SPEC names
     * when it is a path or a {@code file://} URL and the format is raw.
     *
     * @throws CorfsException (NOT_SUPPORTED) for any other SPEC or format (a leaf made by a later
     *                        version over a network backing, say); the message shows the SPEC redacted
     */
    public String backingPath() throws CorfsException {
        Optional<Path> file = BackingSpec.RAW.equals(backingFormat) ? BackingSpec.localFile(backingSpec)
                : Optional.empty();
        if (file.isEmpty()) {
            throw new CorfsException(Reason.NOT_SUPPORTED, "backing " + BackingSpec.redact(backingSpec) + " (format "
                    + backingFormat + ") is not a raw local file, the only kind of backing this corfs opens");
        }
        return file.get().toString();
    }

    public LeafHeader withJob(JobRecord newJob) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingSpec, backingFormat,
                backingOptions, backingIdentity, standalone, newJob, inUse);
    }

    public LeafHeader withStandalone(boolean value) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingSpec, backingFormat,
                backingOptions, backingIdentity, value, job, inUse);
    }

    public LeafHeader withDataInode(long inode) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, inode, backingSpec, backingFormat,
                backingOptions, backingIdentity, standalone, job, inUse);
    }

    /** Another backing (set-backing: a new location of the same content). */
    public LeafHeader withBacking(String spec, String format, Map<String, String> options, BackingIdentity identity) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, dataInode, spec, format, options, identity,
                standalone, job, inUse);
    }

    /** The same backing (SPEC, format, options) with a new identity: recorded after a completed commit. */
    public LeafHeader withBackingIdentity(BackingIdentity identity) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingSpec, backingFormat,
                backingOptions, identity, standalone, job, inUse);
    }

    public LeafHeader withInUse(boolean value) {
        return new LeafHeader(uuid, virtualSize, clusterSize, dataFileName, dataInode, backingSpec, backingFormat,
                backingOptions, backingIdentity, standalone, job, value);
    }
}
