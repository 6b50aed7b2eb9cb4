package corfs.vocabulary;

import java.util.Locale;

/**
 * Where a leaf's prefetch stands, as the status shows it ({@code prefetch=}). Not persisted: a pending
 * prefetch is recorded by its sidecar file ({@code LEAF.corfs-prefetch}), not by a state code.
 * <ul>
 * <li>{@code NONE}: no prefetch in this mount (none was asked for, none was pending, or the mount is
 * read-only).</li>
 * <li>{@code RUNNING}: fetching the profile's extents, following the guest.</li>
 * <li>{@code COMPLETED}: every cluster the profile names is local.</li>
 * <li>{@code FAILED}: stopped on an error (a backing read, the leaf's filesystem, a pending profile that no
 * longer matches the leaf); the sidecar stays, so the next mount tries again.</li>
 * <li>{@code CANCELLED}: stopped by {@code prefetch [IMAGE] cancel}; the sidecar is gone.</li>
 * </ul>
 */
public enum PrefetchState {
    NONE, RUNNING, COMPLETED, FAILED, CANCELLED;

    public String word() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The state a {@link #word()} names. */
    public static PrefetchState ofWord(String word) {
        for (PrefetchState s : values()) {
            if (s.word().equals(word)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown prefetch state " + word);
    }
}
