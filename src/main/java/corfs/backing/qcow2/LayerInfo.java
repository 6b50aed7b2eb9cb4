package corfs.backing.qcow2;

/**
 * One image of a chain, for {@code corfs info}.
 *
 * @param location      where it is (the source's location)
 * @param format        {@code qcow2} or {@code raw}
 * @param version       qcow2 version (2 or 3), 0 for raw
 * @param clusterSize   bytes, 0 for raw
 * @param compression   {@code zlib} or {@code zstd}, null for raw
 * @param extendedL2    whether L2 entries have subclusters
 * @param virtualSize   the layer's own virtual size (the file's size for raw)
 * @param backingName   the backing file name as written in the header, or null
 * @param backingFormat the backing format from the header extension, {@code probed:FORMAT} when the
 *                      header has none, or null without a backing file
 */
public record LayerInfo(String location, String format, int version, int clusterSize, String compression,
                        boolean extendedL2, long virtualSize, String backingName, String backingFormat) {
}
