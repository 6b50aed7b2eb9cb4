package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.backing.BackingSpec;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import java.util.Map;

/**
 * What {@code corfs info} shows of a leaf, read from its metadata without mounting it.
 *
 * @param leaf          the leaf data file's path
 * @param metadata      the metadata file's path (LEAF.corfs)
 * @param version       metadata format version on disk (info never upgrades: a version 1 leaf shows 1)
 * @param virtualSize   bytes
 * @param clusterSize   bytes
 * @param clusters      number of clusters
 * @param localBytes    bytes whose data is in the leaf
 * @param dirtyBytes    bytes written through corfs and not committed
 * @param allocatedBytes bytes the data file occupies on disk
 * @param standalone    fully streamed: the backing is no longer needed
 * @param backingSpec   the backing's SPEC as recorded, with credentials removed ({@link BackingSpec#redact})
 * @param backingFormat the backing's format (raw)
 * @param backingOptions the backing's options, sorted by name (never secrets)
 * @param backingIdentity the backing's identity as recorded
 * @param job           the recorded job, NONE if none
 * @param jobState      its state
 * @param jobSpeed      its speed limit, bytes/s, 0 unlimited
 * @param jobOnError    its on_error policy
 * @param jobError      its last error, or null
 * @param uncleanStop   the last writable mount did not close cleanly and nobody holds the leaf now: every
 *                      local cluster counts as dirty ({@link LeafImage#uncleanStop()})
 */
public record LeafInfo(
        String leaf,
        String metadata,
        int version,
        long virtualSize,
        int clusterSize,
        long clusters,
        long localBytes,
        long dirtyBytes,
        long allocatedBytes,
        boolean standalone,
        String backingSpec,
        String backingFormat,
        Map<String, String> backingOptions,
        BackingIdentity backingIdentity,
        JobKind job,
        JobState jobState,
        long jobSpeed,
        OnError jobOnError,
        String jobError,
        boolean uncleanStop) {
}
