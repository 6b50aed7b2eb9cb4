package corfs.backing.qcow2;

import corfs.backing.Backing;

import java.io.IOException;

/**
 * Opens the layers below the top of a qcow2 chain: each backing file name, resolved by
 * {@link ChainNames#resolve} into a SPEC of the same transport as the layer naming it, is opened here as
 * raw bytes (a qcow2 file is read as its container, a raw base as the disk itself). The caller of
 * {@link Qcow2Backing#open} implements it with the transport that opened the top, with the same options.
 */
@FunctionalInterface
public interface LayerOpener {
    /**
     * Opens {@code spec} as a raw {@link Backing}; the caller ({@link Qcow2Backing}) owns and closes the
     * result. Fails with a one-line message naming the (redacted) SPEC and the cause.
     */
    Backing open(String spec) throws IOException;
}
