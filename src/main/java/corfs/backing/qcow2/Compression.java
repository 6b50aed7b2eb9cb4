package corfs.backing.qcow2;

import com.github.luben.zstd.RecyclingBufferPool;
import com.github.luben.zstd.ZstdInputStreamNoFinalizer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The compression of a qcow2 image's compressed clusters (header field {@code compression_type}).
 *
 * <p>Thread-safety: every call makes and frees its own decompressor, so any number of threads
 * decompress different clusters at once. Safe against bombs: the output is exactly one cluster (the
 * caller's array) and the input at most the descriptor's span (two clusters); decompression stops as soon
 * as the cluster is full, like QEMU's ({@code qcow2-threads.c}), and anything less than a full cluster
 * is an error there and here.
 */
enum Compression {
    /** Raw deflate (no zlib header), QEMU's {@code inflateInit2(-12)}. */
    ZLIB("zlib") {
        @Override
        void decompress(byte[] src, int srcLen, byte[] dst) throws IOException {
            Inflater inflater = new Inflater(true);
            try {
                inflater.setInput(src, 0, srcLen);
                int n = 0;
                int stalls = 0;
                while (n < dst.length) {
                    int r = inflater.inflate(dst, n, dst.length - n);
                    if (r == 0) {
                        if (inflater.finished() || inflater.needsInput() || inflater.needsDictionary() || ++stalls > 2) {
                            throw new IOException("deflate data ends after " + n + " of " + dst.length + " bytes");
                        }
                    }
                    n += r;
                }
            } catch (DataFormatException e) {
                throw new IOException("bad deflate data: " + e.getMessage(), e);
            } finally {
                inflater.end();
            }
        }
    },
    /** zstd frames (zstd-jni). */
    ZSTD("zstd") {
        @Override
        void decompress(byte[] src, int srcLen, byte[] dst) throws IOException {
            try (ZstdInputStreamNoFinalizer in = new ZstdInputStreamNoFinalizer(
                    new ByteArrayInputStream(src, 0, srcLen), RecyclingBufferPool.INSTANCE)) {
                // QEMU leaves zstd's default window limit (128 MiB); a frame of one cluster never needs more
                // than the cluster, so we bound the decoder's memory at 8 MiB instead.
                in.setLongMax(ZSTD_WINDOW_LOG_MAX);
                int n = in.readNBytes(dst, 0, dst.length);
                if (n < dst.length) {
                    throw new IOException("zstd data ends after " + n + " of " + dst.length + " bytes");
                }
            } catch (RuntimeException e) {
                throw new IOException("bad zstd data: " + e.getMessage(), e);
            } catch (LinkageError e) {
                throw new IOException("zstd is unavailable on this platform: " + e, e);
            }
        }
    };

    static final int ZSTD_WINDOW_LOG_MAX = 23;

    final String label;

    Compression(String label) {
        this.label = label;
    }

    /** Fills all of {@code dst} from the first {@code srcLen} bytes of {@code src}, or throws. */
    abstract void decompress(byte[] src, int srcLen, byte[] dst) throws IOException;
}
