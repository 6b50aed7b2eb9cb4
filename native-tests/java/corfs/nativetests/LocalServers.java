package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Real servers (nginx, python3 -m http.server, s3proxy) that a test starts as child processes on
 * 127.0.0.1 and that are stopped whatever happens to the test: SIGTERM, a bounded wait, then SIGKILL of
 * the process and any child it left. Register it with {@code @RegisterExtension final LocalServers servers
 * = LocalServers.perTest();} (stopped after each test) or a static {@code LocalServers.perClass()}
 * (stopped after all tests of the class). A server's output goes to a log file, quoted when it fails to
 * come up. Not thread-safe: start and stop from the test thread.
 */
public final class LocalServers implements AfterEachCallback, AfterAllCallback {
    private final boolean perTest;
    private final List<Server> running = new ArrayList<>();

    /** One started server: its process, its log and the port it listens on. */
    public record Server(String name, Process process, Path log, int port, List<String> command) {
    }

    private LocalServers(boolean perTest) {
        this.perTest = perTest;
    }

    public static LocalServers perTest() {
        return new LocalServers(true);
    }

    public static LocalServers perClass() {
        return new LocalServers(false);
    }

    /** A TCP port free on 127.0.0.1 right now. */
    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    /** Whether {@code command} is on the PATH (or an absolute path that exists). */
    public static boolean have(String command) {
        if (command.startsWith("/")) {
            return Files.isExecutable(Path.of(command));
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, command))) {
                return true;
            }
        }
        return Files.isExecutable(Path.of("/usr/sbin", command));
    }

    /** Starts {@code command} and waits until 127.0.0.1:{@code port} accepts connections. */
    public Server start(String name, List<String> command, Path logDir, int port, Duration upWithin)
            throws IOException, InterruptedException {
        Path log = logDir.resolve(name + ".log");
        Process p = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        Server s = new Server(name, p, log, port, List.copyOf(command));
        running.add(s);
        long deadline = System.nanoTime() + upWithin.toNanos();
        while (System.nanoTime() < deadline) {
            if (!p.isAlive()) {
                fail(name + " exited with " + p.exitValue() + " before listening on " + port + ":\n" + tail(log));
            }
            try (Socket probe = new Socket()) {
                probe.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return s;
            } catch (IOException e) {
                Thread.sleep(50);
            }
        }
        stop(s);
        fail(name + " did not listen on " + port + " within " + upWithin.toSeconds() + " s:\n" + tail(log));
        return s;
    }

    /** Starts the same command again on the same port (after {@link #kill}). */
    public Server restart(Server s, Duration upWithin) throws IOException, InterruptedException {
        stop(s);
        return start(s.name(), s.command(), s.log().getParent(), s.port(), upWithin);
    }

    /** SIGKILL, as a crash: the server gets no chance to close its connections. */
    public void kill(Server s) throws InterruptedException {
        s.process().descendants().forEach(ProcessHandle::destroyForcibly);
        s.process().destroyForcibly();
        s.process().waitFor(10, TimeUnit.SECONDS);
    }

    /** SIGTERM, five seconds, then SIGKILL; children too. Idempotent. */
    public void stop(Server s) throws InterruptedException {
        List<ProcessHandle> children = s.process().descendants().toList();
        s.process().destroy();
        if (!s.process().waitFor(5, TimeUnit.SECONDS)) {
            s.process().destroyForcibly();
            s.process().waitFor(5, TimeUnit.SECONDS);
        }
        children.forEach(ProcessHandle::destroyForcibly);
        running.remove(s);
    }

    private void stopAll() throws InterruptedException {
        for (int i = running.size() - 1; i >= 0; i--) {
            stop(running.get(i));
        }
    }

    @Override
    public void afterEach(ExtensionContext context) throws InterruptedException {
        if (perTest) {
            stopAll();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws InterruptedException {
        stopAll();
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }
}
