package corfs.backing.qcow2;

import com.github.luben.zstd.RecyclingBufferPool;
import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdInputStreamNoFinalizer;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The compression of a qcow2 image's compressed clusters (header field {@code compression_type}).
 *
 * <p>Thread-safety: a call takes a decompressor from a small shared pool (or makes one) and gives it
 * back after, so any number of threads decompress different clusters at once and no decompressor is
 * ever used by two threads. Safe against bombs: the output is exactly one cluster (the caller's array)
 * and the input at most the descriptor's span (two clusters); decompression stops as soon as the cluster
 * is full, like QEMU's ({@code qcow2-threads.c}), and anything less than a full cluster is an error there
 * and here.
 */
enum Compression {
    /** Raw deflate (no zlib header), QEMU's {@code inflateInit2(-12)}. */
    ZLIB("zlib") {
        @Override
        void decompress(byte[] src, int srcLen, byte[] dst) throws IOException {
            Inflater inflater = Pools.INFLATERS.pollFirst();
            if (inflater == null) {
                inflater = new Inflater(true);
            }
            boolean reusable = false;
            try {
                inflater.setInput(src, 0, srcLen);
                int n = 0;
                int stalls = 0;
                while (n < dst.length) {
                    int r = inflater.inflate(dst, n, dst.length - n);
                    if (r == 0 && (inflater.finished() || inflater.needsInput() || inflater.needsDictionary()
                            || ++stalls > 2)) {
                        throw new IOException("deflate data ends after " + n + " of " + dst.length + " bytes");
                    }
                    n += r;
                }
                reusable = true;
            } catch (DataFormatException e) {
                throw new IOException("bad deflate data: " + e.getMessage(), e);
            } finally {
                if (reusable && Pools.INFLATERS.size() < Pools.MAX_POOLED) {
                    inflater.reset();
                    Pools.INFLATERS.offerFirst(inflater);
                } else {
                    inflater.end();
                }
            }
        }
    },
    /** zstd frames (zstd-jni). */
    ZSTD("zstd") {
        @Override
        void decompress(byte[] src, int srcLen, byte[] dst) throws IOException {
            try {
                if (!decompressFrames(src, srcLen, dst)) {
                    decompressStream(src, srcLen, dst);
                }
            } catch (LinkageError e) {
                throw new IOException("zstd is unavailable on this platform: " + e, e);
            }
        }
    };

    /**
     * zstd's streaming decoder keeps a window; a frame of one cluster never needs more than the cluster.
     * QEMU leaves zstd's default limit (128 MiB); we bound it at 8 MiB.
     */
    static final int ZSTD_WINDOW_LOG_MAX = 23;

    final String label;

    Compression(String label) {
        this.label = label;
    }

    /** Fills all of {@code dst} from the first {@code srcLen} bytes of {@code src}, or throws. */
    abstract void decompress(byte[] src, int srcLen, byte[] dst) throws IOException;

    /** Idle decompressors, shared by all images; at most {@link #MAX_POOLED} of each kind. */
    private static final class Pools {
        static final int MAX_POOLED = 16;
        static final ConcurrentLinkedDeque<Inflater> INFLATERS = new ConcurrentLinkedDeque<>();
        static final ConcurrentLinkedDeque<ZstdDecompressCtx> ZSTD_CONTEXTS = new ConcurrentLinkedDeque<>();
    }

    /**
     * The fast path: whole frames decompressed straight into the cluster (one-shot, so zstd needs no
     * window beyond {@code dst}), frame after frame until the cluster is full; the bytes after the last
     * frame (the rest of its sector) are never parsed. False when the data does not decode this way
     * (for instance a frame larger than the cluster, which QEMU's streaming decoder cuts at the cluster's
     * end): the caller then decodes as QEMU does.
     */
    private static boolean decompressFrames(byte[] src, int srcLen, byte[] dst) {
        ZstdDecompressCtx ctx = Pools.ZSTD_CONTEXTS.pollFirst();
        if (ctx == null) {
            ctx = new ZstdDecompressCtx();
        }
        boolean ok = false;
        try {
            int in = 0;
            int out = 0;
            while (out < dst.length) {
                if (in >= srcLen) {
                    return false;
                }
                long frame = Zstd.findFrameCompressedSize(src, in, srcLen - in);
                if (frame <= 0 || frame > srcLen - in || Zstd.isError(frame)) {
                    return false;
                }
                out += ctx.decompressByteArray(dst, out, dst.length - out, src, in, (int) frame);
                in += (int) frame;
            }
            ok = true;
            return true;
        } catch (RuntimeException e) {
            return false;
        } finally {
            if (ok && Pools.ZSTD_CONTEXTS.size() < Pools.MAX_POOLED) {
                Pools.ZSTD_CONTEXTS.offerFirst(ctx);
            } else {
                ctx.close();
            }
        }
    }

    /** QEMU's way: stream until the cluster is full, whatever follows. */
    private static void decompressStream(byte[] src, int srcLen, byte[] dst) throws IOException {
        try (ZstdInputStreamNoFinalizer in = new ZstdInputStreamNoFinalizer(
                new ByteArrayInputStream(src, 0, srcLen), RecyclingBufferPool.INSTANCE)) {
            in.setLongMax(ZSTD_WINDOW_LOG_MAX);
            int n = in.readNBytes(dst, 0, dst.length);
            if (n < dst.length) {
                throw new IOException("zstd data ends after " + n + " of " + dst.length + " bytes");
            }
        } catch (RuntimeException e) {
            throw new IOException("bad zstd data: " + e.getMessage(), e);
        }
    }
}
