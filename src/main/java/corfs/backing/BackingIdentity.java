package corfs.backing;

/**
 * What the leaf remembers of its backing to notice that it was replaced or changed behind its back:
 * size, modification time (nanoseconds) and inode number. A leaf's clusters that are not local are read
 * from the backing, so a different backing silently changes the disk: mounting refuses then.
 */
public record BackingIdentity(long size, long mtimeNanos, long inode) {
    /** A one-line description for error messages. */
    public String describe() {
        return "size=" + size + " mtime_ns=" + mtimeNanos + " inode=" + inode;
    }
}
