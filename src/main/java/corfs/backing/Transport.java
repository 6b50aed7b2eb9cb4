package corfs.backing;

import java.io.IOException;
import java.util.Map;
import java.util.Set;

/**
 * How the bytes of a backing are reached: a local file, an NBD export, an HTTP(S) URL, an S3 object. A
 * transport opens a SPEC as a raw {@link Backing} (the bytes of the object are the bytes it reads); a
 * format ({@code qcow2}) is decoded over it by the caller. {@link Backings} holds the transports and
 * picks the one that {@link #accepts} a SPEC.
 *
 * <p>Implementations are stateless and thread-safe; everything a backing needs lives in what
 * {@link #open} returns.
 */
public interface Transport {

    /** The transport's name in messages: {@code file}, {@code nbd}, {@code http}, {@code s3}. */
    String name();

    /** True when {@code spec} is this transport's (decided by its scheme alone; never does I/O). */
    boolean accepts(String spec);

    /**
     * The {@code --backing-opt} keys this transport understands beyond {@link Backings#COMMON_OPTIONS}
     * (for NBD {@code tls-ca}, ...). Any other key is a usage error.
     */
    Set<String> optionKeys();

    /**
     * Checks a SPEC and its options without doing I/O: a malformed SPEC or a bad option value is an
     * INVALID_ARGUMENT {@link corfs.CorfsException} naming what is wrong.
     */
    void validate(String spec, Map<String, String> options) throws IOException;

    /**
     * Opens {@code spec}: connects, checks that the server honours what corfs needs (ranges, block size,
     * TLS), and reads the size. Fails with a one-line message naming the address and the cause. The
     * caller owns (closes) the result. {@link Backing#identity()} of the result identifies the content
     * (a file: size, mtime, inode; HTTP: size and ETag; NBD: size and sampled blocks).
     *
     * @param options the options stored with the leaf (validated); {@code timeout} is the per-call
     *                deadline in seconds when present
     */
    Backing open(String spec, Map<String, String> options) throws IOException;
}
