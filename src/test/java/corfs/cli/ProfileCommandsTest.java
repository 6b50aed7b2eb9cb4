package corfs.cli;

import corfs.image.AccessProfile;
import corfs.image.LeafImage;
import corfs.image.ProfileLog;
import corfs.io.FileOps;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("corfs profile show|export|merge and -o profile")
class ProfileCommandsTest {
    @TempDir
    Path dir;

    @Test
    @DisplayName("-o profile=on|off; anything else is a usage error")
    void mountOption() {
        assertTrue(MountCommand.parseOptions(List.of()).recordProfile());
        assertFalse(MountCommand.parseOptions(List.of("allow_other,profile=off")).recordProfile());
        assertThrows(Main.ExitException.class, () -> MountCommand.parseOptions(List.of("profile=off", "profile=on")),
                "given once, as every single-valued option");
        Main.ExitException e = assertThrows(Main.ExitException.class,
                () -> MountCommand.parseOptions(List.of("profile=yes")));
        assertEquals(Main.EXIT_USAGE, e.code);
        assertEquals(List.of(), MountCommand.parseOptions(List.of("profile=off")).fuseOptions(), "never for libfuse");
    }

    @Test
    @DisplayName("show prints the extents in profile order after a '#' line; export and merge write the portable file")
    void showExportMerge() throws Exception {
        Path backing = dir.resolve("base.raw");
        Path leaf = dir.resolve("leaf.img");
        ProfileLog.Header h = newLeaf(backing, leaf);
        assertEquals(1, Main.run("profile", "show", leaf.toString()), "no profile yet");
        try (ProfileLog log = ProfileLog.openForAppend(leaf, h)) {
            log.append(new long[] {3, 4, 5, 1, 15}, new int[] {7, 8, 9, 20, 30}, 5);
        }
        String out = capture(() -> assertEquals(0, Main.run("profile", "show", leaf.toString())));
        String[] lines = out.split("\n");
        assertTrue(lines[0].startsWith("# " + leaf + ": backing_identity " + h.identityToken()) && lines[0].contains(
                "5 clusters, 327680 bytes, 3 extents"), lines[0]);
        assertEquals(List.of("196608 196608 7", "65536 65536 20", "983040 65536 30"), List.of(lines).subList(1, 4));
        String json = capture(() -> assertEquals(0, Main.run("profile", "show", "--json", leaf.toString())));
        assertTrue(json.contains("\"extents\":[{\"offset\":196608,\"length\":196608,\"first_ms\":7},"), json);

        Path a = dir.resolve("a.profile");
        capture(() -> assertEquals(0, Main.run("profile", "export", leaf.toString(), a.toString())));
        AccessProfile exported = AccessProfile.read(a);
        assertEquals(3, exported.entries().size());
        Path b = dir.resolve("b.profile");
        new AccessProfile(h.identityToken(), h.backingSize(), h.clusterSize(),
                List.of(new AccessProfile.Entry(65536, 65536, 0), new AccessProfile.Entry(0, 65536, 1))).write(b);
        Path m = dir.resolve("m.profile");
        capture(() -> assertEquals(0, Main.run("profile", "merge", a.toString(), b.toString(), "-o", m.toString())));
        // cluster 1: median of 20 and 0 is 10; cluster 0: 1; clusters 3-5: 7 (their extent's time); cluster 15: 30
        assertEquals(List.of(new AccessProfile.Entry(0, 65536, 1), new AccessProfile.Entry(3 * 65536, 3 * 65536, 7),
                new AccessProfile.Entry(65536, 65536, 10), new AccessProfile.Entry(15 * 65536, 65536, 30)),
                AccessProfile.read(m).entries());
        Path other = dir.resolve("other.profile");
        new AccessProfile("other", h.backingSize(), h.clusterSize(), List.of()).write(other);
        assertEquals(1, Main.run("profile", "merge", a.toString(), other.toString(), "-o", m.toString()));
        assertEquals(Main.EXIT_USAGE, Main.run("profile"));
        assertEquals(Main.EXIT_USAGE, Main.run("profile", "merge", a.toString()), "-o is required");
        assertEquals(1, Main.run("profile", "show", dir.resolve("nope.img").toString()));
        String notLeaf = captureErr(() -> assertEquals(1, Main.run("profile", "show", backing.toString())));
        assertTrue(notLeaf.contains("is not a corfs leaf"), "as info says: " + notLeaf);
        assertTrue(Files.exists(m));
    }

    @Test
    @DisplayName("show and export warn (stderr, JSON identity_is_current) when the leaf's backing identity changed since")
    void staleIdentityWarned() throws Exception {
        Path backing = dir.resolve("base.raw");
        Path leaf = dir.resolve("leaf.img");
        ProfileLog.Header h = newLeaf(backing, leaf);
        try (ProfileLog log = ProfileLog.openForAppend(leaf, h)) {
            log.append(new long[] {3}, new int[] {7}, 1);
        }
        String[] err = new String[1];
        String json = capture(() -> err[0] = captureErr(() -> assertEquals(0, Main.run("profile", "show", "--json",
                leaf.toString()))));
        assertTrue(json.contains("\"identity_is_current\":true"), json);
        assertEquals("", err[0]);
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) { // what set-backing records
            image.updateHeader(x -> x.withBackingIdentity(corfs.backing.BackingIdentity.of("file:moved", "moved",
                    1 << 20)));
        }
        json = capture(() -> err[0] = captureErr(() -> assertEquals(0, Main.run("profile", "show", "--json",
                leaf.toString()))));
        assertTrue(json.contains("\"identity_is_current\":false"), json);
        assertTrue(err[0].contains("warning") && err[0].contains("another backing identity"), err[0]);
        Path out = dir.resolve("x.profile");
        capture(() -> err[0] = captureErr(() -> assertEquals(0, Main.run("profile", "export", leaf.toString(),
                out.toString()))));
        assertTrue(err[0].contains("another backing identity"), err[0]);
    }

    /** A leaf over a new 1 MiB backing (clusters of 64 KiB), no profile yet; the header its profile has. */
    @Test
    @DisplayName("show and export refuse, with a message, a sidecar whose header describes another disk than the leaf's"
            + " (a huge one: nothing is allocated by its size)")
    void sidecarOfAnotherDisk() throws Exception {
        Path backing = dir.resolve("base.raw");
        Path leaf = dir.resolve("leaf.img");
        ProfileLog.Header h = newLeaf(backing, leaf);
        // 2^46 clusters of 512 bytes: a bitmap of them is 8 TiB; 2^33 clusters: 1 GiB (more than this JVM's heap)
        for (long size : new long[] {Long.MAX_VALUE / 2, 512L << 33, h.backingSize() * 2}) {
            try (ProfileLog log = ProfileLog.openForAppend(leaf, new ProfileLog.Header(h.identityToken(), size,
                    size == h.backingSize() * 2 ? h.clusterSize() : 512))) {
                log.append(new long[] {3}, new int[] {7}, 1);
            }
            for (String verb : new String[] {"show", "export"}) {
                String[] err = new String[1];
                String out = capture(() -> err[0] = captureErr(() -> assertEquals(1, verb.equals("show")
                        ? Main.run("profile", "show", leaf.toString())
                        : Main.run("profile", "export", leaf.toString(), dir.resolve("x.profile").toString()))));
                assertEquals("", out, verb + " " + size);
                assertTrue(err[0].contains("another backing size or cluster size"), verb + " " + size + ": " + err[0]);
            }
            assertFalse(Files.exists(dir.resolve("x.profile")));
        }
    }

    @Test
    @DisplayName("export and merge never replace a leaf's own files (its data file, metadata or sidecars), whatever"
            + " the spelling of the path: 'profile export vm.raw vm.raw' replaced the leaf's data with 174 bytes")
    void neverOverALeafsFiles() throws Exception {
        Path backing = dir.resolve("base.raw");
        Path leaf = dir.resolve("leaf.img");
        ProfileLog.Header h = newLeaf(backing, leaf);
        try (ProfileLog log = ProfileLog.openForAppend(leaf, h)) {
            log.append(new long[] {3}, new int[] {7}, 1);
        }
        Path a = dir.resolve("a.profile");
        capture(() -> assertEquals(0, Main.run("profile", "export", leaf.toString(), a.toString())));
        Files.writeString(dir.resolve("leaf.img.log"), "log\n");
        Files.copy(a, dir.resolve("leaf.img.corfs-prefetch"));
        java.util.Map<Path, byte[]> before = new java.util.HashMap<>();
        try (var files = Files.list(dir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                before.put(f, Files.readAllBytes(f));
            }
        }
        Files.createDirectory(dir.resolve("sub"));
        for (String target : new String[] {"leaf.img", "leaf.img.corfs", "leaf.img.corfs-profile",
                "leaf.img.corfs-prefetch", "leaf.img.log", "leaf.img.corfs-unreadable", "sub/../leaf.img",
                "./leaf.img.corfs"}) {
            Path t = target.startsWith(".") ? Path.of(dir + "/" + target) : dir.resolve(target);
            for (boolean merge : new boolean[] {false, true}) {
                String err = captureErr(() -> capture(() -> assertEquals(1, merge
                        ? Main.run("profile", "merge", a.toString(), "-o", t.toString())
                        : Main.run("profile", "export", leaf.toString(), t.toString()), target)));
                assertTrue(err.contains("leaf.img") && err.contains("not replaced"), target + ": " + err);
            }
        }
        try (var files = Files.list(dir)) {
            assertEquals(before.keySet(), files.filter(f -> !f.endsWith("sub")).collect(java.util.stream.Collectors.toSet()),
                    "no file made or removed");
        }
        for (var e : before.entrySet()) {
            assertArrayEquals(e.getValue(), Files.readAllBytes(e.getKey()), e.getKey() + " unchanged");
        }
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            assertEquals(h, ProfileLog.Header.of(image.header()), "the leaf still opens");
        }
        Path other = dir.resolve("notes.img"); // a file beside the leaf that is no leaf's: replaced as before
        Files.writeString(other, "old");
        capture(() -> assertEquals(0, Main.run("profile", "export", leaf.toString(), other.toString())));
        assertEquals(AccessProfile.read(a), AccessProfile.read(other));
    }

    private static ProfileLog.Header newLeaf(Path backing, Path leaf) throws Exception {
        try (var raf = new java.io.RandomAccessFile(backing.toFile(), "rw")) {
            raf.setLength(1 << 20);
        }
        LeafImage.create(leaf, backing, 65536, false);
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            return ProfileLog.Header.of(image.header());
        }
    }

    private static String captureErr(Runnable r) {
        PrintStream old = System.err;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setErr(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            r.run();
        } finally {
            System.setErr(old);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    private static String capture(Runnable r) {
        PrintStream old = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            r.run();
        } finally {
            System.setOut(old);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }
}
