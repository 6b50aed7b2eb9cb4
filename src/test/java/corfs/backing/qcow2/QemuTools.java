package corfs.backing.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;

/** qemu-img and qemu-io for making a corpus on the fly; tests skip when they are absent. */
final class QemuTools {
    private static final Boolean AVAILABLE = probe();

    private QemuTools() {
    }

    private static Boolean probe() {
        try {
            Process p = new ProcessBuilder("qemu-img", "--version").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            boolean done = p.waitFor(30, TimeUnit.SECONDS);
            Process q = new ProcessBuilder("qemu-io", "--version").redirectErrorStream(true).start();
            q.getInputStream().readAllBytes();
            return done && p.exitValue() == 0 && q.waitFor(30, TimeUnit.SECONDS) && q.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    static void assumeAvailable() {
        Assumptions.assumeTrue(AVAILABLE, "qemu-img/qemu-io not installed (scripts/install-deps installs qemu-utils)");
    }

    /** Runs a command in {@code dir}; fails the test on a non-zero exit; returns its output. */
    static String run(Path dir, String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("timed out: " + String.join(" ", cmd));
        }
        String text = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), () -> String.join(" ", cmd) + " failed: " + text);
        return text;
    }

    /** qemu-io commands (each a -c) on a qcow2 image. */
    static void io(Path dir, String image, String... commands) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(image);
        run(dir, cmd.toArray(String[]::new));
    }

    /** One extent of {@code qemu-img map --output=json}. */
    record MapExtent(long start, long length, int depth, boolean present, boolean zero, boolean data) {
        Allocation.Kind expected() {
            return data ? Allocation.Kind.DATA : present ? Allocation.Kind.ZERO : Allocation.Kind.HOLE;
        }
    }

    private static final Pattern EXTENT = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+), "
            + "\"present\": (true|false), \"zero\": (true|false), \"data\": (true|false)");

    static List<MapExtent> map(Path image) throws IOException, InterruptedException {
        String json = run(image.getParent(), "qemu-img", "map", "--output=json", image.toString());
        List<MapExtent> list = new ArrayList<>();
        Matcher m = EXTENT.matcher(json);
        while (m.find()) {
            list.add(new MapExtent(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Integer.parseInt(m.group(3)),
                    Boolean.parseBoolean(m.group(4)), Boolean.parseBoolean(m.group(5)), Boolean.parseBoolean(m.group(6))));
        }
        if (list.isEmpty()) {
            fail("no extents in qemu-img map output: " + json);
        }
        return list;
    }
}
