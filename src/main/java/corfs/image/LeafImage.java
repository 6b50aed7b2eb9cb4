package corfs.image;

import corfs.CorfsException;
import corfs.CorfsException.Reason;
import corfs.backing.BackingIdentity;
import corfs.backing.FileBacking;
import corfs.io.FileOps;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.UnaryOperator;

/**
 * A leaf on disk: the raw data file {@code LEAF} and its metadata {@code LEAF.corfs} (layout in
 * {@link MetadataFormat}), with the cluster bitmaps held in memory.
 *
 * <h2>Crash ordering (enforced here, in {@link #flush()})</h2>
 * A local bit is set in memory only after the cluster's data has been written to the data file (the
 * engine's rule). {@link #flush()} then: (1) snapshots the changed bitmap pages, (2) makes the data file
 * durable (fdatasync, or fsync after a hole was punched), (3) writes the snapshots, each to the page's
 * older slot, (4) makes the metadata durable. Every local bit in a snapshot was set before (2), so on
 * disk no cluster is ever marked local before its data is durable. A torn page write leaves the page's
 * other slot intact; open then refuses (a bad checksum may as well be corruption) and names the slot, and
 * {@link #repair} clears it so the intact copy is used: nothing is repaired silently. Local bits are only
 * ever set; a dirty bit is cleared only after the backing holding its data was made durable (the commit
 * job's rule).
 *
 * <h2>The dirty bit never lags behind its data, or the in-use flag says it may</h2>
 * "Local and clean" on disk promises that the data file holds what the backing holds. A write that lands
 * in the data file (a killed process loses nothing written; a power cut may keep any unsynced write)
 * while the metadata on disk still says local and clean would break that promise for ever: the
 * cluster reads the new data but no commit copies it. The engine calls {@link #markDirty} before the
 * data lands, and
 * <ul>
 * <li>for a cluster that is local (its local bit may be durable), calls {@link #markInUse()} before
 * writing: the header's in-use flag ({@link LeafHeader#inUse}) is made durable once per writable open,
 * by the first such write; later writes wait for nothing. The flag stands for every dirty bit not yet
 * flushed: it is cleared only by a clean {@link #close()}, after the final flush made every bit durable,
 * so the caller must have stopped every writer before (a write landing after that flush would be in no
 * stored bit); a caller that could not calls {@link #keepInUse()} and the flag stays.
 * An open that holds the lock (so no process has the leaf) and finds the flag set knows the last writer
 * stopped uncleanly, and counts every local cluster as dirty ({@link #uncleanStop()}): a commit then
 * copies all local data once, nothing is skipped. This is QEMU's rule for persistent dirty bitmaps
 * ("in use" bitmaps are inconsistent after a crash). The cost: no flush on the write path; after a crash
 * (or power cut) the next commit copies every local cluster.</li>
 * <li>for a cluster that is not local, needs nothing: its dirty bit is raised before its local bit
 * (before a copy-on-read fill of a partly written cluster, too), and a snapshot copies local bits before
 * dirty bits and stores dirty only with local ({@link MetadataFormat#encodePage}), so any snapshot that
 * says local also says dirty, and one taken in between says neither.</li>
 * </ul>
 * A read-only open never sets the flag; an inspecting open of a leaf that no process holds (probed with
 * a shared lock) and a read-only one count local clusters as dirty in memory, as a writable one does,
 * so {@code info} and {@code check} report what a commit would copy.
 *
 * <h2>Standalone</h2>
 * When the last cluster's local bit is durable, {@link #flush()} records the standalone flag (after the
 * bits, in the header), whichever path made the cluster local. A crash between the two leaves every bit
 * local and the flag unset: the next writable open sets it, {@code corfs check} reports it and
 * {@code check --repair} sets it.
 *
 * <h2>Threads</h2>
 * Bitmaps are lock-free ({@link ClusterBitmap}); {@link #markLocal}/{@link #markDirty}/{@link #clearDirty}
 * may be called from any thread. {@link #flush()} and {@link #updateHeader} serialise on their own locks
 * (flush lock before header lock when both are taken). Data I/O goes through {@link #data()} with
 * positional calls only; it must never be used from a thread that can be interrupted.
 *
 * <h2>Metadata versions</h2>
 * An older leaf (metadata version 1, or one whose upgrade a crash cut between the two header slots) is
 * read as it is and written only when something must be written anyway: the first header change, or the
 * first flush that writes bitmap pages, first rewrites the header in {@link MetadataFormat#VERSION} (both
 * slots, the usual order; a crash in between leaves one slot of each version, both readable). A
 * read-only or inspecting open, and a writable open that writes nothing (a mount refused after the open,
 * say), leave it as it was.
 *
 * <h2>Ownership</h2>
 * A writable LeafImage holds an exclusive lock on the metadata file, so a second corfs process cannot
 * open the same leaf.
 */
public final class LeafImage implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(LeafImage.class);

    private final Path dataPath;
    private final Path metadataPath;
    private final FileChannel data;
    private final FileOps.SparseFile sparseData;
    private final FileChannel metadata;
    private final FileLock lock;
    private final boolean readOnly;
    private final ClusterBitmap local;
    private final ClusterBitmap dirty;
    private final ClusterBitmap changedPages;
    private final long[] pageSequence;
    private final byte[] pageNewestSlot;
    private final Object flushLock = new Object();
    private final Object headerLock = new Object();
    private final AtomicBoolean holePunched = new AtomicBoolean();
    /** Flushes that have begun their snapshot; a flush's number is this counter after it began. */
    private final java.util.concurrent.atomic.AtomicLong snapshotsBegun = new java.util.concurrent.atomic.AtomicLong();
    /** Number of the last flush that completed (its data and bits are durable). Written under flushLock. */
    private volatile long dataDurable;
    /** Pages whose newest durable copy has every local bit set. Under flushLock after open. */
    private final ClusterBitmap durablyFullPages;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Serialises {@link #markInUse()}'s header write, so concurrent first writers write it once. */
    private final Object inUseLock = new Object();
    /** Writes may still land after close's final flush: close leaves the in-use flag set. */
    private volatile boolean keepInUse;
    /** The in-use flag was found set where no process held the leaf: see {@link #uncleanStop()}. */
    private boolean uncleanStop;
    private volatile LeafHeader header;
    private long headerGeneration;
    /** The metadata version on disk: {@link MetadataFormat#VERSION} once the header was written. */
    private volatile int metadataVersion;
    /** A header slot is of an older version: the first metadata write rewrites the header first. */
    private volatile boolean upgradePending;

    private LeafImage(Path dataPath, Path metadataPath, FileChannel data, FileOps.SparseFile sparseData,
                      FileChannel metadata, FileLock lock, boolean readOnly, LeafHeader header,
                      long headerGeneration, int metadataVersion, int oldestVersion) {
        this.dataPath = dataPath;
        this.metadataPath = metadataPath;
        this.data = data;
        this.sparseData = sparseData;
        this.metadata = metadata;
        this.lock = lock;
        this.readOnly = readOnly;
        this.header = header;
        this.headerGeneration = headerGeneration;
        this.metadataVersion = metadataVersion;
        this.upgradePending = !readOnly && oldestVersion < MetadataFormat.VERSION;
        long clusters = header.clusters();
        this.local = new ClusterBitmap(clusters);
        this.dirty = new ClusterBitmap(clusters);
        long pages = MetadataFormat.pageCount(clusters);
        this.changedPages = new ClusterBitmap(pages);
        this.durablyFullPages = new ClusterBitmap(pages);
        this.pageSequence = new long[Math.toIntExact(pages)];
        this.pageNewestSlot = new byte[Math.toIntExact(pages)];
    }

    /** The metadata file of a leaf: {@code LEAF.corfs} beside it. */
    public static Path metadataPathOf(Path leaf) {
        return leaf.resolveSibling(leaf.getFileName() + ".corfs");
    }

    /**
     * The leaf that {@code path} is one of the own files of: its data file, its metadata, or a file corfs
     * keeps beside it ({@code LEAF.corfs-profile}, {@code LEAF.corfs-prefetch}, the log...), judged by the
     * name in its directory (so by any spelling of the path) and the leaf's metadata being there; null when
     * it is no leaf's. A command that writes a file a user names (profile export) refuses these: a rename
     * over the data file or the metadata destroys the leaf, mounted or not.
     */
    public static Path leafOwning(Path path) {
        Path name = path.getFileName();
        if (name == null) {
            return null;
        }
        if (Files.exists(metadataPathOf(path), LinkOption.NOFOLLOW_LINKS)) {
            return path;
        }
        String n = name.toString();
        for (String suffix : DERIVED_SUFFIXES) {
            if (n.length() > suffix.length() && n.endsWith(suffix)) {
                Path leaf = path.resolveSibling(n.substring(0, n.length() - suffix.length()));
                if (Files.exists(metadataPathOf(leaf), LinkOption.NOFOLLOW_LINKS)) {
                    return leaf;
                }
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- create

    /**
     * What a new leaf records of its backing: the SPEC (a local one as an absolute path), FORMAT,
     * options, and the identity taken when it was opened; the identity's size is the leaf's virtual size.
     *
     * @param localFile the backing's local file when the SPEC names one (checked against the leaf's
     *                  names), else null
     */
    public record NewBacking(String spec, String format, java.util.Map<String, String> options,
                             BackingIdentity identity, Path localFile) {
    }

    /**
     * Creates {@code leaf} over the raw local file {@code backing}: {@link #checkLocalBacking}, then
     * {@link #create(Path, NewBacking, int, boolean)}.
     */
    public static void create(Path leaf, Path backing, int clusterSize, boolean force) throws IOException {
        Path backingAbs = checkLocalBacking(backing);
        create(leaf, new NewBacking(backingAbs.toString(), corfs.backing.BackingSpec.RAW, java.util.Map.of(),
                FileBacking.identityOf(backingAbs), backingAbs), clusterSize, force);
    }

    /**
     * Checks a local backing file before a leaf is made over it: it exists, is a regular readable file,
     * and is not a corfs leaf that is not yet standalone. Returns its absolute, normalized path.
     */
    public static Path checkLocalBacking(Path backing) throws IOException {
        Path backingAbs = backing.toAbsolutePath().normalize();
        if (!Files.exists(backingAbs)) {
            throw new CorfsException(Reason.NOT_FOUND, "backing " + backing + " does not exist");
        }
        if (!Files.isRegularFile(backingAbs)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + backing + " is not a regular file");
        }
        if (!Files.isReadable(backingAbs)) {
            throw new CorfsException(Reason.NOT_PERMITTED, "backing " + backing + " is not readable");
        }
        try (FileChannel probe = FileChannel.open(backingAbs, StandardOpenOption.READ)) {
            probe.read(ByteBuffer.allocate(1), 0);
        } catch (IOException e) {
            throw new CorfsException(Reason.NOT_PERMITTED, "backing " + backing + " cannot be read: " + e.getMessage(), e);
        }
        refuseIncompleteLeaf(backingAbs);
        if (backingAbs.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MetadataFormat.MAX_PATH_BYTES) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing path is too long");
        }
        return backingAbs;
    }

    /**
     * Creates {@code leaf} (a sparse file of the backing's size) and its metadata, both mode 0600. The
     * metadata is written to a temporary file, made durable and renamed into place, so a crash leaves
     * either no leaf or a complete one.
     */
    public static void create(Path leaf, NewBacking backing, int clusterSize, boolean force) throws IOException {
        if (!MetadataFormat.validClusterSize(clusterSize)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "cluster size " + clusterSize
                    + " is not a power of two from 4K to 2M");
        }
        String shownSpec = corfs.backing.BackingSpec.redact(backing.spec());
        if (backing.spec().getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MetadataFormat.MAX_PATH_BYTES) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing SPEC is too long (at most "
                    + MetadataFormat.MAX_PATH_BYTES + " bytes)");
        }
        Path leafAbs = leaf.toAbsolutePath().normalize();
        Path backingAbs = backing.localFile();
        if (leafAbs.equals(backingAbs)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "the leaf and the backing are the same file");
        }
        Path meta = metadataPathOf(leafAbs);
        String name = leafAbs.getFileName().toString();
        if (name.equals("control")) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "a leaf may not be named 'control' (the control file's name)");
        }
        checkDerivedNames(name);
        if (!Files.isDirectory(leafAbs.getParent())) {
            throw new CorfsException(Reason.NOT_FOUND, "directory " + leafAbs.getParent() + " does not exist");
        }
        refuseBackingAsLeaf(leafAbs, backingAbs);
        if (!force && (Files.exists(leafAbs, LinkOption.NOFOLLOW_LINKS) || Files.exists(meta, LinkOption.NOFOLLOW_LINKS))) {
            throw new CorfsException(Reason.BUSY, (Files.exists(leafAbs, LinkOption.NOFOLLOW_LINKS) ? leafAbs : meta)
                    + " already exists (use --force to replace it)");
        }
        BackingIdentity identity = backing.identity();
        if (identity.size() == 0) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + shownSpec + " is empty");
        }
        if (force) {
            refuseIfLocked(meta);
            Files.deleteIfExists(leafAbs);
            Files.deleteIfExists(meta);
        }
        // A new leaf records its own access profile: one left by a leaf of this name is not about it.
        Files.deleteIfExists(ProfileLog.pathOf(leafAbs));
        var mode = PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
        Files.createFile(leafAbs, mode);
        Path tmp = meta.resolveSibling(meta.getFileName() + ".tmp");
        try {
            writeNewLeaf(leafAbs, meta, tmp, name, backing, clusterSize, mode);
        } catch (IOException | RuntimeException | Error e) {
            // Leave nothing behind: a half-made leaf would make a retry say "already exists".
            for (Path made : List.of(leafAbs, tmp)) {
                try {
                    if (Files.isRegularFile(made, LinkOption.NOFOLLOW_LINKS)) {
                        Files.deleteIfExists(made);
                    }
                } catch (IOException cleanup) {
                    e.addSuppressed(cleanup);
                }
            }
            throw e;
        }
        LOG.info("created leaf {} over {} ({}, {} bytes, {} byte clusters)", leafAbs, shownSpec, backing.format(),
                identity.size(), clusterSize);
    }

    /**
     * Names made beside a leaf: the metadata, its temporary file, the unreadable-extent ledger, the recorded
     * access profile ({@link ProfileLog}), the pending prefetch, the log.
     */
    static final List<String> DERIVED_SUFFIXES = List.of(".corfs", ".corfs.tmp", ".corfs-unreadable", ".corfs-profile",
            PrefetchRecord.SUFFIX, ".log");

    /** The longest file name in bytes this checks for (NAME_MAX of Linux filesystems). */
    private static final int NAME_MAX = 255;

    /** Refuses a leaf name when it, or any name derived from it, is longer than NAME_MAX bytes. */
    private static void checkDerivedNames(String name) throws CorfsException {
        int bytes = name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        int longest = DERIVED_SUFFIXES.stream().mapToInt(String::length).max().orElse(0);
        if (bytes > Math.min(MetadataFormat.MAX_NAME_BYTES, NAME_MAX - longest)) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "leaf file name is too long: " + bytes
                    + " bytes, at most " + Math.min(MetadataFormat.MAX_NAME_BYTES, NAME_MAX - longest)
                    + " (so that LEAF.corfs-unreadable fits in " + NAME_MAX + " bytes)");
        }
    }

    /**
     * Refuses a leaf (or a name made beside it) that is the backing itself: compared by device and inode,
     * so a symlinked directory, a symlink or a hard link to the backing is recognised. Also refuses a leaf
     * inside a corfs mount (the files there are leaves of a running corfs, maybe this backing's).
     */
    private static void refuseBackingAsLeaf(Path leafAbs, Path backingAbs) throws IOException {
        List<Path> candidates = new ArrayList<>();
        candidates.add(leafAbs);
        for (String suffix : DERIVED_SUFFIXES) {
            candidates.add(leafAbs.resolveSibling(leafAbs.getFileName() + suffix));
        }
        for (Path p : candidates) {
            if (backingAbs != null && Files.exists(p) && Files.isSameFile(p, backingAbs)) {
                throw new CorfsException(Reason.INVALID_ARGUMENT, p + " is the backing " + backingAbs
                        + " (the same file): refusing to replace it");
            }
        }
        String type;
        try {
            type = Files.getFileStore(leafAbs.getParent()).type();
        } catch (IOException e) {
            type = "";
        }
        if (type.equals("fuse.corfs")) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, leafAbs.getParent()
                    + " is a corfs mount: a leaf cannot be created inside one");
        }
    }

    private static void writeNewLeaf(Path leafAbs, Path meta, Path tmp, String name, NewBacking backing,
            int clusterSize, java.nio.file.attribute.FileAttribute<?> mode) throws IOException {
        BackingIdentity identity = backing.identity();
        LeafHeader header = new LeafHeader(UUID.randomUUID(), identity.size(), clusterSize, name,
                inodeOf(leafAbs), backing.spec(), backing.format(), backing.options(), identity, false,
                LeafHeader.JobRecord.NONE);
        try (FileChannel ch = FileChannel.open(leafAbs, StandardOpenOption.WRITE)) {
            // A sparse file of the virtual size: one byte at the end would allocate a block, so extend
            // with ftruncate through RandomAccessFile semantics instead.
            try (var raf = new java.io.RandomAccessFile(leafAbs.toFile(), "rw")) {
                raf.setLength(identity.size());
            }
            ch.force(true);
        }
        Files.deleteIfExists(tmp);
        Files.createFile(tmp, mode);
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            writeFully(ch, MetadataFormat.encodeHeader(header, 1), 0);
            writeFully(ch, MetadataFormat.encodeHeader(header, 1), MetadataFormat.SLOT_SIZE);
            // Every bitmap slot is written (as zeros: "never written") so its blocks are allocated now:
            // a full leaf filesystem must not stop the bitmaps from being flushed later.
            ByteBuffer zeros = ByteBuffer.allocate(1 << 20);
            long length = MetadataFormat.fileLength(header.clusters());
            for (long pos = MetadataFormat.PAGES_OFFSET; pos < length; pos += zeros.capacity()) {
                zeros.clear().limit((int) Math.min(zeros.capacity(), length - pos));
                writeFully(ch, zeros, pos);
            }
            ch.force(true);
        }
        Files.move(tmp, meta, StandardCopyOption.ATOMIC_MOVE);
        corfs.io.AtomicReplace.syncDirectory(meta.getParent());
    }

    /**
     * A corfs leaf's data file is a complete disk only once it is standalone: before that, clusters it has
     * not fetched read as zeros there, and a commit into it would be overwritten by its own copy-on-read.
     * So such a file is refused as a backing (a standalone one is a plain raw image and fine).
     */
    private static void refuseIncompleteLeaf(Path backingAbs) throws IOException {
        Path meta = metadataPathOf(backingAbs);
        if (!Files.exists(meta, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        boolean standalone;
        try {
            standalone = LeafImages.info(backingAbs).standalone();
        } catch (IOException | RuntimeException e) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + backingAbs + " has corfs metadata beside"
                    + " it that cannot be read (" + e.getMessage() + "): use the image it was made from", e);
        }
        if (!standalone) {
            throw new CorfsException(Reason.INVALID_ARGUMENT, "backing " + backingAbs + " is a corfs leaf that is not"
                    + " standalone: clusters it has not fetched read as zeros in it. Use its own backing, or stream it"
                    + " to standalone first");
        }
    }

    private static void refuseIfLocked(Path meta) throws IOException {
        if (!Files.exists(meta)) {
            return;
        }
        try (FileChannel ch = FileChannel.open(meta, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            FileLock l = ch.tryLock();
            if (l == null) {
                throw new CorfsException(Reason.BUSY, meta + " is in use by a running corfs (mounted)");
            }
            l.release();
        } catch (OverlappingFileLockException e) {
            throw new CorfsException(Reason.BUSY, meta + " is in use by this process");
        }
    }

    // ---------------------------------------------------------------- open

    /**
     * Opens a leaf, verifying every part of its metadata. Refuses, changing nothing, when the metadata
     * is corrupt, truncated, of an unknown version or of another leaf, when the data file is missing or
     * of the wrong size, or (unless {@code inspectOnly}) when another process holds the leaf.
     *
     * @param readOnly    open the files read-only (no writes, no flushes)
     * @param inspectOnly do not take the lock (info, map, check of a possibly mounted leaf)
     */
    public static LeafImage open(Path leaf, FileOps fileOps, boolean readOnly, boolean inspectOnly) throws IOException {
        return open(leaf, fileOps, readOnly, inspectOnly, false);
    }

    /**
     * As {@link #open(Path, FileOps, boolean, boolean)}; with {@code acceptReplacedData} a data file whose
     * inode differs from the recorded one (a copied leaf) is accepted, and a writable open records the
     * new inode.
     */
    public static LeafImage open(Path leaf, FileOps fileOps, boolean readOnly, boolean inspectOnly,
                                 boolean acceptReplacedData) throws IOException {
        return open(leaf, fileOps, readOnly, inspectOnly, acceptReplacedData, false);
    }

    /**
     * Opens a leaf read-only for {@link LeafImages#check}, accepting a data file of the wrong size, so
     * that check can say which local clusters lie beyond its end.
     */
    /**
     * The metadata path of {@code leaf}, which must be a corfs leaf: NOT_FOUND naming both when its
     * metadata is missing. What every command taking a LEAF says for a path that is not one.
     */
    public static Path requireLeaf(Path leaf) throws CorfsException {
        Path meta = metadataPathOf(leaf.toAbsolutePath().normalize());
        if (!Files.exists(meta)) {
            throw new CorfsException(Reason.NOT_FOUND, leaf + " is not a corfs leaf: " + meta + " is missing");
        }
        return meta;
    }

    static LeafImage openForCheck(Path leaf) throws IOException {
        return open(leaf, FileOps.system(), true, true, false, true);
    }

    private static LeafImage open(Path leaf, FileOps fileOps, boolean readOnly, boolean inspectOnly,
                                  boolean acceptReplacedData, boolean acceptDataSize) throws IOException {
        Path leafAbs = leaf.toAbsolutePath().normalize();
        Path meta = requireLeaf(leaf);
        boolean writable = !readOnly && !inspectOnly;
        FileChannel metadata = writable
                ? fileOps.openChannel(meta, StandardOpenOption.READ, StandardOpenOption.WRITE)
                : fileOps.openChannel(meta, StandardOpenOption.READ);
        FileLock lock = null;
        FileChannel data = null;
        FileOps.SparseFile sparse = null;
        try {
            if (!inspectOnly) {
                lock = lockFor(metadata, meta, !writable);
            }
            ParsedMetadata parsed = readHeader(metadata, meta);
            LeafHeader header = parsed.header;
            long expectedLength = MetadataFormat.fileLength(header.clusters());
            long actualLength = metadata.size();
            if (actualLength != expectedLength) {
                throw new CorruptMetadataException(meta + " is " + actualLength + " bytes, expected " + expectedLength
                        + " for " + header.clusters() + " clusters (truncated, or a bitmap of the wrong size)");
            }
            if (!leafAbs.getFileName().toString().equals(header.dataFileName())) {
                throw new CorruptMetadataException(meta + " belongs to leaf '" + header.dataFileName()
                        + "', not '" + leafAbs.getFileName() + "' (swapped or renamed metadata)");
            }
            if (!Files.isRegularFile(leafAbs)) {
                throw new CorfsException(Reason.NOT_FOUND, "leaf data file " + leafAbs + " is missing");
            }
            long inode = inodeOf(leafAbs);
            if (header.dataInode() != 0 && header.dataInode() != inode && !acceptReplacedData) {
                throw new CorruptMetadataException("leaf data file " + leafAbs + " is not the one " + meta
                        + " was made for (inode " + inode + ", recorded " + header.dataInode() + "): replaced or copied."
                        + " If it is a faithful copy of the leaf, mount with --force to adopt it");
            }
            data = writable
                    ? fileOps.openChannel(leafAbs, StandardOpenOption.READ, StandardOpenOption.WRITE)
                    : fileOps.openChannel(leafAbs, StandardOpenOption.READ);
            if (data.size() != header.virtualSize() && !(acceptDataSize && !writable)) {
                throw new CorruptMetadataException("leaf data file " + leafAbs + " is " + data.size()
                        + " bytes, expected " + header.virtualSize() + " (truncated or replaced)");
            }
            sparse = fileOps.open(leafAbs, writable);
            LeafImage image = new LeafImage(leafAbs, meta, data, sparse, metadata, lock, !writable, header,
                    parsed.generation, parsed.version, parsed.oldestVersion);
            image.loadPages();
            if (header.inUse() && (!inspectOnly || !heldByAnother(metadata))) {
                image.countLocalAsDirty();
            }
            if (writable && header.dataInode() != inode) {
                image.updateHeader(h -> h.withDataInode(inode)); // adopted with --force, or an old leaf
                LOG.info("{}: recorded the data file's inode {}", leafAbs.getFileName(), inode);
            }
            if (writable) {
                image.markStandaloneIfDurablyLocal(); // a crash after the last bit, before the flag
            }
            return image;
        } catch (IOException | RuntimeException e) {
            closeQuietly(sparse);
            closeQuietly(data);
            closeQuietly(metadata); // releases the lock
            throw e;
        }
    }

    /**
     * True if another process holds the leaf's lock (a live mount), probed with a shared lock released at
     * once; also true when this process holds it (the probe overlaps).
     */
    private static boolean heldByAnother(FileChannel metadata) throws IOException {
        try {
            FileLock probe = metadata.tryLock(0, Long.MAX_VALUE, true);
            if (probe == null) {
                return true;
            }
            probe.release();
            return false;
        } catch (OverlappingFileLockException e) {
            return true;
        }
    }

    /**
     * The in-use flag was found set and nobody holds the leaf: the last writer stopped uncleanly, so any
     * local cluster may hold data written after its dirty bit was last made durable. Every local cluster
     * counts as dirty, in memory; a writable open's next flush stores it (the flag stays set until a
     * clean close, so a second crash before that is handled the same way).
     */
    private void countLocalAsDirty() {
        uncleanStop = true;
        long before = dirty.count();
        for (long c = local.nextSet(0, local.size()); c < local.size(); c = local.nextSet(c + 1, local.size())) {
            if (dirty.set(c) && !readOnly) {
                changedPages.set(c / MetadataFormat.CLUSTERS_PER_PAGE); // stored by the next flush
            }
        }
        long added = dirty.count() - before;
        if (added > 0 && !readOnly) {
            LOG.warn("{}: was not closed cleanly (the in-use flag is set): every local cluster counts as changed"
                    + " ({} more clusters dirty, {} bytes local in all); the next commit copies them all",
                    dataPath.getFileName(), added, bytesIn(local));
        }
    }

    /**
     * True if this open found the in-use flag set with no process holding the leaf: the last writable
     * open did not close cleanly, and every local cluster was counted as dirty.
     */
    public boolean uncleanStop() {
        return uncleanStop;
    }

    private static long inodeOf(Path file) throws IOException {
        return ((Number) Files.getAttribute(file, "unix:ino")).longValue();
    }

    private static FileLock lockFor(FileChannel metadata, Path meta, boolean shared) throws IOException {
        try {
            FileLock l = metadata.tryLock(0, Long.MAX_VALUE, shared);
            if (l == null) {
                throw new CorfsException(Reason.BUSY, meta + " is in use by another corfs process (is the leaf already mounted?)");
            }
            return l;
        } catch (OverlappingFileLockException e) {
            throw new CorfsException(Reason.BUSY, meta + " is already open in this process (the same leaf named twice?)");
        }
    }

    /** The newest slot's header, generation and version, and the lower version of the two slots. */
    private record ParsedMetadata(LeafHeader header, long generation, int version, int oldestVersion) {
    }

    private static ParsedMetadata readHeader(FileChannel metadata, Path meta) throws IOException {
        if (metadata.size() < MetadataFormat.PAGES_OFFSET) {
            throw new CorruptMetadataException(meta + " is truncated (" + metadata.size() + " bytes)");
        }
        MetadataFormat.HeaderSlot[] slots = new MetadataFormat.HeaderSlot[2];
        for (int s = 0; s < 2; s++) {
            ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
            readFully(metadata, b, (long) s * MetadataFormat.SLOT_SIZE);
            slots[s] = MetadataFormat.decodeHeader(b.flip());
        }
        for (MetadataFormat.HeaderSlot slot : slots) {
            if (slot.unknownVersion()) {
                throw new CorruptMetadataException(meta + ": " + slot.problem());
            }
        }
        for (int s = 0; s < 2; s++) {
            if (!slots[s].valid()) {
                MetadataFormat.HeaderSlot other = slots[1 - s];
                throw new CorruptMetadataException(meta + ": header slot " + s + " is damaged (" + slots[s].problem()
                        + ")" + (other.valid() ? "; slot " + (1 - s) + " is intact (if a crash tore the write, 'corfs check --repair'"
                        + " rewrites it from there)" : "; so is slot " + (1 - s)
                        + " (" + other.problem() + ")"));
            }
        }
        if (!slots[0].header().uuid().equals(slots[1].header().uuid())) {
            throw new CorruptMetadataException(meta + ": the two header slots belong to different leaves");
        }
        MetadataFormat.HeaderSlot newest = slots[0].generation() >= slots[1].generation() ? slots[0] : slots[1];
        return new ParsedMetadata(newest.header(), newest.generation(), newest.version(),
                Math.min(slots[0].version(), slots[1].version()));
    }

    private void loadPages() throws IOException {
        UUID uuid = header.uuid();
        ByteBuffer[] slot = {ByteBuffer.allocate(MetadataFormat.SLOT_SIZE), ByteBuffer.allocate(MetadataFormat.SLOT_SIZE)};
        for (int page = 0; page < pageSequence.length; page++) {
            MetadataFormat.PageSlot[] decoded = new MetadataFormat.PageSlot[2];
            for (int s = 0; s < 2; s++) {
                slot[s].clear();
                readFully(metadata, slot[s], MetadataFormat.pageSlotOffset(page, s));
                slot[s].flip();
                decoded[s] = MetadataFormat.decodePageSlot(slot[s], page, uuid);
                if (!decoded[s].valid()) {
                    throw new CorruptMetadataException(metadataPath + ": bitmap page " + page + " slot " + s + ": "
                            + decoded[s].problem() + " (if a crash tore the write, 'corfs check --repair' falls back"
                            + " to the other slot)");
                }
            }
            int newest;
            if (decoded[0].empty() && decoded[1].empty()) {
                continue;
            } else if (decoded[0].empty()) {
                newest = 1;
            } else if (decoded[1].empty()) {
                newest = 0;
            } else {
                newest = decoded[0].sequence() >= decoded[1].sequence() ? 0 : 1;
            }
            try {
                MetadataFormat.loadPage(slot[newest], page, local, dirty);
            } catch (IllegalArgumentException e) {
                throw new CorruptMetadataException(metadataPath + ": bitmap page " + page + ": " + e.getMessage());
            }
            pageSequence[page] = decoded[newest].sequence();
            pageNewestSlot[page] = (byte) newest;
        }
        for (long c = dirty.nextSet(0, dirty.size()); c < dirty.size(); c = dirty.nextSet(c + 1, dirty.size())) {
            if (!local.get(c)) {
                throw new CorruptMetadataException(metadataPath + ": cluster " + c + " is dirty but not local");
            }
        }
        for (long p = 0; p < pageSequence.length; p++) {
            if (pageFull(p)) {
                durablyFullPages.set(p);
            }
        }
        if (header.standalone() && local.count() != local.size()) {
            throw new CorruptMetadataException(metadataPath + ": marked standalone but "
                    + (local.size() - local.count()) + " clusters are not local");
        }
    }

    // ---------------------------------------------------------------- repair

    /**
     * Repairs what a torn metadata write leaves behind, and nothing else: a header slot or a bitmap page
     * slot that fails its checksum while its twin is intact. The damaged header slot is rewritten from
     * the intact one; a damaged page slot is cleared, so the intact (newest durable) copy is used. A leaf
     * whose bitmaps are all local but whose header does not say standalone is marked standalone. Refuses
     * when both slots of anything are damaged, when the file has the wrong length, or when the leaf is in
     * use. Returns what it did (empty: nothing needed).
     */
    public static List<String> repair(Path leaf) throws IOException {
        Path leafAbs = leaf.toAbsolutePath().normalize();
        Path meta = requireLeaf(leaf);
        List<String> actions = new ArrayList<>();
        boolean standaloneBefore;
        try (FileChannel ch = FileChannel.open(meta, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            FileLock l = lockFor(ch, meta, false);
            try {
                if (ch.size() < MetadataFormat.PAGES_OFFSET) {
                    throw new CorruptMetadataException(meta + " is truncated: cannot repair");
                }
                ByteBuffer[] raw = new ByteBuffer[2];
                MetadataFormat.HeaderSlot[] slots = new MetadataFormat.HeaderSlot[2];
                for (int s = 0; s < 2; s++) {
                    raw[s] = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
                    readFully(ch, raw[s], (long) s * MetadataFormat.SLOT_SIZE);
                    slots[s] = MetadataFormat.decodeHeader(raw[s].flip());
                    if (slots[s].unknownVersion()) {
                        throw new CorruptMetadataException(meta + ": " + slots[s].problem() + ": cannot repair");
                    }
                }
                if (!slots[0].valid() && !slots[1].valid()) {
                    throw new CorruptMetadataException(meta + ": both header slots are damaged: cannot repair");
                }
                int good = slots[0].valid() ? 0 : 1;
                LeafHeader header = slots[good].header();
                long expected = MetadataFormat.fileLength(header.clusters());
                if (ch.size() != expected) {
                    throw new CorruptMetadataException(meta + " is " + ch.size() + " bytes, expected " + expected
                            + ": not a torn write, cannot repair");
                }
                if (!slots[1 - good].valid()) {
                    writeFully(ch, raw[good].duplicate().clear(), (long) (1 - good) * MetadataFormat.SLOT_SIZE);
                    actions.add("header slot " + (1 - good) + " (" + slots[1 - good].problem()
                            + ") rewritten from slot " + good);
                }
                long pages = MetadataFormat.pageCount(header.clusters());
                ByteBuffer[] page = {ByteBuffer.allocate(MetadataFormat.SLOT_SIZE), ByteBuffer.allocate(MetadataFormat.SLOT_SIZE)};
                for (long p = 0; p < pages; p++) {
                    MetadataFormat.PageSlot[] d = new MetadataFormat.PageSlot[2];
                    for (int s = 0; s < 2; s++) {
                        page[s].clear();
                        readFully(ch, page[s], MetadataFormat.pageSlotOffset(p, s));
                        d[s] = MetadataFormat.decodePageSlot(page[s].flip(), p, header.uuid());
                    }
                    if (!d[0].valid() && !d[1].valid()) {
                        throw new CorruptMetadataException(meta + ": both slots of bitmap page " + p
                                + " are damaged: cannot repair");
                    }
                    for (int s = 0; s < 2; s++) {
                        if (!d[s].valid()) {
                            writeFully(ch, ByteBuffer.allocate(MetadataFormat.SLOT_SIZE), MetadataFormat.pageSlotOffset(p, s));
                            actions.add("bitmap page " + p + " slot " + s + " (" + d[s].problem()
                                    + ") cleared; slot " + (1 - s) + " is used");
                        }
                    }
                }
                if (!actions.isEmpty()) {
                    ch.force(true);
                    LOG.info("repaired {}: {}", meta, actions);
                }
                standaloneBefore = header.standalone();
            } finally {
                l.release();
            }
        }
        boolean allLocal = false;
        if (!standaloneBefore) {
            try (LeafImage image = openForCheck(leafAbs)) {
                allLocal = image.local().count() == image.clusters();
            }
        }
        if (allLocal) {
            // every bit durably local but no flag (a crash between the two): a writable open records it
            try (LeafImage image = open(leafAbs, FileOps.system(), false, false)) {
                if (image.header().standalone()) {
                    actions.add("marked standalone: every cluster is local");
                }
            }
        }
        return actions;
    }

    // ---------------------------------------------------------------- accessors

    public LeafHeader header() {
        return header;
    }

    /**
     * The metadata format version on disk: that of the newest header slot at open, {@link
     * MetadataFormat#VERSION} after any header write.
     */
    public int metadataVersion() {
        return metadataVersion;
    }

    public Path dataPath() {
        return dataPath;
    }

    public Path metadataPath() {
        return metadataPath;
    }

    public boolean readOnly() {
        return readOnly;
    }

    /** The data file, for positional reads and writes only. */
    public FileChannel data() {
        return data;
    }

    /** The data file's sparse operations (punch hole, allocated size). */
    public FileOps.SparseFile sparseData() {
        return sparseData;
    }

    /** Clusters whose data is in the leaf. Read freely; change only through {@link #markLocal}. */
    public ClusterBitmap local() {
        return local;
    }

    /** Clusters written through corfs and not committed. Change only through mark/clearDirty. */
    public ClusterBitmap dirty() {
        return dirty;
    }

    public long clusters() {
        return local.size();
    }

    /** Bytes of the virtual disk covered by the set bits of {@code bitmap} (the last cluster may be short). */
    public long bytesIn(ClusterBitmap bitmap) {
        long clusterSize = header.clusterSize();
        long n = bitmap.count() * clusterSize;
        long clusters = bitmap.size();
        if (clusters > 0 && bitmap.get(clusters - 1)) {
            n -= clusters * clusterSize - header.virtualSize();
        }
        return n;
    }

    // ---------------------------------------------------------------- bit changes

    /** Marks a cluster local. Call only after its data was written to {@link #data()}. */
    public void markLocal(long cluster) {
        if (local.set(cluster)) {
            changedPages.set(cluster / MetadataFormat.CLUSTERS_PER_PAGE);
        }
    }

    /**
     * Marks a cluster dirty. Call <em>before</em> written data lands in it (see the class comment): for a
     * local cluster, then call {@link #markInUse()} before writing; for a cluster that is not local, call
     * {@link #markLocal} only after the data is written (the bit is not stored until then), or
     * {@link #clearDirty} if nothing was written.
     */
    public void markDirty(long cluster) {
        if (dirty.set(cluster)) {
            changedPages.set(cluster / MetadataFormat.CLUSTERS_PER_PAGE);
        }
    }

    /** Clears a dirty bit. Call only once the backing holds the cluster's data durably. */
    public void clearDirty(long cluster) {
        if (dirty.clear(cluster)) {
            changedPages.set(cluster / MetadataFormat.CLUSTERS_PER_PAGE);
        }
    }

    /** Punches a hole in the data file; the next flush then uses fsync, which orders the punch. */
    public void punchHole(long offset, long length) throws IOException {
        holePunched.set(true);
        sparseData.punchHole(offset, length);
    }

    /** True if bitmap changes wait for a flush. */
    public boolean hasUnflushedChanges() {
        return changedPages.nextSet(0, changedPages.size()) < changedPages.size();
    }

    // ---------------------------------------------------------------- durability

    /**
     * The durability barrier: when it returns, every write to the data file made before the call and
     * every bit set before the call are durable, in the order described in the class comment. Group
     * commit: callers that arrive while a flush runs wait for it and share the next one; a caller whose
     * bits a flush already covered (its snapshot began after the call) returns without another.
     */
    public void flush() throws IOException {
        if (readOnly) {
            return;
        }
        long calledAfter = snapshotsBegun.get();
        synchronized (flushLock) {
            if (dataDurable > calledAfter) {
                return; // a flush that began after this call has completed: it covered everything before it
            }
            flushLocked();
        }
    }

    /** Rewrites the header unchanged, in the current version. */
    private void upgradeHeader() throws IOException {
        updateHeader(UnaryOperator.identity());
    }

    /**
     * Makes the in-use flag durable if it is not yet ({@link LeafHeader#inUse}): called before data lands
     * in a local cluster whose dirty bit may not be durable. One header write per writable open; after
     * that a volatile read.
     */
    public void markInUse() throws IOException {
        if (readOnly) {
            throw new CorfsException(Reason.READ_ONLY, "leaf " + dataPath + " is open read-only");
        }
        if (header.inUse()) {
            return;
        }
        synchronized (inUseLock) {
            if (!header.inUse()) {
                updateHeader(h -> h.withInUse(true));
            }
        }
    }

    /**
     * Makes {@link #close()} leave the in-use flag as it is: a writer that may still land data after the
     * final flush (one that did not end in time) could otherwise leave a local cluster clean on disk
     * with written data, and no flag to say so. The next open then counts every local cluster as dirty.
     */
    public void keepInUse() {
        keepInUse = true;
    }

    private void flushLocked() throws IOException {
        assert Thread.holdsLock(flushLock);
        long number = snapshotsBegun.incrementAndGet();
        List<Long> pages = new ArrayList<>();
        List<ByteBuffer> snapshots = new ArrayList<>();
        List<Long> full = new ArrayList<>();
        // (1) snapshot: clear each page's changed mark first, so a bit set during the copy marks it again
        for (long p = changedPages.nextSet(0, changedPages.size()); p < changedPages.size();
             p = changedPages.nextSet(p + 1, changedPages.size())) {
            changedPages.clear(p);
            // local bits only go from 0 to 1: full now, full in the copy below
            if (!durablyFullPages.get(p) && pageFull(p)) {
                full.add(p);
            }
            ByteBuffer b = ByteBuffer.allocate(MetadataFormat.SLOT_SIZE);
            MetadataFormat.encodePage(b, p, pageSequence[(int) p] + 1, header.uuid(), local, dirty);
            pages.add(p);
            snapshots.add(b);
        }
        try {
            // (2) data durable before any bit that describes it
            data.force(holePunched.getAndSet(false));
            if (pages.isEmpty()) {
                dataDurable = number;
                return;
            }
            if (upgradePending) {
                upgradeHeader(); // the first metadata write of an older leaf: the header goes first
            }
            // (3) each page to its older slot, so the newest durable copy survives a torn write
            for (int i = 0; i < pages.size(); i++) {
                int p = Math.toIntExact(pages.get(i));
                int slot = pageSequence[p] == 0 ? 0 : 1 - pageNewestSlot[p];
                writeFully(metadata, snapshots.get(i), MetadataFormat.pageSlotOffset(p, slot));
            }
            // (4) bits durable
            metadata.force(false);
            for (int i = 0; i < pages.size(); i++) {
                int p = Math.toIntExact(pages.get(i));
                int slot = pageSequence[p] == 0 ? 0 : 1 - pageNewestSlot[p];
                pageSequence[p]++;
                pageNewestSlot[p] = (byte) slot;
            }
            for (long p : full) {
                durablyFullPages.set(p);
            }
            dataDurable = number;
        } catch (IOException | RuntimeException e) {
            holePunched.set(true);
            for (long p : pages) {
                changedPages.set(p);
            }
            throw e;
        }
        // (5) the last local bit is durable: the leaf no longer needs its backing
        if (!full.isEmpty()) {
            markStandaloneIfDurablyLocal();
        }
    }

    /** True if every cluster of bitmap page {@code page} is local (in memory). */
    private boolean pageFull(long page) {
        long from = page * MetadataFormat.CLUSTERS_PER_PAGE;
        return local.allSet(from, Math.min(local.size(), from + MetadataFormat.CLUSTERS_PER_PAGE));
    }

    /**
     * Records the standalone flag if every page's newest durable copy has every local bit set (called
     * after the bits are durable: by a flush that made the last page full, and by a writable open).
     */
    private void markStandaloneIfDurablyLocal() throws IOException {
        if (header.standalone() || durablyFullPages.count() != durablyFullPages.size()) {
            return;
        }
        updateHeader(h -> h.withStandalone(true));
        LOG.info("{}: every cluster is local: the leaf is standalone", dataPath.getFileName());
    }

    /**
     * Replaces the header durably: both slots are written, each followed by an fsync, so one intact slot
     * survives a crash at any point. Always written in the current {@link MetadataFormat#VERSION}, so the
     * first write upgrades an older leaf. Returns the new header.
     */
    public LeafHeader updateHeader(UnaryOperator<LeafHeader> change) throws IOException {
        if (readOnly) {
            throw new CorfsException(Reason.READ_ONLY, "leaf " + dataPath + " is open read-only");
        }
        LeafHeader updated;
        BackingIdentity before;
        synchronized (headerLock) {
            before = header.backingIdentity();
            updated = change.apply(header);
            long generation = headerGeneration + 1;
            for (int s = 0; s < 2; s++) {
                writeFully(metadata, MetadataFormat.encodeHeader(updated, generation), (long) s * MetadataFormat.SLOT_SIZE);
                metadata.force(false);
            }
            headerGeneration = generation;
            header = updated;
            if (upgradePending) {
                upgradePending = false;
                LOG.info("{}: metadata upgraded from version {} to {}", dataPath.getFileName(), metadataVersion,
                        MetadataFormat.VERSION);
            }
            metadataVersion = MetadataFormat.VERSION;
        }
        if (!java.util.Objects.equals(before, updated.backingIdentity())) {
            // set-backing, a commit, a mount recording a commit's identity: a pending prefetch recorded over
            // the old identity would be refused at every mount from now on
            PrefetchRecord.dropStale(dataPath, updated.backingIdentity());
        }
        return updated;
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        IOException failure = null;
        try {
            flush();
            if (!readOnly && header.inUse() && !keepInUse) {
                // every bit is durable now: the dirty bits no longer lag behind the data (the caller
                // stopped every writer first, or called keepInUse)
                updateHeader(h -> h.withInUse(false));
            }
        } catch (IOException e) {
            failure = e;
            LOG.warn("leaf {}: final flush failed: {}", dataPath, e.toString());
        }
        closeQuietly(sparseData);
        closeQuietly(data);
        if (lock != null && lock.isValid()) {
            try {
                lock.release();
            } catch (IOException e) {
                LOG.debug("release lock of {}", metadataPath, e);
            }
        }
        closeQuietly(metadata);
        if (failure != null) {
            throw failure;
        }
    }

    // ---------------------------------------------------------------- io helpers

    static void readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        long pos = position;
        while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
            if (n < 0) {
                throw new CorruptMetadataException("unexpected end of file at " + pos);
            }
            pos += n;
        }
    }

    static void writeFully(FileChannel ch, ByteBuffer src, long position) throws IOException {
        long pos = position;
        while (src.hasRemaining()) {
            pos += ch.write(src, pos);
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            LOG.debug("close", e);
        }
    }

    @Override
    public String toString() {
        return "LeafImage[" + dataPath + ", local=" + local + ", dirty=" + dirty + "]";
    }
}
