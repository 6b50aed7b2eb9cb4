package corfs.jobs;

import corfs.engine.BackingReadException;
import corfs.engine.LeafDisk;
import corfs.image.ClusterBitmap;
import corfs.vocabulary.OnError;

import java.io.IOException;

/**
 * A stream run: fills every cluster that is not local, in order. A hole of the backing becomes a hole
 * of the leaf in one step, however long (1 GiB at most). With on_error=skip a failing range is isolated
 * cluster by cluster: the readable ones are filled, the others reported to the {@link Skipped} sink and
 * not revisited by this run. Other read errors are thrown for the job's {@link ErrorPolicy}.
 */
final class StreamStep implements JobStep {
    /** Where skipped clusters go (the job's unreadable list and ledger). Called with no monitor held. */
    interface Skipped {
        void unreadable(long offset, long length, String message);
    }

    private static final long MAX_HOLE_STEP = 1L << 30;

    private final LeafDisk disk;
    private final OnError onError;
    private final Skipped skipped;
    private long cursor;
    private boolean skippedAny;

    StreamStep(LeafDisk disk, OnError onError, Skipped skipped) {
        this.disk = disk;
        this.onError = onError;
        this.skipped = skipped;
    }

    @Override
    public long step(int maxClusters) throws IOException {
        ClusterBitmap local = disk.image().local();
        long clusters = disk.clusters();
        long first = local.nextClear(cursor, clusters);
        if (first >= clusters && cursor > 0) {
            first = skippedAny ? clusters : local.nextClear(0, clusters); // skipped extents are not revisited
        }
        if (first >= clusters) {
            return FINISHED;
        }
        int cs = disk.clusterSize();
        long last = Math.min(clusters - 1, first + maxClusters - 1);
        long holeEnd = disk.backingHoleEnd(first);
        if (holeEnd > first) {
            last = Math.min(holeEnd - 1, first + Math.max(1, MAX_HOLE_STEP / cs) - 1);
        }
        long missingBytes = (last - first + 1) * (long) cs - local.count(first, last + 1) * (long) cs;
        if (last == clusters - 1 && !local.get(last)) {
            missingBytes -= clusters * cs - disk.size();
        }
        try {
            disk.fill(first, last);
        } catch (BackingReadException e) {
            if (onError != OnError.SKIP) {
                throw e;
            }
            isolate(first, last);
            missingBytes = Math.min(disk.size(), (last + 1) * cs) - first * cs;
        }
        cursor = last + 1;
        return missingBytes;
    }

    /** Fills the readable clusters of [first, last] one by one and reports the others. */
    private void isolate(long first, long last) throws IOException {
        int cs = disk.clusterSize();
        for (long c = first; c <= last; c++) {
            try {
                disk.fill(c, c);
            } catch (BackingReadException single) {
                long off = c * cs;
                skippedAny = true;
                skipped.unreadable(off, Math.min(disk.size(), off + cs) - off, single.getMessage());
            }
        }
    }

    @Override
    public void complete() throws IOException {
        disk.flush();
    }

    @Override
    public boolean close() {
        return false;
    }
}
