package corfs.io;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Chooses the native implementation when it can be loaded, by name so that this package never links jnr. */
final class SystemFileOps {
    private static final Logger LOG = LoggerFactory.getLogger(SystemFileOps.class);
    static final FileOps INSTANCE = load();

    private SystemFileOps() {
    }

    private static FileOps load() {
        try {
            Class<?> type = Class.forName("corfs.os.LinuxFileOps");
            return (FileOps) type.getMethod("load").invoke(null);
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            LOG.warn("native file operations unavailable ({}); holes will be written as zeros", e.toString());
            return new PortableFileOps();
        }
    }
}
