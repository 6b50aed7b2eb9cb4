package corfs.cli;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.image.AccessProfile;
import corfs.image.LeafImage;
import corfs.image.ProfileLog;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code corfs profile show|export|merge}: a leaf's recorded access profile ({@link ProfileLog}) and the
 * portable profile files ({@link AccessProfile}). They read the sidecar only, never the leaf's metadata
 * lock, so they work on a mounted leaf (as of the mount's last flush, at most a second ago) as on one that
 * is not. Exit codes as the other leaf commands: 0, 1 on failure, 64 on a usage error.
 */
final class ProfileCommands {
    private ProfileCommands() {
    }

    @Command(name = "profile", description = "Show, export and merge recorded access profiles.",
            subcommands = {Show.class, Export.class, Merge.class})
    static final class Profile implements Runnable {
        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public void run() {
            throw new CommandLine.ParameterException(spec.commandLine(), "a subcommand is required (show, export, merge)");
        }
    }

    @Command(name = "show", description = "Print LEAF's recorded access profile: the extents the guest waited for,"
            + " in the order it first did, one 'OFFSET LENGTH FIRST_MS' line each (bytes; milliseconds since the"
            + " mount that fetched it), after a '#' line naming the backing identity and the totals. On a mounted"
            + " leaf, as of the mount's last flush (at most a second ago). A profile recorded over another backing"
            + " identity than the leaf's now (after set-backing or a commit) is shown with a warning on stderr"
            + " (JSON: identity_is_current false); export warns the same way.")
    static final class Show implements Callable<Integer> {
        @Option(names = "--json", description = "print JSON")
        boolean json;

        @Parameters(paramLabel = "LEAF")
        Path leaf;

        @Override
        public Integer call() throws Exception {
            ProfileLog.Contents c = recorded(leaf);
            AccessProfile p = c.toAccessProfile();
            String leafIdentity = leafIdentityIfOther(leaf, p);
            if (json) {
                StringBuilder extents = new StringBuilder("[");
                for (AccessProfile.Entry e : p.entries()) {
                    extents.append(extents.length() == 1 ? "" : ",").append(new Json().open().put("offset", e.offset())
                            .put("length", e.length()).put("first_ms", e.firstMillis()).close());
                }
                System.out.println(new Json().open().put("leaf", leaf.toString())
                        .put("backing_identity", p.identityToken()).put("backing_size", p.backingSize())
                        .put("cluster_size", p.clusterSize()).put("clusters", c.count())
                        .put("bytes", p.totalBytes()).put("dropped_bytes", c.droppedBytes())
                        .put("identity_is_current", leafIdentity == null)
                        .raw("extents", extents.append(']').toString()).close());
                return 0;
            }
            StringBuilder out = new StringBuilder();
            out.append("# ").append(Main.oneLine(leaf.toString())).append(": backing_identity ")
                    .append(p.identityToken()).append(", backing_size ").append(p.backingSize())
                    .append(", cluster_size ").append(p.clusterSize()).append(", ").append(c.count())
                    .append(" clusters, ").append(p.totalBytes()).append(" bytes, ").append(p.entries().size())
                    .append(" extents");
            if (c.droppedBytes() > 0) {
                out.append(", ").append(c.droppedBytes()).append(" bytes of a torn or damaged tail ignored");
            }
            out.append('\n');
            for (AccessProfile.Entry e : p.entries()) {
                out.append(e.offset()).append(' ').append(e.length()).append(' ').append(e.firstMillis()).append('\n');
            }
            System.out.print(out);
            System.out.flush();
            return 0;
        }
    }

    @Command(name = "export", description = "Write LEAF's recorded access profile to FILE, in the portable format"
            + " that prefetch and 'profile merge' read (replaced atomically; an existing FILE must be a regular"
            + " file, not a leaf's data file, metadata or sidecar; '-' writes to standard output).")
    static final class Export implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "LEAF")
        Path leaf;

        @Parameters(index = "1", paramLabel = "FILE")
        Path file;

        @Override
        public Integer call() throws Exception {
            AccessProfile p = recorded(leaf).toAccessProfile();
            leafIdentityIfOther(leaf, p);
            if (writeOut(p, file)) {
                return 0;
            }
            System.out.printf("%s: exported %d extents (%d bytes) to %s%n", Main.oneLine(leaf.toString()),
                    p.entries().size(), p.totalBytes(), Main.oneLine(file.toString()));
            return 0;
        }
    }

    @Command(name = "merge", description = "Combine exported profiles of several boots of the same backing (same"
            + " identity and cluster size) into one: every cluster any of them names, ordered by the median of its"
            + " first-touch times (ties by offset), as extents.")
    static final class Merge implements Callable<Integer> {
        @Parameters(arity = "1..*", paramLabel = "FILE", description = "exported profiles")
        List<Path> inputs;

        @Option(names = "-o", required = true, paramLabel = "FILE", description = "the merged profile to write"
                + " ('-': standard output)")
        Path output;

        @Override
        public Integer call() throws Exception {
            List<AccessProfile> profiles = new ArrayList<>();
            List<String> names = new ArrayList<>();
            for (Path in : inputs) {
                profiles.add(AccessProfile.read(in));
                names.add(Main.oneLine(in.toString()));
            }
            AccessProfile merged = AccessProfile.merge(profiles, names);
            if (writeOut(merged, output)) {
                return 0;
            }
            System.out.printf("merged %d profiles into %s: %d extents (%d bytes)%n", profiles.size(),
                    Main.oneLine(output.toString()), merged.entries().size(), merged.totalBytes());
            return 0;
        }
    }

    /**
     * The leaf's recorded profile; NOT_FOUND when it is not a corfs leaf (as info says) or has no profile,
     * INVALID_ARGUMENT when it describes another disk than the leaf's metadata (which must be readable).
     */
    static ProfileLog.Contents recorded(Path leaf) throws java.io.IOException {
        try {
            LeafImage.requireLeaf(leaf);
        } catch (CorfsException e) {
            throw new CorfsException(e.reason(), Main.oneLine(e.getMessage()));
        }
        corfs.image.LeafInfo info = corfs.image.LeafImages.info(leaf);
        return ProfileLog.read(leaf, info.virtualSize(), info.clusterSize());
    }

    /**
     * The leaf's recorded backing identity when {@code p} was recorded over another one (after set-backing or
     * a commit, before a mount starts a new profile), warning on stderr that the profile describes the
     * previous backing; null when it is the same, or when the leaf's metadata cannot be read (the profile
     * is shown as it is).
     */
    static String leafIdentityIfOther(Path leaf, AccessProfile p) {
        corfs.backing.BackingIdentity now;
        try {
            now = corfs.image.LeafImages.info(leaf).backingIdentity();
        } catch (java.io.IOException | RuntimeException e) {
            return null;
        }
        if (now.token().equals(p.identityToken())) {
            return null;
        }
        System.err.println("corfs: warning: " + Main.oneLine(leaf.toString()) + ": this profile was"
                + " recorded over another backing identity than the leaf's now (" + now.describe() + "), before a"
                + " set-backing or a commit; the leaf's next mount starts a new profile");
        return now.token();
    }

    /** Writes {@code p} to {@code file}, or to standard output for "-" (then true: nothing else to print). */
    private static boolean writeOut(AccessProfile p, Path file) throws java.io.IOException {
        if (file.toString().equals("-")) {
            System.out.write(p.toBytes());
            System.out.flush();
            return true;
        }
        if (java.nio.file.Files.isDirectory(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            throw new corfs.CorfsException(corfs.CorfsException.Reason.INVALID_ARGUMENT,
                    Main.oneLine(file.toString()) + " is a directory: give a file name");
        }
        Path owner = LeafImage.leafOwning(file);
        if (owner != null) {
            throw new corfs.CorfsException(corfs.CorfsException.Reason.INVALID_ARGUMENT,
                    Main.oneLine(file.toString()) + (owner.equals(file) ? " is the data file of a corfs leaf"
                    : " is one of the leaf " + Main.oneLine(owner.toString()) + "'s own files (its metadata or a"
                    + " file corfs keeps beside it)") + ": not replaced; give another name");
        }
        p.write(file);
        return false;
    }
}
