package corfs.image;

import corfs.CorfsException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The profile sidecar under damage: a torn or damaged tail loses only the records from there on, a file
 * that is not a valid profile of this backing is never read as one (a mount starts anew, show refuses),
 * nothing is allocated by what the file says, links are never followed.
 */
@DisplayName("ProfileLog: the sidecar keeps what is valid and survives damage")
class ProfileLogTest {
    private static final ProfileLog.Header HEADER = new ProfileLog.Header("file:1234:5678:9", 100L * 65536 + 17, 65536);

    @TempDir
    Path dir;

    private Path leaf() {
        return dir.resolve("leaf.img");
    }

    private long[] write(int n) throws IOException {
        long[] clusters = new long[n];
        int[] millis = new int[n];
        for (int i = 0; i < n; i++) {
            clusters[i] = (i * 37L) % HEADER.clusters();
            millis[i] = i * 10;
        }
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
            log.append(clusters, millis, n / 2);
            log.append(Arrays.copyOfRange(clusters, n / 2, n), Arrays.copyOfRange(millis, n / 2, n), n - n / 2);
        }
        return clusters;
    }

    private static long[] clusters(ProfileLog.Contents c) {
        return Arrays.copyOf(c.clusters(), c.count());
    }

    @Test
    @DisplayName("written, read back, mode 0600; reopened for append it keeps its records")
    void roundTrip() throws Exception {
        long[] clusters = write(20);
        ProfileLog.Contents c = ProfileLog.read(leaf());
        assertEquals(HEADER, c.header());
        assertArrayEquals(clusters, clusters(c));
        assertEquals(190, c.millis()[19]);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(ProfileLog.pathOf(leaf()))));
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
            assertArrayEquals(clusters, clusters(log.loaded()));
            log.append(new long[] {99}, new int[] {5}, 1);
        }
        assertEquals(21, ProfileLog.read(leaf()).count());
    }

    @Test
    @DisplayName("a torn last record is dropped, the rest kept, and a mount cuts it before appending")
    void tornLastRecord() throws Exception {
        long[] clusters = write(10);
        Path p = ProfileLog.pathOf(leaf());
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(f.length() - 5);
        }
        ProfileLog.Contents c = ProfileLog.read(leaf());
        assertArrayEquals(Arrays.copyOf(clusters, 9), clusters(c));
        assertEquals(ProfileLog.RECORD_BYTES - 5, c.droppedBytes());
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
            assertEquals(9, log.loaded().count());
            log.append(new long[] {clusters[9]}, new int[] {1}, 1);
        }
        c = ProfileLog.read(leaf());
        assertArrayEquals(clusters, clusters(c));
        assertEquals(0, c.droppedBytes());
    }

    @Test
    @DisplayName("a damaged record (bad checksum, out of range, repeated, zeros) ends the profile there")
    void damagedRecordEndsIt() throws Exception {
        Path p = ProfileLog.pathOf(leaf());
        for (int variant = 0; variant < 4; variant++) {
            long[] clusters = write(10);
            try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                long at = ProfileLog.HEADER_BYTES + 6L * ProfileLog.RECORD_BYTES;
                switch (variant) {
                    case 0 -> {
                        f.seek(at + 9);
                        f.write(0x55); // the time, under the checksum
                    }
                    case 1 -> rewrite(f, at, HEADER.clusters() + 3); // well-formed but out of range
                    case 2 -> rewrite(f, at, clusters[2]); // a cluster named before
                    default -> {
                        f.seek(at);
                        f.write(new byte[4 * ProfileLog.RECORD_BYTES]); // zeros, as a crash may leave
                    }
                }
            }
            ProfileLog.Contents c = ProfileLog.read(leaf());
            assertArrayEquals(Arrays.copyOf(clusters, 6), clusters(c), "variant " + variant);
            assertEquals(4L * ProfileLog.RECORD_BYTES, c.droppedBytes(), "variant " + variant);
            Files.delete(p);
        }
    }

    /** Overwrites the record at {@code at} with a valid checksum for {@code cluster}, as a buggy writer would. */
    private static void rewrite(RandomAccessFile f, long at, long cluster) throws IOException {
        byte[] header = new byte[ProfileLog.HEADER_BYTES];
        f.seek(0);
        f.readFully(header);
        java.nio.ByteBuffer r = java.nio.ByteBuffer.allocate(ProfileLog.RECORD_BYTES).putLong(0, cluster).putInt(8, 1);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(header, ProfileLog.HEADER_BYTES - 4, 4);
        crc.update(r.array(), 0, 12);
        r.putInt(12, (int) crc.getValue());
        f.seek(at);
        f.write(r.array());
    }

    @Test
    @DisplayName("garbage, a short file, another version or cluster size: show refuses, a mount starts anew")
    void badHeaders() throws Exception {
        Path p = ProfileLog.pathOf(leaf());
        byte[] garbage = new byte[5000];
        new Random(1).nextBytes(garbage);
        byte[] otherVersion = ProfileLog.headerBytes(HEADER).array();
        otherVersion[11] = 2; // version 2, checksum now wrong too
        byte[] flipped = ProfileLog.headerBytes(HEADER).array();
        flipped[20] ^= 1; // backing size, under the checksum
        for (byte[] content : new byte[][] {garbage, new byte[10], new byte[0], otherVersion, flipped}) {
            Files.write(p, content);
            CorfsException e = assertThrows(CorfsException.class, () -> ProfileLog.read(leaf()));
            assertEquals(CorfsException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
            try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
                assertEquals(0, log.loaded().count());
            }
            assertEquals(HEADER, ProfileLog.read(leaf()).header());
        }
        write(4);
        ProfileLog.Header otherCluster = new ProfileLog.Header(HEADER.identityToken(), HEADER.backingSize(), 4096);
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), otherCluster)) {
            assertEquals(0, log.loaded().count());
        }
        assertEquals(otherCluster, ProfileLog.read(leaf()).header());
    }

    @Test
    @DisplayName("a huge file (sparse, 64 GiB) is read without allocating by its size")
    void hugeFile() throws Exception {
        write(3);
        try (RandomAccessFile f = new RandomAccessFile(ProfileLog.pathOf(leaf()).toFile(), "rw")) {
            f.setLength(64L << 30);
        }
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            ProfileLog.Contents c = ProfileLog.read(leaf());
            assertEquals(3, c.count());
            try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
                assertEquals(3, log.loaded().count());
            }
            assertEquals(0, ProfileLog.read(leaf()).droppedBytes(), "a mount cuts the tail");
        });
    }

    @Test
    @DisplayName("a link or a directory in its place is never followed or written through")
    void linksAndDirectories() throws Exception {
        Path p = ProfileLog.pathOf(leaf());
        Path target = dir.resolve("victim");
        Files.write(target, "precious".getBytes());
        Files.createSymbolicLink(p, target);
        assertThrows(CorfsException.class, () -> ProfileLog.read(leaf()));
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
            log.append(new long[] {1}, new int[] {1}, 1);
        }
        assertEquals("precious", Files.readString(target));
        assertTrue(Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS));
        Files.delete(p);
        Files.createDirectory(p);
        assertThrows(IOException.class, () -> ProfileLog.openForAppend(leaf(), HEADER));
        assertThrows(CorfsException.class, () -> ProfileLog.read(leaf()));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(f -> f.getFileName().toString().endsWith(".tmp")), "no temporary file left");
        }
    }

    @Test
    void aSidecarOthersMayWriteOrOwnIsNotUsed() throws Exception {
        write(5);
        Path p = ProfileLog.pathOf(leaf());
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rw-rw-rw-"));
        CorfsException e = assertThrows(CorfsException.class, () -> ProfileLog.read(leaf()));
        assertTrue(e.getMessage().contains("others may write it"), e.getMessage());
        try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
            assertEquals(0, log.loaded().count(), "a planted profile was adopted");
        }
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(p)), "not replaced");
        if ("root".equals(System.getProperty("user.name"))) {
            write(3);
            Files.setAttribute(p, "unix:uid", 65534, java.nio.file.LinkOption.NOFOLLOW_LINKS);
            e = assertThrows(CorfsException.class, () -> ProfileLog.read(leaf()));
            assertTrue(e.getMessage().contains("owned by uid 65534"), e.getMessage());
            try (ProfileLog log = ProfileLog.openForAppend(leaf(), HEADER)) {
                assertEquals(0, log.loaded().count(), "another user's profile was adopted");
            }
            assertEquals(0, (int) (Integer) Files.getAttribute(p, "unix:uid", java.nio.file.LinkOption.NOFOLLOW_LINKS));
        }
    }
}
