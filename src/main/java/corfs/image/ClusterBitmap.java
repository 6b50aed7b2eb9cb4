package corfs.image;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A fixed-size set of cluster indices, safe for concurrent readers and writers without locks.
 *
 * <p>Every bit is read and changed with volatile semantics through a {@link VarHandle}, so a reader
 * that sees a bit set also sees everything the setter did before setting it (the leaf's data, for the
 * {@code local} bitmap). Compound decisions that span several bits are the caller's business (the engine
 * makes them under its cluster range lock).
 *
 * <p>The bitmap owns its index arithmetic: callers speak in cluster indices, the bitmap in 64-bit words;
 * {@link #copyWords}/{@link #loadWords} expose words only for persistence. {@link #toString()} prints
 * ranges, so a failing test reads well.
 */
public final class ClusterBitmap {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long size;
    private final long[] words;

    public ClusterBitmap(long size) {
        if (size < 0 || (size + 63) / 64 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bitmap size out of range: " + size);
        }
        this.size = size;
        this.words = new long[(int) ((size + 63) / 64)];
    }

    /** Number of clusters (bits). */
    public long size() {
        return size;
    }

    public boolean get(long index) {
        checkIndex(index);
        long word = (long) WORDS.getVolatile(words, (int) (index >>> 6));
        return (word & (1L << index)) != 0;
    }

    /** Sets the bit; returns true if it was clear before. */
    public boolean set(long index) {
        checkIndex(index);
        long mask = 1L << index;
        long old = (long) WORDS.getAndBitwiseOr(words, (int) (index >>> 6), mask);
        return (old & mask) == 0;
    }

    /** Clears the bit; returns true if it was set before. */
    public boolean clear(long index) {
        checkIndex(index);
        long mask = 1L << index;
        long old = (long) WORDS.getAndBitwiseAnd(words, (int) (index >>> 6), ~mask);
        return (old & mask) != 0;
    }

    /** True if every bit in [from, to) is set. */
    public boolean allSet(long from, long to) {
        return nextClear(from, to) >= to;
    }

    /** The first set bit in [from, to), or {@code to} if none. */
    public long nextSet(long from, long to) {
        return next(from, to, false);
    }

    /** The first clear bit in [from, to), or {@code to} if none. */
    public long nextClear(long from, long to) {
        return next(from, to, true);
    }

    private long next(long from, long to, boolean lookForClear) {
        if (from < 0 || to > size || from > to) {
            throw new IndexOutOfBoundsException("[" + from + ", " + to + ") of " + size);
        }
        long i = from;
        while (i < to) {
            int w = (int) (i >>> 6);
            long word = (long) WORDS.getVolatile(words, w);
            if (lookForClear) {
                word = ~word;
            }
            word &= -1L << i; // ignore bits below i in this word
            if (word != 0) {
                long found = ((long) w << 6) + Long.numberOfTrailingZeros(word);
                return Math.min(found, to);
            }
            i = ((long) w + 1) << 6;
        }
        return to;
    }

    /** Number of set bits. */
    public long count() {
        long n = 0;
        for (int w = 0; w < words.length; w++) {
            n += Long.bitCount((long) WORDS.getVolatile(words, w));
        }
        return n;
    }

    /** Number of set bits in [from, to). */
    public long count(long from, long to) {
        long n = 0;
        long i = nextSet(from, to);
        while (i < to) {
            long end = nextClear(i, to);
            n += end - i;
            i = end < to ? nextSet(end, to) : to;
        }
        return n;
    }

    /** Copies {@code count} words starting at word {@code fromWord} into {@code dst} at {@code dstIndex}. */
    void copyWords(int fromWord, long[] dst, int dstIndex, int count) {
        for (int k = 0; k < count; k++) {
            int w = fromWord + k;
            dst[dstIndex + k] = w < words.length ? (long) WORDS.getVolatile(words, w) : 0L;
        }
    }

    /** Replaces words from {@code fromWord} with {@code src}; bits past {@link #size()} must be zero. */
    void loadWords(int fromWord, long[] src, int srcIndex, int count) {
        for (int k = 0; k < count; k++) {
            int w = fromWord + k;
            if (w < words.length) {
                WORDS.setVolatile(words, w, src[srcIndex + k]);
            } else if (src[srcIndex + k] != 0) {
                throw new IllegalArgumentException("bits set past the end of the bitmap at word " + w);
            }
        }
        long tailBits = size & 63;
        if (tailBits != 0 && words.length > 0) {
            long last = (long) WORDS.getVolatile(words, words.length - 1);
            if ((last & (-1L << tailBits)) != 0) {
                throw new IllegalArgumentException("bits set past the end of the bitmap (size " + size + ")");
            }
        }
    }

    int wordCount() {
        return words.length;
    }

    private void checkIndex(long index) {
        if (index < 0 || index >= size) {
            throw new IndexOutOfBoundsException("cluster " + index + " of " + size);
        }
    }

    /** The set ranges, like {@code [0-3, 7, 9-12] of 16}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("[");
        long i = nextSet(0, size);
        int shown = 0;
        while (i < size && shown < 64) {
            long end = nextClear(i, size);
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(i);
            if (end - 1 > i) {
                sb.append('-').append(end - 1);
            }
            shown++;
            i = end < size ? nextSet(end, size) : size;
        }
        if (i < size) {
            sb.append(", ...");
        }
        return sb.append("] of ").append(size).toString();
    }
}
