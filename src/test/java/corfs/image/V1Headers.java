package corfs.image;

import corfs.backing.BackingIdentity;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32C;

/**
 * The header encoder of metadata version 1, as corfs before version 2 wrote it (kept for tests only:
 * production code never writes version 1). {@code MetadataFormatTest} proves it byte-identical to a
 * slot written by that release ({@code v1-header-slot.bin}).
 */
public final class V1Headers {
    private V1Headers() {
    }

    /**
     * Encodes {@code h} as a version 1 slot. The file identity's size, mtime and inode are taken apart
     * again from the one thing version 1 can store: a {@link BackingIdentity#file} identity.
     */
    public static ByteBuffer encode(LeafHeader h, long generation) {
        if (!h.backingFormat().equals("raw") || !h.backingOptions().isEmpty() || !h.backingSpec().startsWith("/")) {
            throw new IllegalArgumentException("version 1 holds only a raw backing file's path");
        }
        String[] id = h.backingIdentity().token().split(":");
        if (id.length != 4 || !id[0].equals("file")) {
            throw new IllegalArgumentException("version 1 holds only a file identity: " + h.backingIdentity().token());
        }
        ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.put("CORFSMD\0".getBytes(StandardCharsets.US_ASCII));
        b.putInt(1);
        b.putInt(MetadataFormat.SLOT_SIZE);
        b.putLong(generation);
        b.putLong(h.uuid().getMostSignificantBits());
        b.putLong(h.uuid().getLeastSignificantBits());
        b.putLong(h.virtualSize());
        b.putInt(h.clusterSize());
        b.putInt(h.standalone() ? 1 : 0);
        b.putLong(Long.parseLong(id[1]));
        b.putLong(Long.parseLong(id[2]));
        b.putLong(Long.parseLong(id[3]));
        b.put((byte) h.job().kind().code());
        b.put((byte) h.job().state().code());
        b.put((byte) h.job().onError().code());
        b.put((byte) 0);
        b.putInt(0);
        b.putLong(h.job().speed());
        b.putLong(h.dataInode());
        putString(b, h.dataFileName());
        putString(b, h.backingSpec());
        putString(b, h.job().error());
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, MetadataFormat.SLOT_SIZE - 4);
        b.putInt(MetadataFormat.SLOT_SIZE - 4, (int) crc.getValue());
        return b.clear();
    }

    /**
     * Rewrites both header slots of {@code leaf}'s metadata as version 1 (generation 1), as if the leaf
     * had been made by corfs before version 2. The bitmap pages are the same in both versions.
     */
    public static void downgrade(Path leaf) throws IOException {
        Path meta = LeafImage.metadataPathOf(leaf.toAbsolutePath());
        byte[] all = Files.readAllBytes(meta);
        MetadataFormat.HeaderSlot slot = MetadataFormat.decodeHeader(ByteBuffer.wrap(all, 0, MetadataFormat.SLOT_SIZE));
        if (!slot.valid()) {
            throw new IOException(meta + ": " + slot.problem());
        }
        ByteBuffer v1 = encode(slot.header(), 1);
        for (int s = 0; s < 2; s++) {
            v1.duplicate().get(all, s * MetadataFormat.SLOT_SIZE, MetadataFormat.SLOT_SIZE);
        }
        Files.write(meta, all);
    }

    /** The version of header slot {@code slot} of {@code leaf}'s metadata, read straight from the bytes. */
    public static int versionOf(Path leaf, int slot) throws IOException {
        byte[] all = Files.readAllBytes(LeafImage.metadataPathOf(leaf.toAbsolutePath()));
        return ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).getInt(slot * MetadataFormat.SLOT_SIZE + 8);
    }

    private static void putString(ByteBuffer b, String s) {
        if (s == null) {
            b.putShort((short) 0xFFFF);
            return;
        }
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        b.putShort((short) bytes.length);
        b.put(bytes);
    }
}
