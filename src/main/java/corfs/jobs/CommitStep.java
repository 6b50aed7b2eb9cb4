package corfs.jobs;

import corfs.backing.Backing;
import corfs.engine.LeafDisk;
import corfs.image.ClusterBitmap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A commit run: copies dirty clusters to the backing through its own writer, makes the backing durable
 * every {@value #FLUSH_BYTES} bytes and only then clears those clusters' dirty bits; repeats passes until
 * nothing is dirty. The writer is opened with the run and closed by {@link #close()}, exactly once, so
 * the backing is writable only while a commit run exists.
 */
final class CommitStep implements JobStep {
    private static final Logger LOG = LoggerFactory.getLogger(CommitStep.class);
    static final long FLUSH_BYTES = 32L << 20;

    private final LeafDisk disk;
    private final Backing.Writer writer;
    /** Copied clusters waiting for a backing flush before their dirty bits clear. */
    private final List<long[]> uncommitted = new ArrayList<>();
    private long uncommittedBytes;
    private long cursor;
    private boolean closed;

    private CommitStep(LeafDisk disk, Backing.Writer writer) {
        this.disk = disk;
        this.writer = writer;
    }

    /** Opens the backing for writing (I/O: call with no monitor held). Fails with READ_ONLY if it cannot. */
    static CommitStep open(LeafDisk disk) throws IOException {
        return new CommitStep(disk, disk.backing().openWriter());
    }

    @Override
    public long step(int maxClusters) throws IOException {
        ClusterBitmap dirty = disk.image().dirty();
        long clusters = disk.clusters();
        long first = dirty.nextSet(cursor, clusters);
        if (first >= clusters) {
            flushCommitted();
            if (dirty.nextSet(0, clusters) < clusters) {
                cursor = 0; // written again while we went: another pass
                return 0;
            }
            return FINISHED;
        }
        long last = Math.min(clusters - 1, first + maxClusters - 1);
        long[] copied = disk.copyDirtyToBacking(first, last, writer);
        long bytes = 0;
        for (long c : copied) {
            bytes += Math.min(disk.size(), (c + 1) * disk.clusterSize()) - c * disk.clusterSize();
        }
        uncommitted.add(copied);
        uncommittedBytes += bytes;
        cursor = last + 1;
        if (uncommittedBytes >= FLUSH_BYTES) {
            flushCommitted();
        }
        return bytes;
    }

    /** The backing's durability, then the dirty bits: never clear a bit for data the backing may lose. */
    private void flushCommitted() throws IOException {
        if (uncommitted.isEmpty()) {
            return;
        }
        writer.flush();
        for (long[] copied : uncommitted) {
            disk.markCommitted(copied);
        }
        uncommitted.clear();
        uncommittedBytes = 0;
    }

    @Override
    public void complete() throws IOException {
        flushCommitted();
        disk.flush(); // the cleared dirty bits, durable
    }

    @Override
    public boolean close() {
        if (closed) {
            return false;
        }
        closed = true;
        try {
            flushCommitted();
        } catch (IOException | RuntimeException e) {
            LOG.warn("{}: flushing the backing at the end of the commit failed: {}", disk.name(), e.toString());
        }
        try {
            writer.close();
        } catch (IOException | RuntimeException e) {
            LOG.debug("{}: closing the backing writer", disk.name(), e);
        }
        return true;
    }
}
