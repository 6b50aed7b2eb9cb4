package corfs.jobs;

import java.io.IOException;

/**
 * The work of one run of a job, one bounded step at a time: {@link StreamStep} or {@link CommitStep}.
 * A run is what a start or a resume begins; it owns what it opens (a commit's writer), and exactly one
 * thread uses it at a time: the filler while it steps, otherwise whoever retires it ({@link LeafJob}
 * guarantees this with the run's {@code stepping} flag). Steps are called with no monitor held.
 */
sealed interface JobStep permits StreamStep, CommitStep {
    /** Returned by {@link #step} when nothing is left to do. */
    long FINISHED = -1;

    /**
     * Does one step over at most {@code maxClusters} clusters (at least one); a stream keeps several such
     * steps in flight ({@link StreamStep}) and returns those that completed.
     *
     * @return the bytes processed (what done_bytes and the speed limit count), or {@link #FINISHED}
     */
    long step(int maxClusters) throws IOException;

    /**
     * Waits, at most {@code timeoutNanos}, until nothing this run started in the background is still
     * running (a stream's fills in flight); called by pause once the filler no longer steps the run.
     *
     * @return false if something still runs after the timeout
     */
    default boolean awaitQuiet(long timeoutNanos) {
        return true;
    }

    /** After {@link #FINISHED}: makes the result durable (a commit: the backing first, then the bits). */
    void complete() throws IOException;

    /**
     * Releases what the run holds, first making a commit's copied clusters durable. Idempotent; never
     * throws (a failure is logged).
     *
     * @return true if this closed a writer on the backing (so the backing's identity is to be recorded)
     */
    boolean close();
}
