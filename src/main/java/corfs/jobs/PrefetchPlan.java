package corfs.jobs;

import corfs.image.AccessProfile;

import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * A profile laid over one leaf's clusters, built once per prefetch run and never changed: its extents cut
 * into <b>chunks</b> (the clusters of one fill, at most one fill chunk each) in profile order, and its
 * extents sorted by offset so that a guest read finds the profile entries it touches by binary search.
 *
 * <p>Bytes here are the profile's: a chunk's {@link #chunkBytes} is the part of its extent it covers, so
 * the chunks of an extent add up to its length and all chunks to {@link #totalBytes}, whatever the leaf's
 * cluster size (a profile taken with smaller clusters than the leaf's may name one leaf cluster in two
 * chunks: the second finds it local). {@link #chunkBefore} is the profile bytes before a chunk in profile
 * order: the prefetch window is measured in these.
 */
final class PrefetchPlan {
    final int clusterShift;
    final long totalBytes;
    final int chunks;
    final long[] chunkFirst;
    final long[] chunkLast;
    final long[] chunkBytes;
    final long[] chunkBefore;
    /** Per profile entry (profile order): its first chunk, and the profile bytes up to its end. */
    final int[] entryFirstChunk;
    final long[] entryEnd;
    /** The entries sorted by offset: start and end byte, and the entry's index in profile order. */
    private final long[] sortedStart;
    private final long[] sortedEnd;
    private final int[] sortedIndex;

    private PrefetchPlan(int clusterShift, List<AccessProfile.Entry> entries, long chunkClusters) {
        this.clusterShift = clusterShift;
        int n = entries.size();
        long count = 0;
        for (AccessProfile.Entry e : entries) {
            long first = e.offset() >>> clusterShift;
            long last = (e.end() - 1) >>> clusterShift;
            count += (last - first) / chunkClusters + 1;
        }
        if (count > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("profile of " + count + " chunks");
        }
        this.chunks = (int) count;
        this.chunkFirst = new long[chunks];
        this.chunkLast = new long[chunks];
        this.chunkBytes = new long[chunks];
        this.chunkBefore = new long[chunks];
        this.entryFirstChunk = new int[n];
        this.entryEnd = new long[n];
        int k = 0;
        long before = 0;
        for (int i = 0; i < n; i++) {
            AccessProfile.Entry e = entries.get(i);
            entryFirstChunk[i] = k;
            long last = (e.end() - 1) >>> clusterShift;
            for (long c = e.offset() >>> clusterShift; c <= last; c += chunkClusters) {
                long cLast = Math.min(last, c + chunkClusters - 1);
                long bytes = Math.min(e.end(), (cLast + 1) << clusterShift) - Math.max(e.offset(), c << clusterShift);
                chunkFirst[k] = c;
                chunkLast[k] = cLast;
                chunkBytes[k] = bytes;
                chunkBefore[k] = before;
                before += bytes;
                k++;
            }
            entryEnd[i] = before;
        }
        this.totalBytes = before;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingLong(i -> entries.get(i).offset()));
        this.sortedStart = new long[n];
        this.sortedEnd = new long[n];
        this.sortedIndex = new int[n];
        for (int j = 0; j < n; j++) {
            AccessProfile.Entry e = entries.get(order[j]);
            sortedStart[j] = e.offset();
            sortedEnd[j] = e.end();
            sortedIndex[j] = order[j];
        }
    }

    /**
     * The plan of {@code profile} over a leaf of {@code clusterSize}-byte clusters, fills of at most
     * {@code chunkClusters} clusters. The profile is already checked against the leaf (extents inside
     * the disk, none overlapping).
     */
    static PrefetchPlan of(AccessProfile profile, int clusterSize, long chunkClusters) {
        return new PrefetchPlan(Integer.numberOfTrailingZeros(clusterSize), profile.entries(), Math.max(1, chunkClusters));
    }

    int entries() {
        return entryEnd.length;
    }

    /**
     * The first position in offset order of an entry overlapping bytes [start, end), or -1. Extents do not
     * overlap, so their ends ascend with their starts: one binary search over the ends.
     */
    int firstOverlap(long start, long end) {
        int lo = 0;
        int hi = sortedEnd.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (sortedEnd[mid] <= start) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo < sortedStart.length && sortedStart[lo] < end ? lo : -1;
    }

    /** Sorted position {@code j}'s start byte, end byte and profile index. */
    long sortedStart(int j) {
        return sortedStart[j];
    }

    long sortedEnd(int j) {
        return sortedEnd[j];
    }

    int sortedIndex(int j) {
        return sortedIndex[j];
    }

    int sortedCount() {
        return sortedIndex.length;
    }
}
