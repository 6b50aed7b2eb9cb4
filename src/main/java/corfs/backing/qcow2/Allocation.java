package corfs.backing.qcow2;

/**
 * What a range of the virtual disk is, seen through the whole chain.
 *
 * @param kind   what the range reads as
 * @param length bytes from the asked offset with this kind (at least 1; maybe less than the whole run)
 */
public record Allocation(Kind kind, long length) {
    public enum Kind {
        /** Data held by some layer (compressed included; a raw layer is all data). */
        DATA,
        /** Reads as zeros because a layer says so: the zero flag (v3) or a zero subcluster. */
        ZERO,
        /** Allocated nowhere in the chain (or past the end of the layer it falls to): reads as zeros. */
        HOLE,
    }

    public Allocation {
        if (length <= 0) {
            throw new IllegalArgumentException("empty allocation");
        }
    }
}
