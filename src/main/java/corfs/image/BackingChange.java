package corfs.image;

import corfs.backing.BackingIdentity;
import corfs.vocabulary.JobKind;

/**
 * The one rule for a backing whose identity differs from the one the leaf recorded, shared by mount,
 * {@code check} (and {@code info}, once it reports on the backing).
 *
 * <p>A changed backing silently changes every cluster that is not local, so it is refused, unless this
 * leaf's own commit changed it: the job record's {@link LeafHeader.JobRecord#backingWritten} flag is made
 * durable before a commit's first write and cleared only when the new identity is recorded after the
 * writer closed (completed, cancelled, failed or unmounted). A flag still set therefore means a commit of
 * this leaf was writing when the process died: the change is corfs's own, and the next writable mount
 * records the new identity. A leaf written by a corfs without the flag is recognised by its record of a
 * running or paused commit. A standalone leaf never reads its backing, so any change is fine.
 */
public final class BackingChange {
    private BackingChange() {
    }

    /** How the backing now compares with what the leaf recorded. */
    public enum Verdict {
        /** Same identity, or a standalone leaf: nothing to say. */
        SAME,
        /** Changed, by this leaf's own commit (interrupted before it could record the new identity). */
        CHANGED_BY_COMMIT,
        /** Changed by something else: clusters read from it would be wrong. */
        CHANGED
    }

    public static Verdict judge(LeafHeader header, BackingIdentity now) {
        if (header.standalone() || now.equals(header.backingIdentity())) {
            return Verdict.SAME;
        }
        LeafHeader.JobRecord job = header.job();
        boolean legacyCommitInFlight = job.kind() == JobKind.COMMIT && job.state().isActive();
        return job.backingWritten() || legacyCommitInFlight ? Verdict.CHANGED_BY_COMMIT : Verdict.CHANGED;
    }

    /** Why a {@link Verdict#CHANGED} backing is refused, for mount and check alike. */
    public static String problem(LeafHeader header, BackingIdentity now) {
        return "backing " + corfs.backing.BackingSpec.redact(header.backingSpec()) + " changed since the leaf recorded it (" + now.describe()
                + ", recorded " + header.backingIdentity().describe() + ") and no commit of this leaf was writing to"
                + " it: clusters read from it would be wrong";
    }
}
