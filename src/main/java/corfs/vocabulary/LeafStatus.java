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
 * @param speed        the rate kept to in bytes per second, 0 for unlimited: the fixed limit, or under
 *                     speed=auto the controller's current rate
 * @param rateBytesPerSecond observed rate over the last seconds, 0 when idle
 * @param etaSeconds   estimated seconds to completion, -1 when unknown
 * @param onError      what the job does on a backing error
 * @param error        the job's last error, or null
 * @param commandError why the last refused control command on this leaf was refused, or null (cleared by
 *                     the next command that succeeds)
 * @param unreadable   extents the job could not read (on_error=skip), as [offset, length] pairs
 * @param backing      the backing's SPEC with credentials removed (redacted), or null when unknown
 * @param speedSetting the speed as set: a limit, or auto with its target
 * @param autoWindow   under speed=auto, the stream's window in fills (fractional; below 1 the fills are
 *                     spaced out), else -1
 * @param prefetch     the leaf's prefetch ({@link PrefetchState#NONE} when none ran in this mount); independent
 *                     of {@code job}: a stream and a prefetch may run at once
 * @param prefetchDone bytes of the prefetch profile's extents known local (fetched, or found local)
 * @param prefetchTotal bytes the prefetch profile names in all (0 without a prefetch)
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
        JobSpeed speedSetting,
        double autoWindow,
        PrefetchState prefetch,
        long prefetchDone,
        long prefetchTotal,
        LeafCounters counters) {

    public LeafStatus {
        prefetch = prefetch == null ? PrefetchState.NONE : prefetch;
        counters = counters == null ? LeafCounters.NONE : counters;
    }

    /** A status without speed=auto, a prefetch or counters: the setting is the fixed {@code speed}. */
    public LeafStatus(String image, long size, int clusterSize, long localBytes, long dirtyBytes, boolean standalone,
                      JobKind job, JobState state, long jobId, long doneBytes, long totalBytes, long speed,
                      long rateBytesPerSecond, long etaSeconds, OnError onError, String error, String commandError,
                      List<long[]> unreadable, String backing) {
        this(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, state, jobId, doneBytes, totalBytes,
                speed, rateBytesPerSecond, etaSeconds, onError, error, commandError, unreadable, backing,
                JobSpeed.fixed(Math.max(0, speed)), -1);
    }

    /** A status without a prefetch or counters (what the job alone knows). */
    public LeafStatus(String image, long size, int clusterSize, long localBytes, long dirtyBytes, boolean standalone,
                      JobKind job, JobState state, long jobId, long doneBytes, long totalBytes, long speed,
                      long rateBytesPerSecond, long etaSeconds, OnError onError, String error, String commandError,
                      List<long[]> unreadable, String backing, JobSpeed speedSetting, double autoWindow) {
        this(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, state, jobId, doneBytes, totalBytes,
                speed, rateBytesPerSecond, etaSeconds, onError, error, commandError, unreadable, backing,
                speedSetting, autoWindow, PrefetchState.NONE, 0, 0, LeafCounters.NONE);
    }

    /** This status with the prefetch fields replaced. */
    public LeafStatus withPrefetch(PrefetchState state, long done, long total) {
        return new LeafStatus(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, this.state, jobId,
                doneBytes, totalBytes, speed, rateBytesPerSecond, etaSeconds, onError, error, commandError, unreadable,
                backing, speedSetting, autoWindow, state, done, total, counters);
    }

    /** This status with {@code c} as its counters. */
    public LeafStatus withCounters(LeafCounters c) {
        return new LeafStatus(image, size, clusterSize, localBytes, dirtyBytes, standalone, job, state, jobId,
                doneBytes, totalBytes, speed, rateBytesPerSecond, etaSeconds, onError, error, commandError,
                unreadable, backing, speedSetting, autoWindow, prefetch, prefetchDone, prefetchTotal, c);
    }
}
