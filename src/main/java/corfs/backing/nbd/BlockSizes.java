package corfs.backing.nbd;

/**
 * The server's size constraints ({@code NBD_INFO_BLOCK_SIZE}), which a client that asked for them must
 * obey: every offset and length a multiple of {@code minimum}, no READ or WRITE longer than
 * {@code maximum}; {@code preferred} is the size below which the server does read-modify-write.
 *
 * @param minimum   power of two, 1 to 64 KiB
 * @param preferred power of two, at least {@code max(minimum, 512)}
 * @param maximum   largest payload of one request, at least {@code preferred}; corfs caps it at 32 MiB
 */
public record BlockSizes(int minimum, int preferred, int maximum) {

    /** What the protocol says to assume when the server advertises nothing. */
    static final BlockSizes DEFAULT = new BlockSizes(1, 4096, NbdProtocol.MAX_PAYLOAD_CAP);

    /** Checks what a server sent and caps the maximum; null if it breaks the protocol's rules. */
    static BlockSizes of(long minimum, long preferred, long maximum) {
        if (minimum < 1 || minimum > 65536 || Long.bitCount(minimum) != 1
                || preferred < Math.max(minimum, 512) || Long.bitCount(preferred) != 1 || preferred > 1L << 30
                || maximum < preferred) {
            return null;
        }
        long max = Math.min(maximum, NbdProtocol.MAX_PAYLOAD_CAP);
        max -= max % minimum;
        return new BlockSizes((int) minimum, (int) preferred, (int) max);
    }
}
