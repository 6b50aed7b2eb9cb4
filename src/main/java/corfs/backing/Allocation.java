package corfs.backing;

/**
 * What a backing holds over a range starting at some offset: the answer of
 * {@link Backing#allocation(long, long)}, one extent of one kind.
 *
 * <ul>
 * <li>{@link Kind#DATA}: allocated; must be read.</li>
 * <li>{@link Kind#ZERO}: allocated and known to read as zeros (a qcow2 zero cluster); need not be read.</li>
 * <li>{@link Kind#HOLE}: not allocated; reads as zeros (a hole of a raw file); need not be read.</li>
 * <li>{@link Kind#UNKNOWN}: the backing cannot tell; treat as data.</li>
 * </ul>
 *
 * @param length bytes from the asked offset, at least 1 and at most the asked maximum
 */
public record Allocation(Kind kind, long length) {
    public enum Kind { DATA, ZERO, HOLE, UNKNOWN }

    public Allocation {
        if (kind == null || length <= 0) {
            throw new IllegalArgumentException("allocation " + kind + " of " + length + " bytes");
        }
    }

    /** True when the extent reads as zeros without being read (ZERO or HOLE). */
    public boolean readsAsZeros() {
        return kind == Kind.ZERO || kind == Kind.HOLE;
    }

    @Override
    public String toString() {
        return kind.name().toLowerCase(java.util.Locale.ROOT) + "+" + length;
    }
}
