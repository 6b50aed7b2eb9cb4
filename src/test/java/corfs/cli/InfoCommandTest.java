package corfs.cli;

import corfs.backing.BackingIdentity;
import corfs.engine.TestLeaves;
import corfs.image.LeafHeader;
import corfs.image.LeafImage;
import corfs.image.LeafImages;
import corfs.image.MetadataFormat;
import corfs.image.V1Headers;
import corfs.io.FileOps;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@DisplayName("corfs info shows the backing SPEC (without credentials), its format and identity; check never writes")
class InfoCommandTest {
    @TempDir
    Path dir;
    Path backing;
    Path leaf;

    @BeforeEach
    void makeLeaf() throws IOException {
        backing = dir.resolve("base.raw");
        TestLeaves.writeBacking(backing, 1 << 20, 3);
        leaf = dir.resolve("leaf.img");
        LeafImage.create(leaf, backing, 65536, false);
    }

    private String run(String... args) {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.run(args), String.join(" ", args));
        } finally {
            System.setOut(saved);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Rewrites both header slots with a URL SPEC carrying credentials, options and an HTTP-like identity. */
    private void makeNetworkLeaf() throws IOException {
        LeafHeader h;
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, true)) {
            h = image.header();
        }
        LeafHeader net = new LeafHeader(h.uuid(), h.virtualSize(), h.clusterSize(), h.dataFileName(), h.dataInode(),
                "https://alice:hunter2@example.org/base.raw?X-Amz-Credential=AKIAX&X-Amz-Signature=feed&v=1", "raw",
                Map.of("header-file", "/etc/corfs/headers", "timeout", "30"),
                BackingIdentity.of("http:1048576:\"e1\"", "size=1048576 etag=\"e1\"", 1 << 20), false,
                LeafHeader.JobRecord.NONE);
        byte[] all = Files.readAllBytes(LeafImages.metadataPath(leaf));
        for (int s = 0; s < 2; s++) {
            MetadataFormat.encodeHeader(net, 9).get(all, s * MetadataFormat.SLOT_SIZE, MetadataFormat.SLOT_SIZE);
        }
        Files.write(LeafImages.metadataPath(leaf), all);
    }

    @Test
    @DisplayName("a leaf whose last mount stopped uncleanly: info says why every local cluster counts as dirty")
    void uncleanStop() throws IOException {
        try (var disk = TestLeaves.open(leaf, FileOps.system())) {
            disk.fill(0, 3);
            disk.flush();
        }
        assertFalse(run("info", leaf.toString()).contains("not closed cleanly"));
        assertTrue(run("info", "--json", leaf.toString()).contains("\"unclean_stop\":false"));
        byte[] crashed;
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), false, false)) {
            image.markInUse();
            crashed = Files.readAllBytes(LeafImages.metadataPath(leaf)); // as a kill -9 leaves it
        }
        Files.write(LeafImages.metadataPath(leaf), crashed);
        String text = run("info", leaf.toString());
        assertTrue(text.contains("dirty:          256.0 KiB (25.0%): every local cluster, as the last mount was not"
                + " closed cleanly"), text);
        assertTrue(run("info", "--json", leaf.toString()).contains("\"unclean_stop\":true"));
    }

    @Test
    @DisplayName("a file backing: text and JSON show the path, raw, and the file identity")
    void fileBacking() throws IOException {
        String text = run("info", leaf.toString());
        String spec = backing.toAbsolutePath().normalize().toString();
        String id = corfs.backing.FileBacking.identityOf(backing).describe();
        assertTrue(text.contains("backing:        " + spec + "\n"), text);
        assertTrue(text.contains("backing format: raw\n"), text);
        assertTrue(text.contains("backing id:     " + id + "\n"), text);
        assertTrue(text.contains("(version " + corfs.image.MetadataFormat.VERSION + ")"), text);
        String json = run("info", "--json", leaf.toString());
        assertTrue(json.contains("\"backing\":{\"spec\":\"" + spec + "\",\"format\":\"raw\",\"options\":{},\"identity\":\""
                + id + "\"}"), json);
        assertTrue(json.contains("\"version\":" + corfs.image.MetadataFormat.VERSION), json);
    }

    @Test
    @DisplayName("a version 1 leaf shows version 1 and is not written by info, map or check")
    void version1() throws IOException {
        V1Headers.downgrade(leaf);
        byte[] meta = Files.readAllBytes(LeafImages.metadataPath(leaf));
        assertTrue(run("info", leaf.toString()).contains("(version 1)"));
        assertTrue(run("info", "--json", leaf.toString()).contains("\"version\":1"));
        run("map", leaf.toString());
        assertTrue(run("check", leaf.toString()).contains("no problems found"));
        assertArrayEquals(meta, Files.readAllBytes(LeafImages.metadataPath(leaf)));
    }

    @Test
    @DisplayName("credentials in a URL SPEC appear in no display: info, info --json, check, the open refusal")
    void credentialsRedacted() throws IOException {
        makeNetworkLeaf();
        String text = run("info", leaf.toString());
        String json = run("info", "--json", leaf.toString());
        for (String out : List.of(text, json)) {
            assertFalse(out.contains("hunter2") || out.contains("alice") || out.contains("AKIAX")
                    || out.contains("feed"), out);
            assertTrue(out.contains("https://REDACTED@example.org/base.raw?X-Amz-Credential=REDACTED"
                    + "&X-Amz-Signature=REDACTED&v=1"), out);
        }
        assertTrue(text.contains("backing opts:   header-file=/etc/corfs/headers timeout=30\n"), text);
        assertTrue(text.contains("backing id:     size=1048576 etag=\"e1\"\n"), text);
        assertTrue(json.contains("\"options\":{\"header-file\":\"/etc/corfs/headers\",\"timeout\":\"30\"}"), json);
        List<String> problems = LeafImages.check(leaf);
        assertEquals(1, problems.size(), problems.toString());
        assertTrue(problems.get(0).contains("cannot be opened") && !problems.get(0).contains("hunter2")
                && !problems.get(0).contains("alice") && !problems.get(0).contains("feed"),
                problems.toString());
        try (LeafImage image = LeafImage.open(leaf, FileOps.system(), true, false)) {
            corfs.CorfsException e = org.junit.jupiter.api.Assertions.assertThrows(corfs.CorfsException.class,
                    () -> image.header().backingPath());
            assertEquals(corfs.CorfsException.Reason.NOT_SUPPORTED, e.reason());
            assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        }
    }

    @Test
    @DisplayName("control characters in a name are shown escaped in text")
    void controlCharactersAreEscapedOnOneLine() {
        assertEquals("a\\x1b[2Jb\\n", Main.oneLine("a\u001b[2Jb\n"));
    }
}
