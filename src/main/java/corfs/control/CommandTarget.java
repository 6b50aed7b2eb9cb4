package corfs.control;

import corfs.vocabulary.LeafStatus;
import java.io.IOException;
import java.util.List;

/**
 * What the control file drives: in a mount, the {@code MountSession}. {@link ControlFile} calls it from
 * many FUSE threads at once, so implementations must be thread-safe.
 */
public interface CommandTarget {

    /**
     * Carries out one well-formed command.
     *
     * @throws IOException a {@link corfs.CorfsException} whose reason says why it could not be carried out
     *         (unknown image, job already running...); the command must then have changed nothing
     */
    void execute(ControlCommand command) throws IOException;

    /**
     * Remembers the error of a rejected command line so that the status shows it.
     *
     * @param image the image the command named, or null when unknown (a line that did not parse, or a
     *              command that left the image out)
     */
    void recordError(String image, String message);

    /** The current status of every leaf, in a stable order. */
    List<LeafStatus> status();
}
