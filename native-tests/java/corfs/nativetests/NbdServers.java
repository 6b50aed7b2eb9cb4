package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Real NBD servers for a test: {@code qemu-nbd} and {@code nbdkit} started as child processes on a Unix
 * socket or a free loopback port, in a fresh directory, and stopped after each test whatever happened
 * (SIGTERM, then SIGKILL after 5 s; nbdkit also runs with {@code --exit-with-parent}). A test that
 * needs a tool that is not installed is skipped (an assumption), not failed.
 *
 * <p>Register with {@code @RegisterExtension final NbdServers servers = new NbdServers();}. Not
 * thread-safe: start servers from the test thread.
 */
public final class NbdServers implements BeforeEachCallback, AfterEachCallback {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(20);

    private final Deque<Process> processes = new ArrayDeque<>();
    private Path dir;
    private int counter;

    /** A started server: how to reach it, and its process (to kill it in a fault test). */
    public record Server(Process process, Path socket, int port, Path log) {
        /** The URI of {@code export} on it, plain or TLS; a Unix socket server gets {@code tls-hostname=localhost}. */
        public String uri(String export, boolean tls) {
            if (socket != null) {
                return (tls ? "nbds+unix" : "nbd+unix") + ":///" + export + "?socket=" + socket
                        + (tls ? "&tls-hostname=localhost" : "");
            }
            return (tls ? "nbds" : "nbd") + "://localhost:" + port + "/" + export;
        }

        public String uri(String export) {
            return uri(export, false);
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) throws IOException {
        dir = Files.createTempDirectory("corfs-nbd-");
    }

    @Override
    public void afterEach(ExtensionContext context) throws IOException {
        List<String> stuck = new ArrayList<>();
        while (!processes.isEmpty()) {
            Process p = processes.pop();
            p.destroy();
            try {
                if (!p.waitFor(5, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    if (!p.waitFor(5, TimeUnit.SECONDS)) {
                        stuck.add(p.info().commandLine().orElse("pid " + p.pid()));
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroyForcibly();
            }
        }
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        }
        if (!stuck.isEmpty()) {
            fail("servers did not stop: " + stuck);
        }
    }

    public Path dir() {
        return dir;
    }

    public static boolean installed(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return Files.isExecutable(Path.of("/usr/sbin", tool)) || Files.isExecutable(Path.of("/usr/bin", tool));
    }

    /** {@code qemu-nbd -f raw -t} on {@code image}, on a Unix socket (or on loopback TCP if {@code tcp}). */
    public Server qemuNbd(Path image, boolean tcp, String... extra) throws IOException {
        assumeTrue(installed("qemu-nbd"), "qemu-nbd (qemu-utils) is not installed");
        List<String> cmd = new ArrayList<>(List.of("qemu-nbd", "-f", "raw", "-t"));
        cmd.addAll(List.of(extra));
        return start(cmd, tcp, image.toString(), "-b", "127.0.0.1", "-p", "-k");
    }

    /**
     * {@code qemu-nbd -f raw -t} on {@code image} at the Unix socket of {@code previous} (a server that was
     * stopped): a server restarted at the same address, to test reconnects.
     */
    public Server qemuNbdAt(Server previous, Path image, String... extra) throws IOException {
        assumeTrue(installed("qemu-nbd"), "qemu-nbd (qemu-utils) is not installed");
        if (previous.socket() == null) {
            throw new IllegalArgumentException("restart at the same address works for Unix sockets only");
        }
        Files.deleteIfExists(previous.socket());
        List<String> cmd = new ArrayList<>(List.of("qemu-nbd", "-f", "raw", "-t"));
        cmd.addAll(List.of(extra));
        cmd.addAll(List.of("-k", previous.socket().toString(), image.toString()));
        return start(cmd, previous.socket(), -1);
    }

    /** {@code nbdkit -f --exit-with-parent ARGS...} on a Unix socket (or loopback TCP if {@code tcp}). */
    public Server nbdkit(boolean tcp, String... args) throws IOException {
        assumeTrue(installed("nbdkit"), "nbdkit is not installed");
        List<String> cmd = new ArrayList<>(List.of("nbdkit", "-f", "--exit-with-parent"));
        List<String> rest = new ArrayList<>(List.of(args));
        // options go before the plugin: the first argument that does not start with '-' is the plugin
        int plugin = 0;
        while (plugin < rest.size() && rest.get(plugin).startsWith("-")) {
            plugin++;
        }
        cmd.addAll(rest.subList(0, plugin));
        return start(cmd, tcp, String.join("\u0000", rest.subList(plugin, rest.size())), "-i", "127.0.0.1", "-p", "-U");
    }

    private Server start(List<String> cmd, boolean tcp, String tail, String bindFlag, String bindAddress,
            String portFlag, String socketFlag) throws IOException {
        int n = ++counter;
        Path socket = null;
        int port = -1;
        if (tcp) {
            port = freePort();
            cmd.addAll(List.of(bindFlag, bindAddress, portFlag, Integer.toString(port)));
        } else {
            socket = dir.resolve("s" + n + ".sock");
            cmd.addAll(List.of(socketFlag, socket.toString()));
        }
        for (String t : tail.split("\u0000")) {
            if (!t.isEmpty()) {
                cmd.add(t);
            }
        }
        return start(cmd, socket, port);
    }

    private Server start(List<String> cmd, Path socket, int port) throws IOException {
        int n = ++counter;
        boolean tcp = socket == null;
        Path log = dir.resolve("server" + n + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        processes.push(p);
        long until = System.nanoTime() + START_TIMEOUT.toNanos();
        while (System.nanoTime() < until) {
            if (!p.isAlive()) {
                fail("server exited (" + p.exitValue() + "): " + cmd + "\n" + Files.readString(log));
            }
            if (tcp ? accepts(port) : Files.exists(socket) && accepts(socket)) {
                return new Server(p, socket, port, log);
            }
            sleep(20);
        }
        fail("server not ready within " + START_TIMEOUT.toSeconds() + " s: " + cmd + "\n" + Files.readString(log));
        return null;
    }

    private static boolean accepts(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static boolean accepts(Path socket) {
        try (java.nio.channels.SocketChannel ch = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            ch.connect(java.net.UnixDomainSocketAddress.of(socket));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * Makes TLS material with openssl in {@code dir/name}: {@code ca-cert.pem}, {@code ca-key.pem},
     * {@code server-cert.pem}/{@code server-key.pem} for localhost and 127.0.0.1, and
     * {@code client-cert.pem}/{@code client-key.pem} (PKCS#8), all signed by that CA: the layout
     * {@code nbdkit --tls-certificates} reads.
     */
    public Path tlsMaterial(String name) throws IOException, InterruptedException {
        assumeTrue(installed("openssl"), "openssl is not installed");
        Path d = Files.createDirectories(dir.resolve(name));
        openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=corfs test CA " + name,
                "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign");
        for (String who : List.of("server", "client")) {
            openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + (who.equals("server") ? "localhost" : "client"),
                    "-keyout", who + "-key.pem", "-out", who + ".csr");
            Path ext = d.resolve(who + ".ext");
            Files.writeString(ext, who.equals("server")
                    ? "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                    : "extendedKeyUsage=clientAuth\n");
            openssl(d, "x509", "-req", "-in", who + ".csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
                    "-CAcreateserial", "-days", "2", "-extfile", ext.toString(), "-out", who + "-cert.pem");
        }
        return d;
    }

    private static void openssl(Path d, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(d.toFile()).redirectErrorStream(true)
                .redirectOutput(d.resolve("openssl.log").toFile()).start();
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            fail("openssl failed: " + cmd + "\n" + Files.readString(d.resolve("openssl.log")));
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
