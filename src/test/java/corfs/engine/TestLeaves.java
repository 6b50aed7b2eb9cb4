package corfs.engine;

import corfs.image.LeafImage;
import corfs.io.FileOps;
import corfs.io.PortableFileOps;
import corfs.backing.FileBacking;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Builds backings and leaves on real files for engine tests. */
public final class TestLeaves {
    private TestLeaves() {
    }

    /**
     * Writes a backing of {@code size} bytes: random data, with every fourth 64 KiB block left a hole
     * and every seventh one written as explicit zeros, so holes and zero clusters are both exercised.
     */
    public static byte[] writeBacking(Path path, int size, long seed) throws IOException {
        Random random = new Random(seed);
        byte[] content = new byte[size];
        random.nextBytes(content);
        int block = 64 * 1024;
        for (int b = 0; b * block < size; b++) {
            if (b % 4 == 1 || b % 7 == 3) {
                java.util.Arrays.fill(content, b * block, Math.min(size, (b + 1) * block), (byte) 0);
            }
        }
        try (var ch = java.nio.channels.FileChannel.open(path, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.WRITE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.truncate(0);
            for (int b = 0; b * block < size; b++) {
                if (b % 4 == 1) {
                    continue; // a real hole
                }
                int from = b * block;
                int to = Math.min(size, from + block);
                ch.write(ByteBuffer.wrap(content, from, to - from), from);
            }
            if (ch.size() < size) {
                try (var raf = new java.io.RandomAccessFile(path.toFile(), "rw")) {
                    raf.setLength(size);
                }
            }
        }
        return content;
    }

    /** Creates a leaf over {@code backing} and opens it as a disk. */
    public static LeafDisk createAndOpen(Path dir, Path backing, int clusterSize, FileOps ops) throws IOException {
        Path leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, clusterSize, true);
        return open(leaf, ops);
    }

    public static LeafDisk open(Path leaf, FileOps ops) throws IOException {
        LeafImage image = LeafImage.open(leaf, ops, false, false);
        Path backing = Path.of(image.header().backingPath());
        return new LeafDisk(leaf.getFileName().toString(), image,
                Files.exists(backing) ? FileBacking.open(backing, ops) : null, false);
    }

    /** Opens read-only: reads of missing clusters come from the backing and fill nothing. */
    public static LeafDisk openReadOnly(Path leaf, FileOps ops) throws IOException {
        LeafImage image = LeafImage.open(leaf, ops, true, false);
        Path backing = Path.of(image.header().backingPath());
        return new LeafDisk(leaf.getFileName().toString(), image,
                Files.exists(backing) ? FileBacking.open(backing, ops) : null, true);
    }

    public static FileOps portable() {
        return new PortableFileOps();
    }

    /** Reads the whole disk. */
    public static byte[] readAll(LeafDisk disk) throws IOException {
        byte[] out = new byte[(int) disk.size()];
        ByteBuffer b = ByteBuffer.wrap(out);
        long off = 0;
        while (b.hasRemaining()) {
            int n = disk.read(b, off);
            if (n <= 0) {
                throw new IOException("short read at " + off);
            }
            off += n;
        }
        return out;
    }
}
