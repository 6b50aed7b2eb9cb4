package corfs.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The extents a job could not read from the backing (on_error=skip), kept beside the leaf in
 * {@code LEAF.corfs-unreadable}, one {@code OFFSET LENGTH} line each, so that {@code corfs map} and the
 * status show exactly what is missing, also after a remount.
 *
 * <p>Advisory, not crash-critical: the clusters stay not-local in the bitmap whatever this file says;
 * it is replaced atomically (temporary file and rename) and a damaged one reads as empty.
 */
public final class UnreadableLedger {
    private UnreadableLedger() {
    }

    public static Path pathOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + ".corfs-unreadable");
    }

    /** The recorded extents as [offset, length], or an empty list. */
    public static List<long[]> load(Path leaf) {
        Path p = pathOf(leaf);
        List<long[]> out = new ArrayList<>();
        if (!Files.exists(p)) {
            return out;
        }
        try {
            for (String line : Files.readAllLines(p, StandardCharsets.US_ASCII)) {
                String[] f = line.trim().split("\\s+");
                if (f.length == 2) {
                    out.add(new long[] {Long.parseLong(f[0]), Long.parseLong(f[1])});
                }
            }
        } catch (IOException | RuntimeException e) {
            return new ArrayList<>();
        }
        return out;
    }

    /** Replaces the ledger with {@code extents}; an empty list removes it. */
    public static void save(Path leaf, List<long[]> extents) throws IOException {
        Path p = pathOf(leaf);
        if (extents.isEmpty()) {
            Files.deleteIfExists(p);
            return;
        }
        StringBuilder sb = new StringBuilder();
        for (long[] e : extents) {
            sb.append(e[0]).append(' ').append(e[1]).append('\n');
        }
        Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
        Files.writeString(tmp, sb, StandardCharsets.US_ASCII);
        Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
