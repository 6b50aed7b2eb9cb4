package corfs.jobs;

import corfs.vocabulary.JobKind;
import corfs.vocabulary.JobSpeed;
import corfs.vocabulary.JobState;
import corfs.vocabulary.OnError;

import java.util.List;

/**
 * What the status shows of one leaf's job, as of its last change: immutable, published by
 * {@link LeafJob} in an atomic reference after every change, and read without any lock, so reading the
 * control file never waits for a command or a step that is stuck on I/O.
 *
 * @param limit       the rate kept to now, bytes/s (0: none): the fixed limit, or speed=auto's current rate
 * @param rate        bytes/s measured at {@code rateAtNanos}; shown while fresh and the job runs
 * @param unreadable  an immutable copy of the extents skipped with on_error=skip
 * @param speed       the speed setting: a limit or auto
 * @param autoWindow  speed=auto's window in fills, -1 when not auto
 */
record JobSnapshot(JobKind kind, JobState state, long id, long limit, OnError onError, String error,
                   String commandError, long doneBytes, long totalBytes, long rate, long rateAtNanos,
                   List<long[]> unreadable, JobSpeed speed, double autoWindow) {
    static final JobSnapshot NONE = new JobSnapshot(JobKind.NONE, JobState.IDLE, 0, 0, OnError.STOP, null, null,
            0, 0, 0, 0, List.of(), JobSpeed.UNLIMITED, -1);
}
