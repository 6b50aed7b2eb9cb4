package corfs.fuse;

import corfs.control.CommandTarget;
import corfs.control.ControlCommand;
import corfs.jobs.MountSession;
import corfs.vocabulary.JobKind;
import corfs.vocabulary.LeafStatus;
import java.io.IOException;
import java.util.List;

/**
 * The mount session seen as the control file's {@link CommandTarget}: the one place where a parsed
 * control command becomes a call on the session. It lives above both {@code control} and {@code jobs}
 * so that neither of them knows the other.
 */
final class SessionTarget implements CommandTarget {
    private final MountSession session;

    SessionTarget(MountSession session) {
        this.session = session;
    }

    @Override
    public void execute(ControlCommand command) throws IOException {
        String image = command.image();
        if (command instanceof ControlCommand.Stream s) {
            session.startJobAt(image, JobKind.STREAM, s.speed(), s.onError());
        } else if (command instanceof ControlCommand.Commit c) {
            session.startJob(image, JobKind.COMMIT, c.speed(), c.onError()); // Long: a commit has no auto
        } else if (command instanceof ControlCommand.Pause) {
            session.pause(image);
        } else if (command instanceof ControlCommand.Resume) {
            session.resume(image);
        } else if (command instanceof ControlCommand.Cancel) {
            session.cancel(image);
        } else if (command instanceof ControlCommand.Speed s) {
            session.setSpeed(image, s.speed());
        } else if (command instanceof ControlCommand.Prioritize p) {
            List<long[]> ranges = new java.util.ArrayList<>(p.ranges().size());
            for (ControlCommand.Range r : p.ranges()) {
                ranges.add(new long[] {r.offset(), r.length() == null ? 0 : r.length()}); // 0: one cluster
            }
            session.prioritize(image, ranges);
        } else if (command instanceof ControlCommand.Prefetch p) {
            session.prefetch(image, java.nio.file.Path.of(p.file()));
        } else if (command instanceof ControlCommand.PrefetchCancel) {
            session.cancelPrefetch(image);
        } else {
            throw new IllegalStateException("unhandled command " + command);
        }
    }

    @Override
    public void recordError(String image, String message) {
        session.recordError(image, message);
    }

    @Override
    public List<LeafStatus> status() {
        return session.status();
    }
}
