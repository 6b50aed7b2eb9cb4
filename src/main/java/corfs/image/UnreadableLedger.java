package corfs.image;

import corfs.io.AtomicReplace;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The extents a job could not read from the backing (on_error=skip), kept beside the leaf in
 * {@code LEAF.corfs-unreadable}, one {@code OFFSET LENGTH} line each, so that {@code corfs map} and the
 * status show exactly what is missing, also after a remount.
 *
 * <p>Advisory, not crash-critical: the clusters stay not-local in the bitmap whatever this file says;
 * it is replaced atomically (temporary file and rename) and a damaged one reads as empty.
 */
public final class UnreadableLedger {
    /** The temporary name does not grow with the leaf's: LEAF.corfs-unreadable is the longest name kept. */
    private static final AtomicReplace REPLACE = AtomicReplace.durable(".corfs-unreadable-", "rw-------");

    private UnreadableLedger() {
    }

    public static Path pathOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + ".corfs-unreadable");
    }

    /** The recorded extents as [offset, length], or an empty list (also for a link or a non-regular file). */
    public static List<long[]> load(Path leaf) {
        Path p = pathOf(leaf);
        List<long[]> out = new ArrayList<>();
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
            return out;
        }
        try (var in = Files.newByteChannel(p, Set.<OpenOption>of(StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS))) {
            String text = new String(java.nio.channels.Channels.newInputStream(in).readAllBytes(),
                    StandardCharsets.US_ASCII);
            for (String line : text.split("\n")) {
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

    /**
     * Replaces the ledger with {@code extents}; an empty list removes it. Written to a temporary file of
     * unpredictable name created with O_EXCL|O_NOFOLLOW (mode 0600), forced, then renamed over the ledger
     * ({@link AtomicReplace}), so a link planted beside the leaf is replaced, never written through.
     */
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
        REPLACE.write(p, sb.toString().getBytes(StandardCharsets.US_ASCII));
    }
}
