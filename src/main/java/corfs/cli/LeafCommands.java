package corfs.cli;

import corfs.image.Extent;
import corfs.image.LeafImages;
import corfs.image.LeafInfo;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The offline commands on a leaf: create, info, map, check. */
final class LeafCommands {
    private LeafCommands() {
    }

    @Command(name = "create", description = {
            "Create LEAF (sparse raw data file) and LEAF.corfs over a backing image.",
            "SPEC: a PATH or file:///PATH; nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds://...,"
                    + " nbds+unix://... (NBD, with TLS); http://... or https://...; s3://BUCKET/KEY (credentials from"
                    + " the AWS chain: environment, ~/.aws/credentials, instance metadata).",
            "--backing-opt keys: timeout=SECONDS, connections=N; NBD: tls-ca=FILE, tls-cert=FILE, tls-key=FILE,"
                    + " tls-hostname=NAME; HTTP(S): ca=FILE, header-file=FILE; S3: endpoint=URL, region=NAME,"
                    + " path-style=yes|no; qcow2: l2-cache=SIZE."})
    static final class Create implements Callable<Integer> {
        @Option(names = "--backing", required = true, paramLabel = "SPEC",
                description = "the backing image: a path or a URL (see above)")
        String backing;

        @Option(names = "--backing-format", paramLabel = "FORMAT",
                description = "raw or qcow2 (default: detected from the image's header, and recorded)")
        String backingFormat;

        @Option(names = "--backing-opt", paramLabel = "KEY=VALUE", description = "a backing option (repeatable),"
                + " stored in the leaf's metadata")
        List<String> backingOpts = new java.util.ArrayList<>();

        @Option(names = "--cluster-size", paramLabel = "SIZE", converter = Sizes.Converter.class,
                description = "power of two from 4K to 2M (default: ${DEFAULT-VALUE})", defaultValue = "64K")
        long clusterSize;

        @Option(names = "--force", description = "replace an existing LEAF and its metadata")
        boolean force;

        @Option(names = "--prefetch", paramLabel = "FILE", description = "an access profile of this backing"
                + " (corfs profile export) that every mount prefetches until it completes")
        Path prefetch;

        @Parameters(paramLabel = "LEAF")
        Path leaf;

        @Override
        public Integer call() throws Exception {
            if (clusterSize > Integer.MAX_VALUE || !corfs.image.MetadataFormat.validClusterSize((int) clusterSize)) {
                throw new Main.ExitException(Main.EXIT_USAGE, "--cluster-size " + Sizes.human(clusterSize)
                        + " is not a power of two from 4K to 2M");
            }
            if (backingFormat != null && !backingFormat.equals("raw") && !backingFormat.equals("qcow2")) {
                throw new Main.ExitException(Main.EXIT_USAGE, "--backing-format must be raw or qcow2, not '"
                        + backingFormat + "'");
            }
            java.util.Map<String, String> options = BackingOpts.parse(backingOpts);
            backing = corfs.backing.BackingSpec.fromUserInput(backing);
            BackingOpts.validate(backing, backingFormat, options);
            String format = LeafImages.create(leaf, backing, backingFormat, options, (int) clusterSize, force, prefetch);
            LeafInfo info = LeafImages.info(leaf);
            System.out.println(Main.oneLine(String.format("created %s (%s, cluster %s) over %s (%s%s)", leaf,
                    Sizes.human(info.virtualSize()), Sizes.human(info.clusterSize()), info.backingSpec(), format,
                    backingFormat == null ? ", detected" : "")));
            if (prefetch != null) {
                System.out.println(Main.oneLine("every mount prefetches " + prefetch + " until it completes"));
            }
            return 0;
        }
    }

    @Command(name = "set-backing", description = {
            "Record a new location of LEAF's backing (same content: a migration source that changed address, an"
                    + " image moved from NFS to HTTP). The leaf must not be mounted; the format stays.",
            "Accepted when the new backing has the leaf's size and the recorded identity; --force accepts another"
                    + " identity, unless the leaf's local clean clusters (sampled) show the content differs."})
    static final class SetBacking implements Callable<Integer> {
        @Option(names = "--force", description = "record it even when it cannot be shown to be the same disk")
        boolean force;

        @Option(names = "--backing-opt", paramLabel = "KEY=VALUE", description = "a backing option (repeatable);"
                + " replaces the recorded options")
        List<String> backingOpts = new java.util.ArrayList<>();

        @Parameters(index = "0", paramLabel = "LEAF")
        Path leaf;

        @Parameters(index = "1", paramLabel = "SPEC")
        String spec;

        @Override
        public Integer call() throws Exception {
            java.util.Map<String, String> options = BackingOpts.parse(backingOpts);
            spec = corfs.backing.BackingSpec.fromUserInput(spec);
            String format = LeafImages.info(leaf).backingFormat();
            BackingOpts.validate(spec, format, options);
            LeafImages.SetBackingResult r = LeafImages.setBacking(leaf, spec, options, force);
            System.out.println(Main.oneLine(leaf + ": backing is now " + r.spec() + " (" + r.verdict() + ")"));
            return 0;
        }
    }

    /** {@code --backing-opt KEY=VALUE} parsing and checking: every mistake is a usage error (exit 64). */
    static final class BackingOpts {
        private BackingOpts() {
        }

        static java.util.Map<String, String> parse(List<String> opts) {
            java.util.Map<String, String> out = new java.util.TreeMap<>();
            for (String o : opts) {
                int eq = o.indexOf('=');
                if (eq <= 0) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "--backing-opt '" + Main.oneLine(o)
                            + "' is not KEY=VALUE");
                }
                String key = o.substring(0, eq);
                if (out.put(key, o.substring(eq + 1)) != null) {
                    throw new Main.ExitException(Main.EXIT_USAGE, "--backing-opt " + Main.oneLine(key)
                            + " is given twice");
                }
            }
            return out;
        }

        /** SPEC, format and options checked without I/O; a mistake is a usage error. */
        static void validate(String spec, String format, java.util.Map<String, String> options) {
            try {
                new corfs.backing.Backings(corfs.io.FileOps.system()).validate(spec, format, options);
            } catch (corfs.CorfsException e) {
                if (e.reason() == corfs.CorfsException.Reason.INVALID_ARGUMENT) {
                    throw new Main.ExitException(Main.EXIT_USAGE, e.getMessage());
                }
                throw new Main.ExitException(Main.EXIT_FAILURE, e.getMessage());
            } catch (java.io.IOException e) {
                throw new Main.ExitException(Main.EXIT_FAILURE, e.getMessage());
            }
        }
    }

    @Command(name = "info", description = "Show a leaf's sizes, backing, local and dirty bytes, and job.")
    static final class Info implements Callable<Integer> {
        @Option(names = "--json", description = "print JSON")
        boolean json;

        @Parameters(paramLabel = "LEAF")
        Path leaf;

        @Override
        public Integer call() throws Exception {
            LeafInfo i = LeafImages.info(leaf);
            List<corfs.backing.qcow2.LayerInfo> chain = List.of();
            String chainError = null;
            if (corfs.backing.Backings.QCOW2.equals(i.backingFormat())) {
                try {
                    chain = LeafImages.chain(leaf);
                } catch (java.io.IOException e) {
                    chainError = e.getMessage();
                }
            }
            if (json) {
                Json options = new Json().open();
                i.backingOptions().forEach(options::put);
                Json backing = new Json().open().put("spec", i.backingSpec()).put("format", i.backingFormat())
                        .raw("options", options.close().toString())
                        .put("identity", i.backingIdentity().describe()).close();
                Json j = new Json().open()
                        .put("leaf", i.leaf()).put("metadata", i.metadata()).put("version", i.version())
                        .put("virtual_size", i.virtualSize()).put("cluster_size", i.clusterSize())
                        .put("clusters", i.clusters()).put("local_bytes", i.localBytes())
                        .put("dirty_bytes", i.dirtyBytes()).put("allocated_bytes", i.allocatedBytes())
                        .put("standalone", i.standalone()).raw("backing", backing.toString())
                        .put("job", i.job().word()).put("job_state", i.jobState().word())
                        .put("job_speed", i.jobSpeed())
                        .put("job_on_error", i.jobOnError() == null ? null : i.jobOnError().word())
                        .put("job_error", i.jobError()).put("unclean_stop", i.uncleanStop());
                if (!chain.isEmpty() || chainError != null) {
                    StringBuilder layers = new StringBuilder("[");
                    for (corfs.backing.qcow2.LayerInfo l : chain) {
                        layers.append(layers.length() == 1 ? "" : ",").append(new Json().open()
                                .put("location", l.location()).put("format", l.format()).put("version", l.version())
                                .put("cluster_size", l.clusterSize()).put("compression", l.compression())
                                .put("extended_l2", l.extendedL2()).put("virtual_size", l.virtualSize())
                                .put("backing_name", l.backingName()).put("backing_format", l.backingFormat())
                                .close());
                    }
                    j.raw("chain", layers.append(']').toString()).put("chain_error", chainError);
                }
                System.out.println(j.close());
                return 0;
            }
            System.out.printf("leaf:           %s%n", Main.oneLine(i.leaf()));
            System.out.printf("metadata:       %s (version %d)%n", Main.oneLine(i.metadata()), i.version());
            System.out.printf("virtual size:   %s (%d bytes)%n", Sizes.human(i.virtualSize()), i.virtualSize());
            System.out.printf("cluster size:   %s (%d clusters)%n", Sizes.human(i.clusterSize()), i.clusters());
            System.out.printf("local:          %s (%s)%n", Sizes.human(i.localBytes()),
                    Sizes.percent(i.localBytes(), i.virtualSize()));
            System.out.printf("dirty:          %s (%s)%s%n", Sizes.human(i.dirtyBytes()),
                    Sizes.percent(i.dirtyBytes(), i.virtualSize()), i.uncleanStop()
                            ? ": every local cluster, as the last mount was not closed cleanly (the next commit"
                            + " copies all local data once)" : "");
            System.out.printf("disk usage:     %s%n", Sizes.human(i.allocatedBytes()));
            System.out.printf("standalone:     %s%n", i.standalone() ? "yes (the backing is no longer needed)" : "no");
            System.out.printf("backing:        %s%n", Main.oneLine(i.backingSpec()));
            System.out.printf("backing format: %s%n", i.backingFormat());
            if (!i.backingOptions().isEmpty()) {
                StringBuilder o = new StringBuilder();
                i.backingOptions().forEach((k, v) -> o.append(o.length() == 0 ? "" : " ").append(k).append('=')
                        .append(v));
                System.out.printf("backing opts:   %s%n", Main.oneLine(o.toString()));
            }
            System.out.printf("backing id:     %s%n", i.backingIdentity().describe());
            for (int k = 0; k < chain.size(); k++) {
                corfs.backing.qcow2.LayerInfo l = chain.get(k);
                System.out.printf("layer %d:        %s (%s%s, cluster %s%s%s)%n", k, Main.oneLine(l.location()), l.format(),
                        l.version() > 0 ? " v" + l.version() : "", Sizes.human(l.clusterSize()),
                        l.compression() == null ? "" : ", " + l.compression(), l.extendedL2() ? ", extended L2" : "");
            }
            if (chainError != null) {
                System.out.printf("chain:          unavailable (%s)%n", Main.oneLine(chainError));
            }
            System.out.printf("job:            %s%n", Main.oneLine(describeJob(i)));
            return 0;
        }

        private static String describeJob(LeafInfo i) {
            if (i.job() == corfs.vocabulary.JobKind.NONE) {
                return "none";
            }
            StringBuilder b = new StringBuilder(i.job().word()).append(' ').append(i.jobState().word());
            b.append(", speed ").append(i.jobSpeed() == 0 ? "unlimited" : Sizes.human(i.jobSpeed()) + "/s");
            if (i.jobOnError() != null) {
                b.append(", on_error ").append(i.jobOnError().word());
            }
            if (i.jobError() != null) {
                b.append(", error: ").append(i.jobError());
            }
            return b.toString();
        }
    }

    @Command(name = "map", description = "List a leaf's extents: backing (not local), local, dirty.")
    static final class Map implements Callable<Integer> {
        @Option(names = "--json", description = "print JSON, like qemu-img map --output=json")
        boolean json;

        @Parameters(paramLabel = "LEAF")
        Path leaf;

        @Override
        public Integer call() throws Exception {
            List<Extent> extents = LeafImages.map(leaf);
            if (json) {
                StringBuilder b = new StringBuilder("[");
                for (int k = 0; k < extents.size(); k++) {
                    Extent e = extents.get(k);
                    b.append(k == 0 ? "\n" : ",\n").append(new Json().open().put("start", e.offset())
                            .put("length", e.length()).put("state", e.state()).put("local", e.local())
                            .put("dirty", e.dirty()).put("zero", e.zero()).close());
                }
                System.out.println(b.append(extents.isEmpty() ? "]" : "\n]"));
                return 0;
            }
            System.out.printf("%-20s %-20s %s%n", "Offset", "Length", "State");
            for (Extent e : extents) {
                System.out.printf("0x%-18x 0x%-18x %s%n", e.offset(), e.length(), e.state());
            }
            return 0;
        }
    }

    @Command(name = "check", description = "Verify a leaf's metadata and data file. Exit 0 when clean, 2 when not.")
    static final class Check implements Callable<Integer> {
        static final int EXIT_PROBLEMS = 2;

        @Parameters(paramLabel = "LEAF")
        Path leaf;

        @picocli.CommandLine.Option(names = "--repair", description = "Rewrite a metadata slot damaged by a torn"
                + " write from its intact twin (only that; refuses anything else). The leaf must not be mounted.")
        boolean repair;

        @Override
        public Integer call() throws Exception {
            if (repair) {
                List<String> actions = corfs.image.LeafImage.repair(leaf);
                for (String a : actions) {
                    System.out.println(Main.oneLine(leaf + ": repaired " + a));
                }
                if (actions.isEmpty()) {
                    System.out.println(Main.oneLine(leaf + ": nothing to repair"));
                }
            }
            List<String> problems;
            try {
                problems = LeafImages.check(leaf);
            } catch (corfs.CorfsException e) {
                problems = List.of(e.getMessage());
            }
            if (problems.isEmpty()) {
                System.out.println(Main.oneLine(leaf + ": no problems found"));
                return 0;
            }
            System.out.println(Main.oneLine(leaf + ": " + problems.size() + " problem(s) found:"));
            for (String p : problems) {
                System.out.println("  " + Main.oneLine(p));
            }
            return EXIT_PROBLEMS;
        }
    }
}
