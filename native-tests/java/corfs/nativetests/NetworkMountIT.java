package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Leaves over network backings, through the CLI and a real mount, against real servers on 127.0.0.1:
 * qemu-nbd and nginx. Each transport against the same model: {@code cmp} of the exposed file, a stream
 * to standalone, a remount with the server gone; and the faults an operator meets (an unreachable server
 * at create, a server that dies and comes back while mounted, a commit into a read-only backing, an
 * object replaced on the server).
 */
@DisplayName("network backings through a mount: NBD and HTTP")
class NetworkMountIT {
    private static final long SIZE = 24L << 20;
    private static final Duration GUARD = Duration.ofMinutes(4);

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();
    @RegisterExtension
    final LocalServers servers = LocalServers.perTest();

    /** A raw image with data at the start and the end and a hole between (block status reports it). */
    private Path image(String name, long seed) throws Exception {
        Path p = fx.dir().resolve(name);
        byte[] chunk = new byte[4 << 20];
        new Random(seed).nextBytes(chunk);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(SIZE);
            f.seek(0);
            f.write(chunk);
            f.seek(SIZE - chunk.length);
            f.write(chunk, 0, chunk.length);
            f.seek(9L << 20);
            f.write(chunk, 0, 12345);
        }
        return p;
    }

    private LocalServers.Server qemuNbd(Path image, int port, boolean readOnly) throws Exception {
        assumeTrue(LocalServers.have("qemu-nbd"), "qemu-nbd (qemu-utils) is not installed");
        List<String> cmd = new java.util.ArrayList<>(List.of("qemu-nbd", "--persistent", "--shared=16", "--format=raw",
                "--bind=127.0.0.1", "--port=" + port, "--export-name=disk"));
        if (readOnly) {
            cmd.add("--read-only");
        }
        cmd.add(image.toString());
        return servers.start("qemu-nbd-" + port, cmd, fx.dir(), port, Duration.ofSeconds(20));
    }

    private static String nbd(int port) {
        return "nbd://127.0.0.1:" + port + "/disk";
    }

    private void readAll(Path file) {
        fx.run(Duration.ofMinutes(2), "dd", "if=" + file, "of=/dev/null", "bs=1M", "status=none").assertOk();
    }

    /** The 64 KiB block number {@code block} of the file {@code img}. */
    private static byte[] blockOf(Path img, long block) throws java.io.IOException {
        byte[] b = new byte[65536];
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            f.seek(block * 65536);
            f.readFully(b);
        }
        return b;
    }

    @Test
    @DisplayName("NBD: the exposed file equals the export; stream to standalone; remount with the server gone")
    void nbdStreamAndRemountWithoutServer() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 1);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path leaf = fx.dir().resolve("disk.raw");
            Result created = fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk();
            assertTrue(created.stdout().contains("over " + nbd(port) + " (raw, detected)"), created.toString());
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            Map<String, String> s = fx.status(mnt, "disk.raw");
            assertEquals(nbd(port), s.get("backing"), s.toString());
            fx.assertSameContent(mnt.resolve("disk.raw"), img); // copy-on-read of everything, pipelined
            fx.corfs("stream", mnt.toString(), "--wait").assertOk();
            assertEquals("yes", fx.status(mnt, "disk.raw").get("standalone"));
            fx.umount(mnt);
            assertTrue(Files.size(leaf) == SIZE);
            long allocated = Long.parseLong(fx.run(Duration.ofSeconds(10), "stat", "-c", "%b", leaf.toString())
                    .assertOk().stdout().strip()) * 512;
            assertTrue(allocated < SIZE - (8L << 20), "the hole stayed a hole: " + allocated + " bytes allocated");

            servers.stop(server);
            fx.mount(mnt, leaf);
            fx.assertSameContent(mnt.resolve("disk.raw"), img);
            fx.umount(mnt);
            fx.corfs("check", leaf.toString()).assertOk();
        });
    }

    @Test
    @DisplayName("NBD server killed while mounted: local reads go on, others fail with EIO, then serve again")
    void nbdServerDiesAndComesBack() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 2);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), "--backing-opt", "timeout=3", leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            Path exposed = mnt.resolve("disk.raw");
            fx.run(Duration.ofSeconds(60), "dd", "if=" + exposed, "of=/dev/null", "bs=1M", "count=1", "status=none")
                    .assertOk();
            servers.kill(server);

            fx.run(Duration.ofSeconds(60), "dd", "if=" + exposed, "of=/dev/null", "bs=64K", "count=4",
                    "iflag=direct", "status=none").assertOk(); // local: no server needed
            Result failed = fx.run(Duration.ofSeconds(60), "dd", "if=" + exposed, "of=/dev/null", "bs=64K", "count=1",
                    "skip=" + (SIZE / 65536 - 2), "iflag=direct", "status=none");
            assertNotEquals(0, failed.exit(), "a read that needs the dead server fails: " + failed);
            assertTrue(failed.stderr().contains("Input/output error"), failed.toString());

            server = servers.restart(server, Duration.ofSeconds(20));
            Result back = null;
            for (int i = 0; i < 60; i++) { // reconnects in the background with backoff: a few seconds at most
                back = fx.run(Duration.ofSeconds(60), "dd", "if=" + exposed, "of=/dev/null", "bs=64K", "count=1",
                        "skip=" + (SIZE / 65536 - 2), "iflag=direct", "status=none");
                if (back.exit() == 0) {
                    break;
                }
                CorfsFixture.sleep(500);
            }
            assertEquals(0, back.exit(), "the same mount serves again once the server is back: " + back);
            fx.assertSameContent(exposed, img);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("NBD, -o backing_timeout=0: a read waits through an outage longer than NBD's default 30 s, then reads")
    void noTimeoutWaitsForTheServer() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 4);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk(); // no timeout of its own
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, List.of("-o", "backing_timeout=0"), leaf);
            Path exposed = mnt.resolve("disk.raw");
            servers.kill(server);
            Path out = fx.dir().resolve("block.out");
            long block = SIZE / 65536 - 2;
            java.util.concurrent.CompletableFuture<Result> read = java.util.concurrent.CompletableFuture.supplyAsync(
                    () -> fx.run(Duration.ofMinutes(3), "dd", "if=" + exposed, "of=" + out, "bs=64K", "count=1",
                            "skip=" + block, "iflag=direct", "status=none"));
            CorfsFixture.sleep(35_000); // longer than the 30 s an NBD read used to wait for its reconnect
            assertFalse(read.isDone(), "with backing_timeout=0 the read still waits: "
                    + (read.isDone() ? read.get() : ""));
            servers.restart(server, Duration.ofSeconds(20));
            read.get(2, java.util.concurrent.TimeUnit.MINUTES).assertOk();
            assertArrayEquals(blockOf(img, block), Files.readAllBytes(out));
            fx.umount(mnt);
        });
    }

    /**
     * A TCP relay on 127.0.0.1:LISTEN: every connection goes to STALL until one of them has carried a
     * byte from its client (a port probe carries none), every later one to GOOD. Prints "stalled" once.
     */
    private static final String RELAY = String.join("\n",
            "import socket, sys, threading",
            "listen, stall, good = map(int, sys.argv[1:4])",
            "state = {'stalled': False}",
            "lock = threading.Lock()",
            "def mark():",
            "    with lock:",
            "        if not state['stalled']:",
            "            state['stalled'] = True",
            "            print('stalled', flush=True)",
            "def pump(src, dst, first):",
            "    try:",
            "        while True:",
            "            b = src.recv(65536)",
            "            if not b:",
            "                break",
            "            if first:",
            "                first()",
            "                first = None",
            "            dst.sendall(b)",
            "    except OSError:",
            "        pass",
            "    for s in (src, dst):",
            "        try:",
            "            s.shutdown(socket.SHUT_RDWR)",
            "        except OSError:",
            "            pass",
            "srv = socket.socket()",
            "srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
            "srv.bind(('127.0.0.1', listen))",
            "srv.listen(64)",
            "while True:",
            "    c, _ = srv.accept()",
            "    with lock:",
            "        to_stall = not state['stalled']",
            "    try:",
            "        up = socket.create_connection(('127.0.0.1', stall if to_stall else good))",
            "    except OSError:",
            "        c.close()",
            "        continue",
            "    threading.Thread(target=pump, args=(c, up, mark if to_stall else None), daemon=True).start()",
            "    threading.Thread(target=pump, args=(up, c, None), daemon=True).start()",
            "");

    @Test
    @DisplayName("NBD, -o backing_timeout=0: a reconnect to a server that handshakes and then stalls is abandoned"
            + " and retried, so the server that comes back serves the waiting read")
    void stalledReconnectIsRetried() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("nbdkit"), "nbdkit is not installed");
            assumeTrue(LocalServers.have("python3"), "python3 is not installed");
            Path img = image("source.raw", 6);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, List.of("-o", "backing_timeout=0"), leaf);
            Path exposed = mnt.resolve("disk.raw");
            fx.run(Duration.ofMinutes(1), "dd", "if=" + exposed, "of=/dev/null", "bs=64K", "count=1",
                    "iflag=direct", "status=none").assertOk();
            servers.kill(server);
            // the same disk behind both: a server that answers the handshake and then never answers a read
            // (nbdkit's delay filter, ten minutes a read), and a good one
            int stallPort = LocalServers.freePort();
            servers.start("nbdkit-stall", List.of("nbdkit", "-f", "--exit-with-parent", "-r", "-i", "127.0.0.1",
                    "-p", Integer.toString(stallPort), "--filter=delay", "file", "file=" + img, "delay-read=600"),
                    fx.dir(), stallPort, Duration.ofSeconds(20));
            LocalServers.Server good = qemuNbd(img, LocalServers.freePort(), true);
            Path relay = fx.dir().resolve("relay.py");
            Files.writeString(relay, RELAY);
            LocalServers.Server relayServer = servers.start("relay", List.of("python3", relay.toString(),
                    Integer.toString(port), Integer.toString(stallPort), Integer.toString(good.port())),
                    fx.dir(), port, Duration.ofSeconds(20));
            Path out = fx.dir().resolve("block.out");
            long block = SIZE / 65536 - 3;
            // a day-long call timeout; only the reconnect's own bound gets the keeper past the stalled server
            Result read = fx.run(Duration.ofMinutes(2), "dd", "if=" + exposed, "of=" + out, "bs=64K", "count=1",
                    "skip=" + block, "iflag=direct", "status=none");
            assertTrue(Files.readString(relayServer.log()).contains("stalled"),
                    "the reconnect never went through the stalling server: the test proves nothing");
            read.assertOk();
            assertArrayEquals(blockOf(img, block), Files.readAllBytes(out));
            fx.umount(mnt);
        });
    }

    /** FUSE workers ({@code corfs-fuse-N}) of process {@code pid}, by the thread names in /proc. */
    private static int fuseWorkers(long pid) {
        int n = 0;
        try (java.util.stream.Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                try {
                    if (Files.readString(t.resolve("comm")).trim().matches("corfs-fuse-[0-9]+")) {
                        n++;
                    }
                } catch (java.io.IOException gone) {
                    // the thread ended meanwhile
                }
            }
        } catch (java.io.IOException e) {
            return -1;
        }
        return n;
    }

    /** Sends one command byte to nbdkit's pause filter and waits for its upper-case echo. */
    private static void pauseControl(Path socket, char command) throws Exception {
        try (java.nio.channels.SocketChannel ch = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            ch.connect(java.net.UnixDomainSocketAddress.of(socket));
            ch.write(java.nio.ByteBuffer.wrap(new byte[] {(byte) command}));
            java.nio.ByteBuffer reply = java.nio.ByteBuffer.allocate(1);
            while (reply.hasRemaining() && ch.read(reply) >= 0) {
                // one byte
            }
            assertEquals(Character.toUpperCase(command), (char) reply.get(0), "pause filter's answer to " + command);
        }
    }

    @Test
    @DisplayName("NBD, -o backing_timeout=0: 72 guest reads hung on a paused server (more than the pool's 64) do not"
            + " starve a read of a local cluster; all finish once the server resumes")
    void hungBackingReadsDoNotStarveLocalReads() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(LocalServers.have("nbdkit"), "nbdkit is not installed");
            Path img = image("source.raw", 7);
            int port = LocalServers.freePort();
            Path control = fx.dir().resolve("pause.sock");
            servers.start("nbdkit-pause", List.of("nbdkit", "-f", "--exit-with-parent", "-r", "-i", "127.0.0.1",
                    "-p", Integer.toString(port), "--filter=pause", "file", "file=" + img, "pause-control=" + control),
                    fx.dir(), port, Duration.ofSeconds(20));
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, List.of("-o", "backing_timeout=0"), leaf);
            Path exposed = mnt.resolve("disk.raw");
            fx.run(Duration.ofMinutes(1), "dd", "if=" + exposed, "of=/dev/null", "bs=64K", "count=1", "iflag=direct",
                    "status=none").assertOk(); // block 0 is local from now on
            long daemon = CorfsFixture.daemonPidsFor(mnt).get(0);
            pauseControl(control, 'p');
            boolean resumed = false;
            List<Process> hung = new java.util.ArrayList<>();
            try {
                int reads = 72;
                for (int i = 0; i < reads; i++) {
                    long at = (4L << 20) + i * (256L << 10); // distinct clusters, none local
                    hung.add(new ProcessBuilder("dd", "if=" + exposed, "of=/dev/null", "bs=4K", "count=1",
                            "skip=" + at / 4096, "iflag=direct", "status=none")
                            .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start());
                }
                // every worker the old cap allowed is now inside a request hung on the backing
                long until = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (fuseWorkers(daemon) < 64 && System.nanoTime() < until) {
                    Thread.sleep(50);
                }
                assertTrue(fuseWorkers(daemon) >= 64, "the pool never filled: " + fuseWorkers(daemon) + " workers");
                Path out = fx.dir().resolve("local.out");
                fx.run(Duration.ofSeconds(90), "dd", "if=" + exposed, "of=" + out, "bs=64K", "count=1",
                        "iflag=direct", "status=none").assertOk();
                assertArrayEquals(blockOf(img, 0), Files.readAllBytes(out));
                assertTrue(hung.stream().allMatch(Process::isAlive), "the backing reads did not hang: the test proves"
                        + " nothing");
                pauseControl(control, 'r');
                resumed = true;
                for (Process p : hung) {
                    assertTrue(p.waitFor(2, java.util.concurrent.TimeUnit.MINUTES), "a read did not finish after the"
                            + " server resumed");
                    assertEquals(0, p.exitValue(), "a read failed after the server resumed");
                }
            } finally {
                if (!resumed) {
                    pauseControl(control, 'r');
                }
                hung.forEach(Process::destroyForcibly);
            }
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("NBD server killed mid-stream: on_error=retry carries on by itself, stop fails and resume continues")
    void streamsRideOutAServerRestart() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 8);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path a = fx.dir().resolve("a.raw");
            Path b = fx.dir().resolve("b.raw");
            for (Path leaf : List.of(a, b)) {
                fx.corfs("create", "--backing", nbd(port), "--backing-opt", "timeout=2", leaf.toString()).assertOk();
            }
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, a, b);
            fx.control(mnt, "stream a.raw speed=512K on_error=retry").assertOk();
            fx.control(mnt, "stream b.raw speed=512K on_error=stop").assertOk();
            fx.awaitStatus(mnt, "a.raw", Duration.ofSeconds(60), "some progress",
                    st -> Long.parseLong(st.get("done_bytes")) > 0);
            servers.kill(server);
            fx.awaitStatus(mnt, "b.raw", Duration.ofSeconds(90), "b failed", st -> "failed".equals(st.get("state")));
            Map<String, String> retrying = fx.awaitStatus(mnt, "a.raw", Duration.ofSeconds(90), "a retrying",
                    st -> !"-".equals(st.get("error")));
            assertEquals("running", retrying.get("state"), "on_error=retry keeps the job running: " + retrying);

            server = servers.restart(server, Duration.ofSeconds(20));
            fx.control(mnt, "speed a.raw 0").assertOk();
            fx.awaitJobState(mnt, "a.raw", "completed", Duration.ofSeconds(120)); // by itself
            fx.control(mnt, "resume b.raw").assertOk();
            fx.control(mnt, "speed b.raw 0").assertOk();
            fx.awaitJobState(mnt, "b.raw", "completed", Duration.ofSeconds(120));
            fx.assertSameContent(mnt.resolve("a.raw"), img);
            fx.assertSameContent(mnt.resolve("b.raw"), img);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("an unreachable server at create: one line naming the address, exit 1, nothing written")
    void unreachableAtCreate() {
        assertTimeoutPreemptively(GUARD, () -> {
            int port = LocalServers.freePort();
            for (String spec : List.of(nbd(port), "http://127.0.0.1:" + port + "/img.raw")) {
                Path leaf = fx.dir().resolve("never.raw");
                Result r = fx.corfs("create", "--backing", spec, leaf.toString());
                assertEquals(1, r.exit(), r.toString());
                assertEquals(1, r.stderr().strip().lines().count(), r.toString());
                assertTrue(r.stderr().contains("127.0.0.1:" + port), r.toString());
                assertFalse(Files.exists(leaf), "no leaf");
                assertFalse(Files.exists(CorfsFixture.metadataOf(leaf)), "no metadata");
            }
        });
    }

    @Test
    @DisplayName("HTTP: cmp, a refused commit (EROFS, reason shown) marks nothing, stream, remount with nginx gone")
    void httpReadOnlyStreamAndRemount() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(Nginx.installed(), "nginx is not installed");
            Path www = Files.createDirectories(fx.dir().resolve("www"));
            Path img = image("model.raw", 3);
            Files.copy(img, www.resolve("disk image.raw"));
            int port = LocalServers.freePort();
            LocalServers.Server nginx = Nginx.start(servers, "nginx", fx.dir(), www, port, null, "");
            String spec = "http://127.0.0.1:" + port + "/disk%20image.raw";
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", spec, leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            Path exposed = mnt.resolve("disk.raw");
            // a part only: a leaf made wholly local is standalone, and a standalone leaf needs no backing
            fx.run(Duration.ofSeconds(60), "dd", "if=" + exposed, "of=/dev/null", "bs=1M", "count=2", "status=none")
                    .assertOk();
            assertTrue(java.util.Arrays.equals(CorfsFixture.pread(exposed, 0, 2 << 20), CorfsFixture.pread(img, 0, 2 << 20)));

            Result commit = fx.control(mnt, "commit");
            assertNotEquals(0, commit.exit(), commit.toString());
            assertTrue(commit.stderr().contains("Read-only file system"), commit.toString());
            String why = fx.status(mnt, "disk.raw").get("command_error");
            assertTrue(why.contains("read-only"), why);
            fx.umount(mnt);

            // the refused commit wrote nothing and must not excuse a changed object later
            byte[] other = Files.readAllBytes(img);
            other[0] ^= 1;
            Path tmp = www.resolve("new.raw");
            Files.write(tmp, other);
            // nginx's ETag is mtime (seconds) and size: a replacement within the same second would look
            // the same to any HTTP client; a real replacement comes later than that
            Files.setLastModifiedTime(tmp, java.nio.file.attribute.FileTime.from(
                    Files.getLastModifiedTime(www.resolve("disk image.raw")).toInstant().plusSeconds(10)));
            Files.move(tmp, www.resolve("disk image.raw"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            Result refused = fx.tryMount(mnt, List.of(), leaf);
            assertNotEquals(0, refused.exit(), "a replaced object is refused at mount: " + refused);
            assertTrue(refused.stderr().contains("changed"), refused.toString());
            Files.copy(img, tmp);
            Files.move(tmp, www.resolve("disk image.raw"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            // nginx's ETag is mtime-size: the restored bytes have a new mtime, so the identity differs;
            // --force is the operator saying the content is the same again
            fx.mount(mnt, List.of("--force"), leaf);
            fx.corfs("stream", mnt.toString(), "--wait").assertOk();
            fx.umount(mnt);
            servers.stop(nginx);
            fx.mount(mnt, leaf);
            fx.assertSameContent(exposed, img);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("set-backing moves a leaf from NBD to HTTP: a different content refused, --force for another identity")
    void setBackingFromNbdToHttp() {
        assertTimeoutPreemptively(GUARD, () -> {
            assumeTrue(Nginx.installed(), "nginx is not installed");
            Path img = image("source.raw", 4);
            int port = LocalServers.freePort();
            LocalServers.Server server = qemuNbd(img, port, true);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            fx.run(Duration.ofSeconds(60), "dd", "if=" + mnt.resolve("disk.raw"), "of=/dev/null", "bs=1M", "count=3",
                    "status=none").assertOk();
            fx.umount(mnt);
            servers.stop(server);

            Path www = Files.createDirectories(fx.dir().resolve("www"));
            byte[] wrong = Files.readAllBytes(img);
            wrong[100] ^= 1; // in the leaf's first local cluster, always among those compared
            Files.write(www.resolve("wrong.raw"), wrong);
            Files.copy(img, www.resolve("right.raw"));
            int http = LocalServers.freePort();
            Nginx.start(servers, "nginx", fx.dir(), www, http, null, "");
            Result refused = fx.corfs("set-backing", leaf.toString(), "http://127.0.0.1:" + http + "/wrong.raw");
            assertEquals(1, refused.exit(), refused.toString());
            assertTrue(refused.stderr().contains("differs"), refused.toString());
            Result forced = fx.corfs("set-backing", "--force", leaf.toString(), "http://127.0.0.1:" + http
                    + "/wrong.raw");
            assertEquals(1, forced.exit(), "a content difference is refused even with --force: " + forced);
            Result unforced = fx.corfs("set-backing", leaf.toString(), "http://127.0.0.1:" + http + "/right.raw");
            assertEquals(1, unforced.exit(), "another identity needs --force: " + unforced);
            assertTrue(unforced.stderr().contains("matches"), unforced.toString());
            Result moved = fx.corfs("set-backing", "--force", leaf.toString(), "http://127.0.0.1:" + http
                    + "/right.raw").assertOk();
            assertTrue(moved.stdout().contains("matches"), moved.toString());
            fx.mount(mnt, leaf);
            fx.corfs("stream", mnt.toString(), "--wait").assertOk();
            fx.assertSameContent(mnt.resolve("disk.raw"), img);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("commit into a writable NBD export: the export's file gets the leaf's writes")
    void commitToWritableNbd() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 5);
            Path model = fx.dir().resolve("model.raw");
            Files.copy(img, model);
            int port = LocalServers.freePort();
            qemuNbd(img, port, false);
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfs("create", "--backing", nbd(port), leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, leaf);
            byte[] data = new byte[300_000];
            new Random(5).nextBytes(data);
            long at = (6L << 20) + 4097; // partly over the hole: the edges are filled first
            fx.dd(mnt.resolve("disk.raw"), at, data, true).assertOk();
            CorfsFixture.pwrite(model, at, data);
            byte[] zeros = new byte[1 << 20];
            fx.dd(mnt.resolve("disk.raw"), 1L << 20, zeros, true).assertOk(); // zeros over data
            CorfsFixture.pwrite(model, 1L << 20, zeros);
            fx.corfs("commit", mnt.toString(), "--wait").assertOk();
            assertEquals("0", fx.status(mnt, "disk.raw").get("dirty_bytes"));
            fx.umount(mnt);
            fx.assertSameContent(img, model);
            fx.mount(mnt, leaf); // the identity recorded after the commit is accepted
            fx.assertSameContent(mnt.resolve("disk.raw"), model);
            fx.umount(mnt);
        });
    }

    @Test
    @DisplayName("two leaves over one writable NBD export: a commit is refused while the other still reads it")
    void commitRefusedWhileAnotherLeafReadsTheExport() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path img = image("source.raw", 7);
            Path model = fx.dir().resolve("model.raw");
            Files.copy(img, model);
            int port = LocalServers.freePort();
            qemuNbd(img, port, false);
            Path a = fx.dir().resolve("a.raw");
            Path b = fx.dir().resolve("b.raw");
            fx.corfs("create", "--backing", nbd(port), a.toString()).assertOk();
            // an alias of the same export: the address instead of the name is still the same disk
            fx.corfs("create", "--backing", "nbd://localhost:" + port + "/disk", b.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            fx.mount(mnt, a, b);
            byte[] data = new byte[1 << 20];
            new Random(7).nextBytes(data);
            fx.dd(mnt.resolve("b.raw"), 20L << 20, data, true).assertOk();
            Result refused = fx.control(mnt, "commit b.raw");
            assertNotEquals(0, refused.exit(), refused.toString());
            assertTrue(refused.stderr().contains("Device or resource busy"), refused.toString());
            String why = fx.status(mnt, "b.raw").get("command_error").replace("%20", " "); // percent-encoded field
            assertTrue(why.contains("a.raw") && why.contains("same backing"), why);
            fx.assertSameContent(mnt.resolve("a.raw"), model); // a reads the source as it was

            fx.corfs("stream", mnt.toString(), "a.raw", "--wait").assertOk();
            fx.corfs("commit", mnt.toString(), "b.raw", "--wait").assertOk(); // a no longer needs the export
            CorfsFixture.pwrite(model, 20L << 20, data);
            fx.umount(mnt);
            fx.assertSameContent(img, model);
        });
    }

    @Test
    @DisplayName("S3 (s3proxy): credentials from the environment, cmp, stream to standalone, remount with s3proxy gone")
    void s3StreamAndRemount() {
        assertTimeoutPreemptively(GUARD, () -> {
            Path jar = Path.of(System.getProperty("corfs.s3proxy.jar", "target/s3proxy/s3proxy.jar"));
            assumeTrue(Files.isRegularFile(jar), "no s3proxy jar at " + jar + " (mvn verify copies it)");
            String id = "corfs-it-id";
            String secret = "corfs-it-secret-value";
            int port = LocalServers.freePort();
            String endpoint = "http://127.0.0.1:" + port;
            Path props = fx.dir().resolve("s3proxy.properties");
            Files.writeString(props, "s3proxy.endpoint=" + endpoint + "\ns3proxy.authorization=aws-v2-or-v4\n"
                    + "s3proxy.identity=" + id + "\ns3proxy.credential=" + secret + "\njclouds.provider=transient\n"
                    + "jclouds.identity=" + id + "\njclouds.credential=" + secret + "\n");
            String javaBin = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            LocalServers.Server s3 = servers.start("s3proxy", List.of(javaBin, "-Xmx256m", "-XX:TieredStopAtLevel=1",
                    "-jar", jar.toString(), "--properties", props.toString()), fx.dir(), port, Duration.ofSeconds(90));
            Path img = image("model.raw", 6);
            corfs.backing.s3.AwsCredentialsProvider creds = () -> new corfs.backing.s3.AwsCredentials(id, secret, null,
                    null);
            s3put(endpoint, creds, "/vm-images", new byte[0]);
            s3put(endpoint, creds, "/vm-images/golden/disk.raw", Files.readAllBytes(img));

            Map<String, String> env = Map.of("AWS_ACCESS_KEY_ID", id, "AWS_SECRET_ACCESS_KEY", secret,
                    "AWS_EC2_METADATA_DISABLED", "true", "AWS_CONFIG_FILE", "/nonexistent",
                    "AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
            Path leaf = fx.dir().resolve("disk.raw");
            fx.corfsWithEnv(env, "create", "--backing", "s3://vm-images/golden/disk.raw", "--backing-opt",
                    "endpoint=" + endpoint, "--backing-opt", "region=us-east-1", "--backing-opt", "path-style=yes",
                    leaf.toString()).assertOk();
            Path mnt = fx.newMountPoint("mnt");
            Result mounted = fx.corfsWithEnv(env, "mount", leaf.toString(), mnt.toString()).assertOk();
            fx.onTeardown("umount " + mnt, () -> fx.forceUnmount(mnt));
            Path exposed = mnt.resolve("disk.raw");
            fx.assertSameContent(exposed, img);
            fx.corfs("stream", mnt.toString(), "--wait").assertOk();
            fx.umount(mnt);
            for (Path p : List.of(leaf, CorfsFixture.metadataOf(leaf), fx.dir().resolve("disk.raw.log"))) {
                if (Files.exists(p)) {
                    assertTrue(!new String(Files.readAllBytes(p), java.nio.charset.StandardCharsets.ISO_8859_1)
                            .contains(secret), "the secret is in no file corfs writes: " + p + " " + mounted);
                }
            }
            servers.stop(s3);
            fx.mount(mnt, leaf);
            fx.assertSameContent(exposed, img);
            fx.umount(mnt);
        });
    }

    /** A SigV4-signed PUT (a bucket, or an object) to the S3 server. */
    private static void s3put(String endpoint, corfs.backing.s3.AwsCredentialsProvider creds, String path, byte[] body)
            throws Exception {
        java.net.URI uri = java.net.URI.create(endpoint + corfs.backing.s3.SigV4Signer.encode(path, false));
        corfs.backing.s3.SigV4Signer signer = new corfs.backing.s3.SigV4Signer(creds, "us-east-1", "s3",
                java.time.Clock.systemUTC());
        java.net.http.HttpRequest.Builder b = java.net.http.HttpRequest.newBuilder(uri)
                .PUT(java.net.http.HttpRequest.BodyPublishers.ofByteArray(body));
        signer.sign("PUT", uri, Map.of(), corfs.backing.s3.SigV4Signer.sha256Hex(body)).forEach(b::header);
        java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(b.build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "PUT " + path + ": " + r.body());
    }
}
