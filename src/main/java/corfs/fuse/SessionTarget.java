package corfs.fuse;

import corfs.control.CommandTarget;
import corfs.control.ControlCommand;
import corfs.jobs.LeafStatus;
import corfs.jobs.MountSession;
import java.io.IOException;
import java.util.List;

/** The mount session seen as the control file's {@link CommandTarget}. */
final class SessionTarget implements CommandTarget {
    private final MountSession session;

    SessionTarget(MountSession session) {
        this.session = session;
    }

    @Override
    public void execute(ControlCommand command) throws IOException {
        session.execute(command);
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
