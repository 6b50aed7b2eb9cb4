package corfs.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MountCommand#RELAY}, the shell between {@code corfs mount} and its daemon, run for real with a stand-in
 * daemon (a shell script that speaks the PID/READY protocol and records the SIGTERM it gets).
 */
@DisplayName("the mount relay")
class MountRelayTest {

    /** The stand-in: says its pid, waits for GO (at most 60 s), says READY, then waits to be stopped. */
    private static final String DAEMON = "trap 'echo TERM > \"$1/term\"; exit 0' TERM; echo \"PID $$\";"
            + " n=0; while [ ! -e \"$1/go\" ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done;"
            + " echo 'READY /mnt/x'; n=0; while [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done";

    @Test
    @DisplayName("a starter killed before READY (its pipe has no reader): the relay stops the mounted daemon")
    void starterGoneAtReady(@TempDir Path dir) {
        assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
            Process relay = new ProcessBuilder(List.of("/bin/sh", "-c", MountCommand.RELAY, "sh",
                    "/bin/sh", "-c", DAEMON, "daemon", dir.toString()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            BufferedReader r = new BufferedReader(new InputStreamReader(relay.getInputStream(), StandardCharsets.UTF_8));
            String pidLine = r.readLine();
            assertTrue(pidLine != null && pidLine.startsWith("PID "), "the relay passed on: " + pidLine);
            long pid = Long.parseLong(pidLine.substring(4).trim());
            r.close(); // as when corfs mount is killed (SIGKILL: no hook runs): nobody reads the relay any more
            Files.createFile(dir.resolve("go"));
            assertTrue(relay.waitFor(60, TimeUnit.SECONDS), "the relay did not end");
            assertEquals(1, relay.exitValue(), "the relay's exit code");
            while (ProcessHandle.of(pid).isPresent() && !Files.exists(dir.resolve("term"))) {
                Thread.sleep(20); // bounded by the timeout above
            }
            assertTrue(Files.exists(dir.resolve("term")), "the stand-in daemon " + pid + " got no SIGTERM");
        });
    }

    @Test
    @DisplayName("with its starter reading: PID and READY pass through, the relay exits 0 and the daemon lives on")
    void starterReads(@TempDir Path dir) {
        assertTimeoutPreemptively(Duration.ofSeconds(90), () -> {
            Files.createFile(dir.resolve("go"));
            Process relay = new ProcessBuilder(List.of("/bin/sh", "-c", MountCommand.RELAY, "sh",
                    "/bin/sh", "-c", DAEMON, "daemon", dir.toString()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectError(ProcessBuilder.Redirect.DISCARD)
                    .start();
            List<String> lines = new BufferedReader(new InputStreamReader(relay.getInputStream(),
                    StandardCharsets.UTF_8)).lines().toList();
            assertTrue(relay.waitFor(60, TimeUnit.SECONDS), "the relay did not end");
            assertEquals(0, relay.exitValue(), "the relay's exit code");
            assertEquals(2, lines.size(), "lines: " + lines);
            assertEquals("READY /mnt/x", lines.get(1));
            long pid = Long.parseLong(lines.get(0).substring(4).trim());
            ProcessHandle daemon = ProcessHandle.of(pid).orElseThrow(() -> new AssertionError("the daemon ended"));
            assertTrue(!Files.exists(dir.resolve("term")), "the daemon was stopped although its starter read READY");
            daemon.destroy();
            daemon.onExit().get(30, TimeUnit.SECONDS);
        });
    }
}
