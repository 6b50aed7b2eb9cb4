package corfs.nativetests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import corfs.nativetests.CorfsFixture.Result;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 11: corfs at home on a host, through the real tools. {@code scripts/install --prefix} into the test's
 * directory (never system-wide), then: the installed launcher's {@code --version}, {@code man -w}, the bash
 * completion asked for candidates in a bash, {@code mount -t fuse.corfs} and an fstab line through util-linux
 * ({@code mount -T} with a private fstab: /etc/fstab is never touched), {@code umount} returning only once the
 * daemon has flushed (the written data's bits durable: {@code corfs info} and {@code check} on the leaf after
 * it returns), {@code umount -l} of a busy mount, the systemd and libvirt examples checked by
 * {@code systemd-analyze verify} and {@code virt-xml-validate}, and {@code --uninstall} removing everything.
 *
 * <p>mount(8) looks for helpers in /sbin only: the mount test links {@code /usr/sbin/mount.fuse.corfs} and
 * {@code umount.fuse.corfs} to the prefix's helpers for its duration and removes the links whatever happens;
 * it skips when those names exist already (an installed corfs: not ours to replace).
 */
@DisplayName("host integration: install, mount(8), fstab, umount(8), man, completion, examples")
class HostIT {
    private static final int MIB = 1 << 20;
    private static final Duration TEST_TIMEOUT = Duration.ofMinutes(4);
    private static final Duration TOOL = Duration.ofSeconds(120);
    private static final Path SBIN = Path.of("/usr/sbin");

    @RegisterExtension
    final CorfsFixture fx = new CorfsFixture();

    /** scripts/install --prefix DIR/prefix (a directory that does not exist yet); uninstalled after the test. */
    private Path install() {
        Path prefix = fx.dir().resolve("prefix");
        assertTrue(Files.isRegularFile(fx.repo().resolve("target/man/man1/corfs-mount.1")),
                "man pages not built: asciidoctor missing? (scripts/install-deps installs it)");
        fx.run(TOOL, fx.repo().resolve("scripts/install").toString(), "--prefix", prefix.toString()).assertOk();
        fx.onTeardown("uninstall " + prefix, () -> {
            if (Files.exists(prefix.resolve("share/corfs/install-manifest"))) {
                fx.run(TOOL, fx.repo().resolve("scripts/install").toString(), "--uninstall", "--prefix",
                        prefix.toString()).assertOk();
            }
        });
        return prefix;
    }

    private Map<String, String> manEnv(Path prefix) {
        Map<String, String> env = new HashMap<>();
        env.put("MANPATH", prefix.resolve("share/man").toString());
        return env;
    }

    @Test
    @DisplayName("install --prefix: launcher, --version, man -w, bash completion; --uninstall leaves nothing")
    void installUseUninstall() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path prefix = install();
            for (String f : List.of("bin/corfs", "sbin/mount.fuse.corfs", "sbin/umount.fuse.corfs",
                    "share/corfs/corfs.jar", "share/man/man1/corfs.1", "share/man/man1/corfs-mount.1",
                    "share/man/man1/corfs-umount.1", "share/bash-completion/completions/corfs")) {
                assertTrue(Files.isRegularFile(prefix.resolve(f)), f + " not installed");
            }
            assertTrue(Files.isExecutable(prefix.resolve("sbin/mount.fuse.corfs")));

            Result v = fx.run(TOOL, prefix.resolve("bin/corfs").toString(), "--version").assertOk();
            List<String> lines = v.stdout().lines().toList();
            assertEquals(4, lines.size(), v.toString());
            assertTrue(lines.get(0).matches("corfs \\d+\\.\\d+\\.\\d+.*"), v.toString());
            assertTrue(lines.get(1).startsWith("Java 17") || lines.get(1).matches("Java \\d\\d.*"), v.toString());
            assertTrue(lines.get(2).matches("libfuse 2\\.9(\\.\\d+)? .*|libfuse 2\\.9"), v.toString());
            assertTrue(lines.get(3).matches("jnr-fuse \\d+\\.\\d+\\.\\d+"), v.toString());

            Result man = fx.run(TOOL, manEnv(prefix), "man", "-w", "corfs-mount").assertOk();
            assertEquals(prefix.resolve("share/man/man1/corfs-mount.1").toString(), man.stdout().trim());
            Result page = fx.run(TOOL, Map.of("MANPATH", prefix.resolve("share/man").toString(), "MANWIDTH", "100"),
                    "man", "corfs-mount").assertOk();
            assertTrue(page.stdout().contains("--read-only") && page.stdout().contains("fuse.corfs"), page.toString());
            fx.run(TOOL, manEnv(prefix), "man", "-w", "corfs").assertOk();

            // The completion, loaded in a bash and asked as bash asks it (COMP_WORDS/COMP_CWORD).
            String completion = prefix.resolve("share/bash-completion/completions/corfs").toString();
            String prelude = "source '" + completion + "' 2>/dev/null\n"
                    + "ask() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($#-1)); COMP_LINE=\"$*\"; COMP_POINT=${#COMP_LINE};"
                    + " COMPREPLY=(); $(complete -p corfs | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') corfs \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\""
                    + " 2>/dev/null; printf '%s\\n' \"${COMPREPLY[@]}\"; echo ---; }\n";
            String ask = prelude + "complete -p corfs\nask corfs ''\nask corfs mo\nask corfs mount --\nask corfs status --\n";
            Result c = fx.run(TOOL, "bash", "-c", ask).assertOk();
            String[] parts = c.stdout().split("---\n", -1);
            assertTrue(parts[0].contains("_complete_corfs"), c.toString());
            List<String> commands = parts[0].lines().skip(1).toList();
            assertTrue(commands.containsAll(List.of("create", "info", "map", "check", "mount", "umount", "status",
                    "stream", "commit", "pause", "resume", "cancel", "speed")), c.toString());
            assertFalse(commands.contains("mount-helper"), "a hidden helper offered: " + c);
            assertEquals(List.of("mount"), parts[1].lines().toList(), c.toString());
            assertTrue(parts[2].lines().toList().containsAll(List.of("--foreground", "--read-only", "--force", "--log")),
                    c.toString());
            assertTrue(parts[3].lines().toList().contains("--json"), c.toString());

            // The job commands complete the image names of the mount given before them, from its control file.
            Path backing = fx.makeBacking("base.raw", 4L * MIB, 2);
            Path mnt = fx.mount(fx.newMountPoint("mnt"), fx.createLeaf(backing, "vm one.raw"),
                    fx.createLeaf(backing, "vm2.raw"));
            String askImages = prelude + "ask corfs stream '" + mnt + "' ''\n"
                    + "ask corfs commit --speed 1M '" + mnt + "' vm\n" + "ask corfs cancel '" + mnt + "' vm2\n";
            Result ci = fx.run(TOOL, "bash", "-c", askImages).assertOk();
            String[] img = ci.stdout().split("---\n", -1);
            assertEquals(List.of("vm%20one.raw", "vm2.raw"), img[0].lines().sorted().toList(), ci.toString());
            assertEquals(List.of("vm%20one.raw", "vm2.raw"), img[1].lines().sorted().toList(), ci.toString());
            assertEquals(List.of("vm2.raw"), img[2].lines().toList(), ci.toString());
            fx.corfs("stream", mnt.toString(), img[0].lines().sorted().findFirst().orElseThrow(), "--wait").assertOk();
            fx.umount(mnt);

            fx.run(TOOL, fx.repo().resolve("scripts/install").toString(), "--uninstall", "--prefix",
                    prefix.toString()).assertOk();
            assertFalse(Files.exists(prefix, LinkOption.NOFOLLOW_LINKS), "uninstall left " + listing(prefix));
        });
    }

    @Test
    @DisplayName("fast start: install makes a class-data-sharing archive the launcher uses; one writable by others"
            + " is not used, a stale one is ignored silently; uninstall removes it")
    void cdsArchive() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path prefix = install();
            Path jsa = prefix.resolve("share/corfs/corfs.jsa");
            assertTrue(Files.isRegularFile(jsa), "no archive installed");
            assertTrue(Files.readString(prefix.resolve("share/corfs/install-manifest")).contains("file " + jsa + "\n"));
            Path classLog = fx.dir().resolve("classes.log");
            java.util.function.Supplier<Long> archived = () -> {
                Result v = fx.run(TOOL, Map.of("CORFS_JAVA_OPTS", "-Xlog:class+load:file=" + classLog),
                        prefix.resolve("bin/corfs").toString(), "--version").assertOk();
                assertEquals(4, v.stdout().lines().count(), "nothing but the version report: " + v);
                assertEquals("", v.stderr(), v.toString());
                try {
                    return Files.readString(classLog).lines().filter(l -> l.contains("shared objects file (top)")).count();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            };
            assertTrue(archived.get() > 300, "corfs's classes come from the archive");
            fx.run(TOOL, "chmod", "g+w", jsa.toString()).assertOk();
            assertEquals(0L, archived.get(), "an archive others may write is not used");
            fx.run(TOOL, "chmod", "0644", jsa.toString()).assertOk();
            fx.run(TOOL, "sh", "-c", "chmod u+w \"$0\" && printf stale > \"$0\"", jsa.toString()).assertOk();
            assertEquals(0L, archived.get(), "a stale archive is ignored");
            fx.run(TOOL, fx.repo().resolve("scripts/install").toString(), "--uninstall", "--prefix",
                    prefix.toString()).assertOk();
            assertFalse(Files.exists(prefix, LinkOption.NOFOLLOW_LINKS), "uninstall left " + listing(prefix));
        });
    }

    @Test
    @DisplayName("install refuses to overwrite what it did not install, and changes nothing then")
    void refusesForeignFiles() throws Exception {
        Path prefix = fx.dir().resolve("prefix");
        Path foreign = Files.createDirectories(prefix.resolve("bin")).resolve("corfs");
        Files.writeString(foreign, "someone else's\n");
        Result r = fx.run(TOOL, fx.repo().resolve("scripts/install").toString(), "--prefix", prefix.toString());
        assertTrue(r.exit() != 0 && r.stderr().contains("refusing to overwrite"), r.toString());
        assertEquals("someone else's\n", Files.readString(foreign));
        try (Stream<Path> all = Files.walk(prefix)) {
            assertEquals(List.of(prefix, prefix.resolve("bin"), foreign), all.sorted().toList(),
                    "a failed install left files behind");
        }
    }

    @Test
    @DisplayName("mount -t fuse.corfs, an fstab line, umount (durable on return) and umount -l, via util-linux")
    void utilLinuxMountAndUmount() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            for (String h : List.of("mount.fuse.corfs", "umount.fuse.corfs")) {
                assumeFalse(Files.exists(SBIN.resolve(h), LinkOption.NOFOLLOW_LINKS),
                        SBIN.resolve(h) + " exists (corfs installed system-wide): not replacing it");
            }
            Path prefix = install();
            for (String h : List.of("mount.fuse.corfs", "umount.fuse.corfs")) {
                Path link = SBIN.resolve(h);
                Files.createSymbolicLink(link, prefix.resolve("sbin").resolve(h));
                fx.onTeardown("remove " + link, () -> Files.deleteIfExists(link));
            }
            Path backing = fx.makeBacking("base.raw", 16L * MIB, 11);
            Path a = fx.createLeaf(backing, "a.raw");
            Path b = fx.createLeaf(backing, "b.raw");
            Path mnt = fx.newMountPoint("mnt");

            // mount -t: two leaves, read-only, with mount's, systemd's, libfuse's and corfs's options mixed.
            Result m = fx.run(TOOL, "mount", "-t", "fuse.corfs", a + ":" + b, mnt.toString(), "-o",
                    "ro,nofail,_netdev,x-systemd.before=libvirtd.service,nosuid,nodev,backing_timeout=5,threads=4");
            m.assertOk();
            // Ready on return: the kernel shows it and the files answer.
            assertEquals("fuse.corfs", CorfsFixture.mountType(mnt), m.toString());
            assertEquals("", m.stdout(), "a mount helper prints nothing on success");
            assertEquals(2, fx.status(mnt).size());
            assertEquals(0400, (Integer) Files.getAttribute(mnt.resolve("a.raw"), "unix:mode") & 0777, "ro");
            assertTrue(Files.readString(Path.of("/proc/self/mountinfo")).lines()
                    .anyMatch(l -> l.contains(" " + mnt + " ") && l.contains("nosuid") && l.contains("nodev")));
            fx.assertSameContent(mnt.resolve("b.raw"), backing);
            List<Long> daemons = CorfsFixture.daemonPidsFor(mnt);
            assertEquals(1, daemons.size(), "one daemon serves the mount");
            Result u = fx.run(TOOL, "umount", mnt.toString()).assertOk();
            assertFalse(CorfsFixture.isMounted(mnt), u.toString());
            assertFalse(CorfsFixture.isLiveProcess(daemons.get(0)), "umount returned before the daemon exited");

            // An fstab line, from a private fstab; then writes, then umount: durable when it returns.
            Path fstab = fx.dir().resolve("fstab");
            Files.writeString(fstab, "# private fstab of HostIT\n" + a + " " + mnt
                    + " fuse.corfs defaults,noauto,nofail,_netdev,x-systemd.before=libvirtd.service,user 0 0\n");
            fx.run(TOOL, "mount", "-T", fstab.toString(), mnt.toString()).assertOk();
            assertEquals("fuse.corfs", CorfsFixture.mountType(mnt));
            byte[] data = new byte[3 * 65536];
            new java.util.Random(5).nextBytes(data);
            CorfsFixture.pwrite(mnt.resolve("a.raw"), 65536, data); // no fsync: umount must flush
            daemons = CorfsFixture.daemonPidsFor(mnt);
            fx.run(TOOL, "umount", mnt.toString()).assertOk();
            for (long pid : daemons) {
                assertFalse(CorfsFixture.isLiveProcess(pid), "umount returned before the daemon exited");
            }
            Result info = fx.corfs("info", a.toString()).assertOk();
            assertTrue(info.stdout().contains("dirty:          192.0 KiB"), "the written clusters' bits: " + info);
            fx.corfs("check", a.toString()).assertOk();
            assertTrue(java.util.Arrays.equals(data, CorfsFixture.pread(a, 65536, data.length)));

            // umount -l of a busy mount: detached at once; the daemon flushes and exits when the file closes.
            fx.run(TOOL, "mount", "-T", fstab.toString(), mnt.toString()).assertOk();
            daemons = CorfsFixture.daemonPidsFor(mnt);
            Process holder = new ProcessBuilder("sh", "-c", "exec 3<'" + mnt.resolve("a.raw") + "'; echo open; sleep 60")
                    .redirectErrorStream(true).start();
            fx.onTeardown("stop the file holder", holder::destroyForcibly);
            assertEquals("open", new java.io.BufferedReader(new java.io.InputStreamReader(holder.getInputStream()))
                    .readLine());
            Result busy = fx.run(TOOL, "umount", mnt.toString());
            assertTrue(busy.exit() != 0 && CorfsFixture.isMounted(mnt), "a busy mount unmounted without -l: " + busy);
            Result lazy = fx.run(TOOL, "umount", "-l", mnt.toString()).assertOk();
            assertFalse(CorfsFixture.isMounted(mnt), lazy.toString());
            assertTrue(lazy.stderr().contains("detached it lazily"), lazy.toString());
            assertTrue(CorfsFixture.isLiveProcess(daemons.get(0)), "the daemon must serve the open file still");
            holder.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (CorfsFixture.isLiveProcess(daemons.get(0)) && System.nanoTime() < deadline) {
                CorfsFixture.sleep(50);
            }
            assertFalse(CorfsFixture.isLiveProcess(daemons.get(0)), "the daemon did not exit after the last close");
            fx.corfs("check", a.toString()).assertOk();

            // A bad option fails the mount with mount(8)'s failure code; a bad source with its usage code.
            Result bad = fx.run(TOOL, "mount", "-t", "fuse.corfs", a.toString(), mnt.toString(), "-o", "threads=0");
            assertEquals(1, bad.exit(), bad.toString());
            assertTrue(bad.stderr().contains("threads"), bad.toString());
            Result missing = fx.run(TOOL, "mount", "-t", "fuse.corfs", fx.dir().resolve("none.raw").toString(),
                    mnt.toString());
            assertEquals(32, missing.exit(), missing.toString());
            assertFalse(CorfsFixture.isMounted(mnt));
        });
    }

    @Test
    @DisplayName("examples: the mount unit and the fstab lines pass systemd-analyze verify; the domain virt-xml-validate")
    void examples() {
        assertTimeoutPreemptively(TEST_TIMEOUT, () -> {
            Path prefix = install(); // the unit's Documentation=man:corfs-mount(1) must resolve
            Path units = Files.createDirectories(fx.dir().resolve("units"));
            Files.copy(fx.repo().resolve("examples/systemd/mnt-vm1.mount"), units.resolve("mnt-vm1.mount"));
            Map<String, String> env = manEnv(prefix);
            Result unit = fx.run(TOOL, env, "systemd-analyze", "verify", units.resolve("mnt-vm1.mount").toString());
            assertEquals(0, unit.exit(), unit.toString());
            assertEquals("", unit.stderr().strip(), unit.toString());

            // fstab: the units systemd's own generator makes from it, verified the same way.
            Path gen = Files.createDirectories(fx.dir().resolve("generated"));
            Map<String, String> genEnv = new HashMap<>(env);
            genEnv.put("SYSTEMD_FSTAB", fx.repo().resolve("examples/systemd/fstab").toString());
            fx.run(TOOL, genEnv, "/usr/lib/systemd/system-generators/systemd-fstab-generator", gen.toString(),
                    gen.toString(), gen.toString()).assertOk();
            List<String> made;
            try (Stream<Path> s = Files.list(gen)) {
                made = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".mount")).sorted().toList();
            }
            assertEquals(List.of("mnt-vm1.mount", "mnt-vms.mount"), made);
            for (String n : made) {
                String text = Files.readString(gen.resolve(n));
                assertTrue(text.contains("Before=libvirtd.service") && text.contains("Type=fuse.corfs"), text);
                // --man=no: their Documentation= lines are the generator's own (fstab(5)), not corfs's pages
                Result r = fx.run(TOOL, env, "systemd-analyze", "verify", "--man=no", gen.resolve(n).toString());
                assertEquals(0, r.exit(), r.toString());
                assertEquals("", r.stderr().strip(), r.toString());
            }
            assertTrue(Files.exists(gen.resolve("remote-fs.target.wants/mnt-vm1.mount")), "_netdev: a remote mount");

            Path domain = fx.repo().resolve("examples/libvirt/vm1.xml");
            fx.run(TOOL, "virt-xml-validate", domain.toString(), "domain").assertOk();
            Result driver = fx.run(TOOL, "xmllint", "--xpath", "string(//disk/driver/@type)", domain.toString());
            assertEquals("raw", driver.assertOk().stdout().trim());
            for (String[] attr : new String[][] {{"cache", "none"}, {"io", "native"}, {"discard", "unmap"}}) {
                Result r = fx.run(TOOL, "xmllint", "--xpath", "string(//disk/driver/@" + attr[0] + ")",
                        domain.toString()).assertOk();
                assertEquals(attr[1], r.stdout().trim());
            }
        });
    }

    private static String listing(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            return s.map(Path::toString).toList().toString();
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }
}
