package corfs.backing.qcow2;

import java.io.IOException;

/**
 * A raw image at the bottom of a chain: all data, its size the file's size. It does not know the
 * source's holes (a source has no allocation call yet), so its whole extent counts as data.
 */
final class RawLayer implements Layer {
    private final Qcow2Source source;
    private final long size;

    RawLayer(Qcow2Source source) {
        this.source = source;
        this.size = source.size();
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public Qcow2Source source() {
        return source;
    }

    @Override
    public LayerInfo info() {
        return new LayerInfo(source.location(), "raw", 0, 0, null, false, size, null, null);
    }

    @Override
    public Mapping map(long offset, long max, Cursor cursor) {
        return new Mapping(MapKind.DATA, Math.min(max, size - offset), offset);
    }

    @Override
    public int clusterSize() {
        return 0;
    }

    @Override
    public void readCompressed(long descriptor, byte[] cluster) throws IOException {
        throw new IllegalStateException("a raw layer has no compressed clusters");
    }
}
