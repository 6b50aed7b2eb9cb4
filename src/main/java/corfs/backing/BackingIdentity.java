package corfs.backing;

import java.util.Objects;

/**
 * What the leaf remembers of its backing to notice that it was replaced or changed behind its back. A
 * leaf's clusters that are not local are read from the backing, so a different backing silently
 * changes the disk: mounting refuses then.
 *
 * <p>An identity is an opaque <b>token</b>, compared as a whole, with a human <b>description</b> for
 * messages and {@code corfs info}, and the backing's size. Each transport makes its own token and puts
 * in it everything that identifies its backing, the size included (a file: size, mtime, inode). Two
 * identities are equal when their tokens are; the description and the size are not compared (the size
 * is part of every token). The token is printable ASCII of at most {@link #MAX_TOKEN_BYTES} bytes (a
 * transport hashes anything longer); the description is text without control characters of at most
 * {@link #MAX_DESCRIPTION_BYTES} bytes. The metadata stores all three as they are.
 */
public final class BackingIdentity {
    public static final int MAX_TOKEN_BYTES = 200;
    public static final int MAX_DESCRIPTION_BYTES = 200;

    private final String token;
    private final String description;
    private final long size;

    private BackingIdentity(String token, String description, long size) {
        this.token = token;
        this.description = description;
        this.size = size;
    }

    /** The identity of a local file: its size, modification time in nanoseconds and inode number. */
    public static BackingIdentity file(long size, long mtimeNanos, long inode) {
        return new BackingIdentity("file:" + size + ":" + mtimeNanos + ":" + inode,
                "size=" + size + " mtime_ns=" + mtimeNanos + " inode=" + inode, size);
    }

    /**
     * An identity from its parts, as stored in the metadata.
     *
     * @throws IllegalArgumentException if the token is empty, too long or not printable ASCII, the
     *                                  description too long or holds a control character, or the size
     *                                  is negative
     */
    public static BackingIdentity of(String token, String description, long size) {
        Objects.requireNonNull(token, "token");
        Objects.requireNonNull(description, "description");
        if (token.isEmpty() || token.length() > MAX_TOKEN_BYTES || !token.chars().allMatch(c -> c > 0x20 && c < 0x7f)) {
            throw new IllegalArgumentException("identity token is empty, too long or not printable ASCII");
        }
        if (description.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_DESCRIPTION_BYTES
                || description.chars().anyMatch(Character::isISOControl)) {
            throw new IllegalArgumentException("identity description is too long or holds a control character");
        }
        if (size < 0) {
            throw new IllegalArgumentException("identity size " + size);
        }
        return new BackingIdentity(token, description, size);
    }

    /** The canonical token: what equality compares. */
    public String token() {
        return token;
    }

    /** A one-line description for messages and {@code corfs info}. */
    public String describe() {
        return description;
    }

    /** The backing's size in bytes when the identity was taken. */
    public long size() {
        return size;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BackingIdentity other && token.equals(other.token);
    }

    @Override
    public int hashCode() {
        return token.hashCode();
    }

    @Override
    public String toString() {
        return description;
    }
}
