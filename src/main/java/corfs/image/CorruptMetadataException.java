package corfs.image;

import corfs.CorfsException;

/** The metadata cannot be trusted: corrupt, truncated, of another leaf or of an unknown version. */
public final class CorruptMetadataException extends CorfsException {
    public CorruptMetadataException(String message) {
        super(Reason.IO, message);
    }
}
