package corfs.backing.http;

import corfs.CorfsException;

/**
 * The object on the server is no longer the one recorded at open (a 412 to a conditional request, or a
 * response naming another ETag or size). Sticky: once a reader has seen it, every later read fails with
 * it too, so a leaf never mixes data of two versions of an image. EIO.
 */
public final class BackingChangedException extends CorfsException {
    public BackingChangedException(String message) {
        super(Reason.IO, message);
    }
}
