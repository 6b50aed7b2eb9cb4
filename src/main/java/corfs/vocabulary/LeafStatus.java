package corfs.vocabulary;

import java.util.List;

/**
 * A snapshot of one mounted leaf and its job, as shown by the control file and {@code corfs status}.
 *
 * @param image        the leaf's file name as exposed under the mount point
 * @param size         virtual size in bytes
 * @param clusterSize  cluster size in bytes
 * @param localBytes   bytes whose data is in the leaf
 * @param dirtyBytes   bytes written through corfs and not yet committed
 * @param standalone   every cluster is local and the backing is no longer needed
 * @param job          the job kind, or {@link JobKind#NONE}
 * @param state        the job's state ({@link JobState#IDLE} when there is no job)
 * @param jobId        the job's number, unique per leaf across remounts (each start takes the last plus
 *                     one; a resume keeps it); 0 when the leaf never had a numbered job
 * @param doneBytes    bytes the job has processed
 * @param totalBytes   bytes the job has to process in all (done plus remaining)
 * @param speed        speed limit in bytes per second, 0 for unlimited
 * @param rateBytesPerSecond observed rate over the last seconds, 0 when idle
 * @param etaSeconds   estimated seconds to completion, -1 when unknown
 * @param onError      what the job does on a backing error
 * @param error        the job's last error, or null
 * @param commandError why the last refused control command on this leaf was refused, or null (cleared by
 *                     the next command that succeeds)
 * @param unreadable   extents the job could not read (on_error=skip), as [offset, length] pairs
 * @param backing      the backing's SPEC with credentials removed (redacted), or null when unknown
 * @param counters     the daemon's counters of this leaf since it was mounted ({@link LeafCounters#NONE}
 *                     when unknown)
 */
public record LeafStatus(
        String image,
        long size,
        int clusterSize,
        long localBytes,
        long dirtyBytes,
        boolean standalone,
        JobKind job,
        JobState state,
        long jobId,
        long doneBytes,
        long totalBytes,
        long speed,
        long rateBytesPerSecond,
        long etaSeconds,
        OnError onError,
        String error,
        String commandError,
        List<long[]> unreadable,
        String backing,
        LeafCounters counters) {

    public LeafStatus {
        counters = counters == null ? LeafCounters.NONE : counters;
    }

    /** A status without counters (they are added by {@link #withCounters}). */
    public LeafStatus(String image, long size, int clusterSize, long localBytes, long dirtyBytes, boolean standalone,
                      JobKind job, JobState state, long jobId, long doneBytes, long totalBytes, long speed,
                      long rateBytesPerSecond, long etaSeconds, OnError onError, String error, String commandError,
                      List<long[]> unreadable, String backing) {
        this(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, state, jobId, doneBytes, totalBytes,
                speed, rateBytesPerSecond, etaSeconds, onError, error, commandError, unreadable, backing,
                LeafCounters.NONE);
    }

    /** This status with {@code c} as its counters. */
    public LeafStatus withCounters(LeafCounters c) {
        return new LeafStatus(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, state, jobId,
                doneBytes, totalBytes, speed, rateBytesPerSecond, etaSeconds, onError, error, commandError,
                unreadable, backing, c);
    }
}
