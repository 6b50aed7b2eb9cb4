#!/usr/bin/env python3
"""corfs side-by-side benchmark (issue 4). Driven by ./run; python3 stdlib only.

Systems, all over the same raw backing on the same disk:
  corfs    bin/corfs create/mount, the exposed file MNT/<leaf>; stream via MNT/control
  corfs-s  the same mounted with -o single_threaded (random-read workload only, when supported)
  qsd      qemu-storage-daemon: qcow2 leaf (backing=raw) + copy-on-read filter + FUSE export
           (block-stream via QMP for the stream workloads, export read-only there because a
           writable FUSE export holds the 'resize' permission the stream job's filter unshares)
  bindfs   bindfs over the backing's directory (a C libfuse 2 filesystem: the FUSE ceiling)
  plain    the backing file itself (page cache / disk limit); `cp` for the stream workloads

Everything it mounts or starts is registered and torn down in `finally`, on SIGTERM/SIGHUP and
on Ctrl-C; the work directory is removed unless --keep.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
SYSTEMS = ["corfs", "corfs-s", "qsd", "bindfs", "plain"]
PEERS = ["qsd", "bindfs", "plain"]
WORKLOADS = ["cold", "hot", "rand", "write", "stream", "latency", "scale", "net", "qcow2", "boot", "contention",
             "profcost"]

PROFILES = {
    # dense: backing size for workloads 1-4 and 6; sparse_*: workload 5; rand_s: fio runtime
    "quick": dict(dense=256 * MiB, sparse_virtual=1 * GiB, sparse_data=128 * MiB, hot_reps=1,
                  cold_reps=1, rand_reps=1, rand_s=2, rw_io=32 * MiB, seqw=128 * MiB, lat_local=32 * MiB, lat_s=1,
                  scale_virtual=1 * TiB, scale_read=128 * MiB),
    "default": dict(dense=1 * GiB, sparse_virtual=8 * GiB, sparse_data=1 * GiB, hot_reps=3,
                    cold_reps=3, rand_reps=3, rand_s=6, rw_io=128 * MiB, seqw=512 * MiB, lat_local=128 * MiB, lat_s=6,
                    scale_virtual=1 * TiB, scale_read=1 * GiB),
    "big": dict(dense=4 * GiB, sparse_virtual=32 * GiB, sparse_data=4 * GiB, hot_reps=3,
                cold_reps=3, rand_reps=3, rand_s=20, rw_io=512 * MiB, seqw=2 * GiB, lat_local=512 * MiB, lat_s=20,
                scale_virtual=1 * TiB, scale_read=4 * GiB),
}
STREAM_SPEED = "100M"          # corfs syntax; qsd gets the same in bytes/s (binary M)
STREAM_SPEED_BYTES = 100 * MiB


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human(n):
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:g}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n}B"


def sh(cmd, check=True, timeout=None, quiet=False, **kw):
    """Run a command (list), capture output, raise with its stderr on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]} "
                           f"[{' '.join(map(str, cmd))[:300]}]")
    return p


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def fuse_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1].encode().decode("unicode_escape") == path:
                return True
    return False


def wait_until(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split()[1]
    except OSError:
        pass
    return None


def thread_cpu(pid):
    """CPU seconds per thread-name group (digits folded: 'Thread-12' -> 'Thread-N')."""
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = re.sub(r"\d+", "N", s[s.index("(") + 1:s.rindex(")")])
        fields = s[s.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tck
        out["#threads"] = out.get("#threads", 0) + 1
    return out


def rss_mib(pid):
    v = proc_status(pid, "VmRSS")
    return int(v) / 1024 if v else None


def find_daemon_pid(mnt):
    """The process serving mountpoint `mnt`: one with `mnt` as an argument (not fio/dd/us)."""
    mnt = os.path.realpath(mnt)
    best = None
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not args or os.path.basename(args[0]) in ("fio", "dd", "bash", "sh", "python3", "cat"):
            continue
        hit = any(a == mnt or a.rstrip("/") == mnt for a in args[1:])
        if hit:
            if "java" in os.path.basename(args[0]):
                return int(d)
            best = best or int(d)
    return best


# ----------------------------------------------------------------------------------------------
# Registry of everything we start: torn down in reverse order, whatever happens.

class Registry:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return item

    def remove(self, item):
        if item in self.items:
            self.items.remove(item)

    def close_all(self):
        for item in reversed(list(self.items)):
            try:
                item.stop()
            except BaseException as e:  # keep cleaning up
                log(f"cleanup: {item}: {e}")
        self.items.clear()


REG = Registry()


class Mounted:
    """A daemon serving one FUSE mount; subclasses start it, stop() always tries hard."""
    kind = "?"
    mnt = None
    pid = None
    path = None

    def cpu(self):
        return proc_cpu_seconds(self.pid) if self.pid else None

    def _force_unmount(self):
        if self.mnt and fuse_mounted(self.mnt):
            subprocess.run(["fusermount", "-u", "-z", self.mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if fuse_mounted(self.mnt):
                subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def _reap(self, timeout=10):
        if self.pid and not wait_until(lambda: not pid_alive(self.pid), timeout, 0.05):
            log(f"{self.kind}: daemon {self.pid} still alive, SIGTERM")
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not wait_until(lambda: not pid_alive(self.pid), 5, 0.05):
                log(f"{self.kind}: daemon {self.pid} still alive, SIGKILL")
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __repr__(self):
        return f"{self.kind}({self.mnt})"


class Corfs(Mounted):
    kind = "corfs"

    def __init__(self, bench, backing, workdir, opts=(), cluster_size=None):
        self.bench = bench
        self.backing = backing
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.leaf = os.path.join(workdir, "disk.raw")
        self.mnt = os.path.join(workdir, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.path = os.path.join(self.mnt, "disk.raw")
        self.control = os.path.join(self.mnt, "control")
        self.opts = list(opts)
        self.create_s = None
        self.mount_s = None
        t = time.monotonic()
        cmd = [bench.corfs, "create", "--backing", backing]
        if cluster_size:
            cmd += ["--cluster-size", cluster_size]
        sh(cmd + [self.leaf], timeout=120)
        self.create_s = time.monotonic() - t
        self.mount(self.opts)

    def mount(self, opts):
        self.opts = list(opts)
        cmd = [self.bench.corfs, "mount"]
        for o in self.opts:
            cmd += ["-o", o]
        t = time.monotonic()
        REG.add(self)
        try:
            p = sh(cmd + [self.leaf, self.mnt], timeout=60, start_new_session=True)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; daemon log tail: {self.log_tail()}") from None
        if not wait_until(lambda: fuse_mounted(self.mnt) and os.path.exists(self.path), 10):
            raise RuntimeError(f"corfs mount returned but {self.path} is not there")
        self.mount_s = time.monotonic() - t
        self.bench.mount_times.setdefault("corfs", []).append(self.mount_s)
        m = re.search(r"daemon pid (\d+)", p.stdout + p.stderr)
        self.pid = int(m.group(1)) if m else find_daemon_pid(self.mnt)

    def log_tail(self, n=6):
        try:
            with open(self.leaf + ".log") as f:
                return " | ".join(l.strip()[-200:] for l in f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def mount_fresh(self):
        """True the first time it is asked after a (re)mount: the daemon's JIT is cold."""
        fresh, self._fresh = getattr(self, "_fresh", True), False
        return fresh

    def unmount(self):
        self._fresh = True
        if fuse_mounted(self.mnt):
            p = subprocess.run([self.bench.corfs, "umount", self.mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=120)
            if p.returncode != 0:
                log(f"corfs umount {self.mnt}: exit {p.returncode}: {p.stdout.strip()[-300:]}")
        self._force_unmount()
        self._reap()
        self.pid = None
        REG.remove(self)

    def remount(self, opts):
        self.unmount()
        self.mount(opts)

    def stop(self):
        self.unmount()
        shutil.rmtree(self.dir, ignore_errors=True)

    def status(self):
        with open(self.control) as f:
            lines = f.read().splitlines()
        for line in lines:
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            if kv.get("image") in ("disk.raw", self.leaf) or len(lines) == 1:
                return kv
        return {}

    def command(self, text):
        with open(self.control, "w") as f:
            f.write(text + "\n")


class Qsd(Mounted):
    kind = "qsd"

    def __init__(self, bench, backing, workdir, cor=True, writable=True, cluster_size=None):
        self.bench = bench
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.leaf = os.path.join(workdir, "leaf.qcow2")
        self.mnt = self.path = os.path.join(workdir, "export")
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.pidfile = os.path.join(workdir, "qsd.pid")
        cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw"]
        if cluster_size:
            cmd += ["-o", f"cluster_size={cluster_size}"]
        sh(cmd + [self.leaf])
        self.cor, self.writable = cor, writable
        self.qmp = None

    def prefill(self, length):
        """Make [0, length) local in the qcow2 leaf (qemu-io with copy-on-read), before start."""
        sh(["qemu-io", "-C", "-f", "qcow2", "-c", f"read 0 {length}", self.leaf], timeout=600)

    def start(self):
        open(self.mnt, "a").close()
        top = "cor" if self.cor else "qcow"
        cmd = ["qemu-storage-daemon",
               "--blockdev", f"driver=file,node-name=file,filename={self.leaf}",
               "--blockdev", "driver=qcow2,node-name=qcow,file=file"]
        if self.cor:
            cmd += ["--blockdev", "driver=copy-on-read,node-name=cor,file=qcow"]
        cmd += ["--export", f"type=fuse,id=exp,node-name={top},mountpoint={self.mnt},"
                            f"writable={'on' if self.writable else 'off'}",
                "--chardev", f"socket,id=qmp,path={self.qmp_path},server=on,wait=off",
                "--monitor", "chardev=qmp",
                "--pidfile", self.pidfile, "--daemonize"]
        REG.add(self)
        t = time.monotonic()
        sh(cmd, timeout=60)
        if not wait_until(lambda: fuse_mounted(self.mnt), 10):
            raise RuntimeError("qemu-storage-daemon started but its export is not mounted")
        self.mount_s = time.monotonic() - t
        self.bench.mount_times.setdefault("qsd", []).append(self.mount_s)
        with open(self.pidfile) as f:
            self.pid = int(f.read().strip())
        return self

    def qmp_cmd(self, execute, **arguments):
        if self.qmp is None:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(self.qmp_path)
            self.qmp = s.makefile("rw")
            self.qmp.readline()
            self.qmp_cmd("qmp_capabilities")
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        self.qmp.write(json.dumps(msg) + "\n")
        self.qmp.flush()
        while True:
            line = self.qmp.readline()
            if not line:
                raise RuntimeError("QMP connection closed")
            r = json.loads(line)
            if "event" in r:
                if r["event"] == "BLOCK_JOB_COMPLETED" and r["data"].get("error"):
                    raise RuntimeError(f"qsd block job failed: {r['data']['error']}")
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {execute}: {r['error'].get('desc')}")
            return r.get("return")

    def stop(self):
        if self.qmp is not None:
            try:
                self.qmp.close()
            except OSError:
                pass
            self.qmp = None
        if self.pid and pid_alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self._reap(5)
        self._force_unmount()
        REG.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


class Bindfs(Mounted):
    kind = "bindfs"

    def __init__(self, src_dir, mnt, opts):
        self.src = src_dir
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        REG.add(self)
        cmd = ["bindfs"] + (["-o", opts] if opts else []) + [src_dir, mnt]
        sh(cmd, timeout=30)
        if not wait_until(lambda: fuse_mounted(mnt), 10):
            raise RuntimeError("bindfs did not mount")
        self.pid = find_daemon_pid(mnt)

    def stop(self):
        if fuse_mounted(self.mnt):
            subprocess.run(["fusermount", "-u", self.mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self._force_unmount()
        self._reap(5)
        REG.remove(self)


# ----------------------------------------------------------------------------------------------
# Measurements

def run_fio(filename, **opts):
    """Run one fio job (group_reporting); return dict with bw (MB/s), iops, p50/p99 (us)."""
    base = dict(name="bench", filename=filename, ioengine="psync", iodepth=1, numjobs=1,
                group_reporting=1, invalidate=0, fallocate="none", allow_file_create=0,
                randrepeat=0, norandommap=1, output_format="json")
    base.update(opts)
    cmd = ["fio"] + [f"--{k.replace('output_format', 'output-format')}={v}"
                     for k, v in base.items()]
    t = time.monotonic()
    p = sh(cmd, timeout=3600)
    wall = time.monotonic() - t
    out = p.stdout
    data = json.loads(out[out.index("{"):])
    job = data["jobs"][0]
    if job.get("error"):
        raise RuntimeError(f"fio error {job['error']}: {p.stderr.strip()[-300:]}")
    rw = "write" if job["write"]["io_bytes"] > job["read"]["io_bytes"] else "read"
    d = job[rw]
    pct = d.get("clat_ns", {}).get("percentile", {}) or {}
    res = dict(mbps=d["bw_bytes"] / 1e6, iops=d["iops"], io_bytes=d["io_bytes"], wall_s=wall,
               p50_us=pct.get("50.000000", 0) / 1000, p99_us=pct.get("99.000000", 0) / 1000,
               p999_us=pct.get("99.900000", 0) / 1000)
    return res


def run_dd(path, size, bs=MiB):
    p = sh(["dd", f"if={path}", "of=/dev/null", f"bs={bs}", f"count={size // bs}"], timeout=3600)
    m = re.search(r"(\d+) bytes .* copied, ([\d.e+-]+) s", p.stderr)
    if not m:
        raise RuntimeError(f"cannot parse dd output: {p.stderr.strip()}")
    return dict(mbps=int(m.group(1)) / float(m.group(2)) / 1e6, secs=float(m.group(2)))


def prof(r, *keys):
    """The extras worth keeping from a measurement: daemon CPU (total, per thread group)."""
    keys = keys + ("daemon_cpu_s", "daemon_threads_cpu_s", "daemon_cpu_exited_threads_s",
                   "daemon_threads")
    return {k: r[k] for k in keys if r.get(k) is not None}


def make_random_file(path, size, chunk=16 * MiB):
    """Write `size` bytes of incompressible data (urandom seed expanded cheaply)."""
    with open(path, "wb") as f:
        block = os.urandom(chunk)
        written = 0
        i = 0
        while written < size:
            n = min(chunk, size - written)
            # rotate so chunks differ (no dedup / compression advantage anywhere)
            k = (i * 4099) % chunk
            f.write((block[k:] + block[:k])[:n])
            written += n
            i += 1
        f.flush()
        os.fsync(f.fileno())


def make_sparse_file(path, virtual, data, chunk=8 * MiB):
    with open(path, "wb") as f:
        f.truncate(virtual)
        n = max(1, data // chunk)
        stride = virtual // n
        block = os.urandom(chunk)
        for i in range(n):
            k = (i * 4099) % chunk
            f.seek(i * stride)
            f.write(block[k:] + block[:k])
        f.flush()
        os.fsync(f.fileno())


def allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.p = dict(PROFILES[args.profile])
        self.repo = args.repo
        self.corfs = args.corfs or os.path.join(self.repo, "bin", "corfs")
        self.rows = []          # table rows
        self.notes = []
        self.corfs_ok = False
        self.corfs_why = "not tried"
        self.corfs_st = False   # -o single_threaded supported
        self.hot = {}           # system -> object with .path (and .pid)
        self.bindfs = None
        self.turn = 0
        self.corfs_jar = None
        self.mount_times = {}   # system -> mount-ready seconds of every mount in the run
        self.servers = []       # network servers of workload 8 (stopped at its end)
        sys.modules.setdefault("bench", sys.modules[__name__])  # bench_boot shares REG, Corfs, ...
        import bench_boot        # issue 10's rows (boot replay, contention, recording cost)
        self.issue10 = bench_boot.BootBench(self)

    # --- bookkeeping -----------------------------------------------------------------------
    def order(self, systems):
        """Rotate the order the systems run in, a step per call, so drift hits all alike."""
        pair = "corfs" in systems and "corfs-s" in systems and self.enabled("corfs-s")
        systems = [s for s in systems if self.enabled(s) and not (pair and s == "corfs-s")]
        if not systems:
            return []
        k = self.turn % len(systems)
        self.turn += 1
        systems = systems[k:] + systems[:k]
        if pair:
            # the two corfs variants run back to back (one remount), starting with whichever
            # the hot mount already is
            hot = self.hot.get("corfs")
            both = ["corfs-s", "corfs"] if hot and hot.opts else ["corfs", "corfs-s"]
            i = systems.index("corfs")
            systems[i:i + 1] = both
        return systems

    def enabled(self, s):
        if s == "corfs":
            return self.corfs_ok
        if s == "corfs-s":
            return self.corfs_ok and self.corfs_st
        return s in self.args.systems

    def row(self, key, label, unit, better, **kw):
        r = next((r for r in self.rows if r["key"] == key), None)
        if r is None:
            r = dict(key=key, label=label, unit=unit, better=better, values={}, samples={},
                     extra={})
            self.rows.append(r)
        return r

    def record(self, key, label, unit, better, system, value, extra=None):
        r = self.row(key, label, unit, better)
        r["samples"].setdefault(system, []).append(value)
        r["values"][system] = statistics.median(r["samples"][system])
        if extra:
            r["extra"].setdefault(system, {}).update(extra)
        log(f"  {label:<44} {system:<8} {fmt(value)} {unit}")

    # --- setup -----------------------------------------------------------------------------
    def setup(self):
        p = self.p
        base = self.args.dir
        os.makedirs(base, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="corfs-bench.", dir=base)
        log(f"work dir {self.work} ({self.args.profile} profile)")
        self.bdir = os.path.join(self.work, "backing")
        os.makedirs(self.bdir)
        self.dense = os.path.join(self.bdir, "dense.raw")
        self.dense_w = os.path.join(self.bdir, "dense-w.raw")
        self.sparse = os.path.join(self.bdir, "sparse.raw")
        log(f"making backings: dense {human(p['dense'])}, sparse {human(p['sparse_virtual'])} "
            f"holding {human(p['sparse_data'])}")
        make_random_file(self.dense, p["dense"])
        shutil.copyfile(self.dense, self.dense_w)
        if {"stream"} & set(self.args.only):
            make_sparse_file(self.sparse, p["sparse_virtual"], p["sparse_data"])
        self.snapshot_corfs()
        self.check_corfs()
        if self.enabled("bindfs"):
            self.bindfs = Bindfs(self.bdir, os.path.join(self.work, "bindfs"), self.args.bindfs_opts)

    def snapshot_corfs(self):
        """Run a private copy of target/corfs.jar: others rebuild the tree while we measure.
        The mount daemon is started from the same jar (corfs passes its own class path)."""
        if self.args.corfs:
            return
        jar = os.path.join(self.repo, "target", "corfs.jar")
        dst = os.path.join(self.work, "corfs.jar")
        for _ in range(60):
            try:
                shutil.copyfile(jar, dst)
                with zipfile.ZipFile(dst) as z:
                    if b"Main-Class" in z.read("META-INF/MANIFEST.MF"):
                        break
            except (OSError, KeyError, zipfile.BadZipFile):
                pass
            time.sleep(1)
        else:
            log(f"corfs: no usable {jar}")
            return
        self.corfs = os.path.join(self.work, "corfs")
        with open(self.corfs, "w") as f:
            f.write('#!/bin/sh\nexec java ${CORFS_JAVA_OPTS:-} -jar ' + dst + ' "$@"\n')
        os.chmod(self.corfs, 0o755)
        st = os.stat(jar)
        self.corfs_jar = dict(path=jar, mtime=time.strftime("%Y-%m-%d %H:%M:%S",
                                                            time.localtime(st.st_mtime)))

    def check_corfs(self):
        if "corfs" not in self.args.systems:
            self.corfs_why = "excluded by --systems"
            return
        if not os.access(self.corfs, os.X_OK):
            self.corfs_why = f"{self.corfs} not found"
            log(f"corfs: n/a ({self.corfs_why})")
            return
        small = os.path.join(self.work, "smoke-backing.raw")
        make_random_file(small, 8 * MiB)
        try:
            c = Corfs(self, small, os.path.join(self.work, "smoke"))
            with open(c.path, "rb") as f, open(small, "rb") as g:
                if f.read() != g.read():
                    raise RuntimeError("exposed file differs from backing")
            st = c.status()
            if "state" not in st:
                raise RuntimeError(f"control status has no state field: {st}")
            self.corfs_ok = True
            self.corfs_why = "ok"
            try:
                c.remount(["single_threaded"])
                with open(c.path, "rb") as f:
                    f.read(MiB)
                self.corfs_st = True
            except Exception as e:
                log(f"corfs: -o single_threaded not usable ({str(e)[:200]})")
            c.stop()
            log(f"corfs: works (single_threaded {'yes' if self.corfs_st else 'no'})")
        except Exception as e:
            self.corfs_why = str(e)[:300]
            log(f"corfs: n/a ({self.corfs_why})")
            for it in [i for i in REG.items if isinstance(i, Corfs)]:
                try:
                    it.stop()
                except Exception:
                    pass
        finally:
            os.unlink(small)

    def new_instance(self, system, tag, backing=None):
        backing = backing or self.dense
        d = os.path.join(self.work, f"{system}-{tag}")
        if system == "corfs":
            return Corfs(self, backing, d)
        if system == "qsd":
            return Qsd(self, backing, d).start()
        raise ValueError(system)

    def reader_path(self, system, inst=None):
        if system in ("corfs", "qsd"):
            return inst.path
        if system == "bindfs":
            return os.path.join(self.bindfs.mnt, "dense.raw")
        return self.dense

    def writer_path(self, system):
        if system in ("corfs", "qsd"):
            return self.hot[system].path
        if system == "bindfs":
            return os.path.join(self.bindfs.mnt, "dense-w.raw")
        return self.dense_w

    def daemon(self, system):
        if system in ("corfs", "qsd", "corfs-s"):
            return self.hot.get("corfs" if system == "corfs-s" else system)
        if system == "bindfs":
            return self.bindfs
        return None

    def measured(self, system, fn):
        d = self.daemon(system)
        c0 = d.cpu() if d else None
        t0 = thread_cpu(d.pid) if d and d.pid else {}
        r = fn()
        c1 = d.cpu() if d else None
        if c0 is not None and c1 is not None:
            r["daemon_cpu_s"] = round(c1 - c0, 2)
            t1 = thread_cpu(d.pid)
            delta = {k: v - t0.get(k, 0) for k, v in t1.items() if k != "#threads"}
            top = sorted(((v, k) for k, v in delta.items() if v > 0.005), reverse=True)[:6]
            r["daemon_threads_cpu_s"] = {k: round(v, 2) for v, k in top}
            # CPU of threads that ended during the run (e.g. FUSE workers libfuse retired)
            r["daemon_cpu_exited_threads_s"] = round(max(0.0, (c1 - c0) - sum(
                v for v in delta.values() if v > 0)), 2)
            r["daemon_threads"] = t1.get("#threads")
        return r

    # --- workloads -------------------------------------------------------------------------
    def w_cold(self):
        size, reps = self.p["dense"], self.p["cold_reps"]
        log(f"workload 1: cold sequential read of {human(size)} (fresh leaf, caches dropped), "
            f"median of {reps}")
        # Several rounds, each on fresh leaves: one cold run is at the mercy of what else the
        # machine does (a dd and a fio run differed 2.5x in one run, the other way in the next).
        for _ in range(reps):
            for tool in ("dd", "fio"):
                for s in self.order(["corfs", "qsd", "bindfs", "plain"]):
                    inst = None
                    if s in ("corfs", "qsd"):
                        old = self.hot.pop(s, None)
                        if old:
                            old.stop()
                        inst = self.new_instance(s, f"cold-{tool}")
                        self.hot[s] = inst
                    path = self.reader_path(s, inst)
                    drop_caches()
                    if tool == "dd":
                        r = self.measured(s, lambda: run_dd(path, size))
                    else:
                        r = self.measured(s, lambda: run_fio(path, rw="read", bs="1M", size=size))
                    self.record(f"cold_{tool}", f"cold seq read {tool} 1M", "MB/s", "higher", s,
                                r["mbps"], extra=prof(r))
        # the leaves from the last fio round are now fully local: they serve the hot workloads

    def ensure_hot(self):
        for s in ("corfs", "qsd"):
            if self.enabled(s) and s not in self.hot:
                self.hot[s] = self.new_instance(s, "hot")
                run_dd(self.hot[s].path, self.p["dense"])   # make it all local

    def w_hot(self):
        size = self.p["dense"]
        self.ensure_hot()
        log(f"workload 2: hot sequential read of {human(size)} (all local), "
            f"median of {self.p['hot_reps']}")
        systems = ["corfs", "corfs-s", "qsd", "bindfs", "plain"]
        for s in self.order(systems):                       # warm every cache once
            if s != "corfs-s":
                run_dd(self.reader_path(s, self.hot.get(s)), size)
        for _ in range(self.p["hot_reps"]):
            for s in self.order(systems):
                base = self.corfs_variant(s)
                path = self.reader_path(base, self.hot.get(base))
                if base == "corfs" and self.hot["corfs"].mount_fresh():
                    run_dd(path, size)                      # warm the new daemon's JIT
                r = self.measured(s, lambda: run_dd(path, size))
                self.record("hot_dd", "hot seq read dd 1M", "MB/s", "higher", s, r["mbps"],
                            extra=prof(r))
                r = self.measured(s, lambda: run_fio(path, rw="read", bs="1M", size=size))
                self.record("hot_fio", "hot seq read fio 1M", "MB/s", "higher", s, r["mbps"],
                            extra=prof(r))
                r = self.measured(s, lambda: run_fio(path, rw="read", bs="1M", size=size,
                                                     direct=1))
                self.record("hot_fio_direct", "hot seq read fio 1M O_DIRECT", "MB/s", "higher",
                            s, r["mbps"], extra=prof(r))
        self.corfs_variant("corfs")

    def corfs_variant(self, s):
        """Make the hot corfs mount run as variant `s` (corfs or corfs-s); return 'corfs' for
        either, any other system unchanged."""
        if not s.startswith("corfs"):
            return s
        corfs = self.hot.get("corfs")
        want = ["single_threaded"] if s == "corfs-s" else []
        if corfs is not None and corfs.opts != want:
            corfs.remount(want)
        return "corfs"

    def w_rand(self):
        size, secs = self.p["dense"], self.p["rand_s"]
        self.ensure_hot()
        reps = self.p["rand_reps"]
        log(f"workload 3: hot 4K random read, fio {secs}s each (O_DIRECT and buffered), "
            f"median of {reps}")
        variants = [("rand_qd1", "hot randread 4K 1job QD1 O_DIRECT", dict(numjobs=1, direct=1)),
                    ("rand_4j", "hot randread 4K 4jobs O_DIRECT", dict(numjobs=4, direct=1)),
                    ("rand_4j_buf", "hot randread 4K 4jobs buffered", dict(numjobs=4))]
        for key, label, opts in [v for _ in range(reps) for v in variants]:
            for s in self.order(["corfs", "corfs-s", "qsd", "bindfs", "plain"]):
                base = self.corfs_variant(s)
                path = self.reader_path(base, self.hot.get(base))
                if base == "corfs" and self.hot["corfs"].mount_fresh():
                    run_dd(path, size)       # warm the new daemon's JIT and the file's page cache
                r = self.measured(s, lambda: run_fio(
                    path, rw="randread", bs="4k", size=size, time_based=1, runtime=secs,
                    ramp_time=1, **opts))
                self.record(key, label, "IOPS", "higher", s, r["iops"],
                            extra=prof(r, "p50_us", "p99_us"))
                self.record(key + "_p99", label + " p99", "us", "lower", s, r["p99_us"])
        self.corfs_variant("corfs")

    def w_write(self):
        size = self.p["dense"]
        self.ensure_hot()
        log("workload 4: 4K random write and 1M sequential write, fio, end_fsync=1")
        for s in self.order(["corfs", "qsd", "bindfs", "plain"]):
            path = self.writer_path(s)
            r = self.measured(s, lambda: run_fio(path, rw="randwrite", bs="4k", size=size,
                                                 io_size=self.p["rw_io"], end_fsync=1))
            self.record("randwrite", f"randwrite 4K ({human(self.p['rw_io'])}) +fsync", "IOPS",
                        "higher", s, r["iops"],
                        extra=prof(r, "p50_us", "p99_us", "wall_s"))
        for s in self.order(["corfs", "qsd", "bindfs", "plain"]):
            path = self.writer_path(s)
            n = min(self.p["seqw"], size)
            r = self.measured(s, lambda: run_fio(path, rw="write", bs="1M", size=n,
                                                 end_fsync=1))
            self.record("seqwrite", f"seq write 1M ({human(n)}) +fsync", "MB/s", "higher", s,
                        r["mbps"], extra=prof(r, "wall_s"))

    def corfs_stream(self, inst, timeout=1800):
        t = time.monotonic()
        inst.command("stream")
        last = {}
        while time.monotonic() - t < timeout:
            last = inst.status()
            st = last.get("state")
            if st == "completed":
                return time.monotonic() - t, last
            if st in ("failed", "cancelled"):
                raise RuntimeError(f"corfs stream {st}: {last.get('error')}")
            time.sleep(0.02)
        raise RuntimeError(f"corfs stream did not complete in {timeout}s: {last}")

    def qsd_stream(self, q, speed=0, wait=True):
        t = time.monotonic()
        args = {"job-id": "stream0", "device": "qcow"}
        if speed:
            args["speed"] = speed
        q.qmp_cmd("block-stream", **args)
        if not wait:
            return None
        while q.qmp_cmd("query-block-jobs"):
            time.sleep(0.02)
        return time.monotonic() - t

    def w_stream(self):
        p = self.p
        log(f"workload 5: stream to completion: dense {human(p['dense'])} vs cp; sparse "
            f"{human(p['sparse_virtual'])} ({human(p['sparse_data'])} data) vs cp --sparse=always")
        for key, label, backing, cp_args in (
                ("stream_dense", f"stream dense {human(p['dense'])} [plain=cp]", self.dense, []),
                ("stream_sparse", f"stream sparse {human(p['sparse_virtual'])}/"
                                  f"{human(p['sparse_data'])} [plain=cp --sparse]",
                 self.sparse, ["--sparse=always"])):
            for s in self.order(["corfs", "qsd", "plain"]):
                d = os.path.join(self.work, f"{s}-{key}")
                extra = {}
                if s == "corfs":
                    inst = Corfs(self, backing, d)
                    drop_caches()
                    c0 = inst.cpu()
                    secs, st = self.corfs_stream(inst)
                    extra["daemon_cpu_s"] = round((inst.cpu() or 0) - (c0 or 0), 2)
                    inst.unmount()
                    extra["leaf_allocated_mib"] = round(allocated(inst.leaf) / MiB, 1)
                    inst.stop()
                elif s == "qsd":
                    q = Qsd(self, backing, d, cor=False, writable=False).start()
                    drop_caches()
                    c0 = q.cpu()
                    secs = self.qsd_stream(q)
                    extra["daemon_cpu_s"] = round((q.cpu() or 0) - (c0 or 0), 2)
                    extra["leaf_allocated_mib"] = round(allocated(q.leaf) / MiB, 1)
                    q.stop()
                else:
                    os.makedirs(d)
                    dst = os.path.join(d, "copy.raw")
                    drop_caches()
                    t = time.monotonic()
                    sh(["cp"] + cp_args + [backing, dst], timeout=1800)
                    sh(["sync", dst])
                    secs = time.monotonic() - t
                    extra["leaf_allocated_mib"] = round(allocated(dst) / MiB, 1)
                    shutil.rmtree(d, ignore_errors=True)
                self.record(key, label, "s", "lower", s, secs, extra=extra)

    def w_latency(self):
        p = self.p
        local, secs = p["lat_local"], p["lat_s"]
        need = (p["dense"] - local) / STREAM_SPEED_BYTES
        log(f"workload 6: 4K randread QD1 O_DIRECT over {human(local)} of local clusters, "
            f"idle vs during a stream at speed={STREAM_SPEED} ({need:.1f}s of streaming left)")
        if need < secs + 1.5:
            self.notes.append(f"latency: the stream ({need:.1f}s) may end before the "
                              f"{secs}s measurement; see 'stream_state_after' in the JSON")
        fio_opts = dict(rw="randread", bs="4k", size=local, direct=1, time_based=1,
                        runtime=f"{int(secs * 1000)}ms", ramp_time="500ms")
        for s in self.order(["corfs", "qsd"]):
            d = os.path.join(self.work, f"{s}-latency")
            if s == "corfs":
                inst = Corfs(self, self.dense, d)
                run_dd(inst.path, local)                    # make [0, local) local
                run_fio(inst.path, **dict(fio_opts, runtime="1s"))   # warm up (JIT)
                idle = run_fio(inst.path, **fio_opts)
                inst.command(f"stream speed={STREAM_SPEED}")
                time.sleep(1)
                busy = run_fio(inst.path, **fio_opts)
                st = inst.status()
                after = st.get("state")
                extra_busy = {"stream_state_after": after, "stream_rate": st.get("rate"),
                              "stream_done_bytes": st.get("done_bytes")}
                if after == "running":
                    try:
                        inst.command("cancel")
                    except OSError as e:
                        log(f"corfs cancel: {e}")
                inst.stop()
            else:
                q = Qsd(self, self.dense, d, cor=False, writable=False)
                q.prefill(local)
                q.start()
                run_fio(q.path, **dict(fio_opts, runtime="1s"))      # warm up, as for corfs
                idle = run_fio(q.path, **fio_opts)
                self.qsd_stream(q, speed=STREAM_SPEED_BYTES, wait=False)
                time.sleep(1)
                busy = run_fio(q.path, **fio_opts)
                jobs = q.qmp_cmd("query-block-jobs")
                extra_busy = {"stream_state_after": jobs[0]["status"] if jobs else "completed",
                              "stream_done_bytes": jobs[0]["offset"] if jobs else None}
                if jobs:
                    q.qmp_cmd("block-job-cancel", device="stream0")
                q.stop()
            for phase, r, ex in (("idle", idle, {}), ("stream", busy, extra_busy)):
                self.record(f"lat_{phase}_p50", f"randread 4K QD1 p50, {phase}", "us", "lower",
                            s, r["p50_us"])
                self.record(f"lat_{phase}_p99", f"randread 4K QD1 p99, {phase}", "us", "lower",
                            s, r["p99_us"], extra=dict(ex, iops=round(r["iops"])))

    def w_scale(self):
        p = self.p
        virt, nread = p["scale_virtual"], p["scale_read"]
        log(f"workload 7: {human(virt)} sparse backing, 64K clusters: mount time and daemon RSS "
            f"after reading {human(nread)} spread over it")
        huge = os.path.join(self.bdir, "huge.raw")
        with open(huge, "wb") as f:
            f.truncate(virt)
        chunk = 64 * 1024
        count = nread // chunk
        stride = (virt // count) // chunk * chunk
        for s in self.order(["corfs", "qsd"]):
            d = os.path.join(self.work, f"{s}-scale")
            if s == "corfs":
                try:
                    inst = Corfs(self, huge, d, cluster_size="64K")
                except RuntimeError:
                    shutil.rmtree(d, ignore_errors=True)
                    inst = Corfs(self, huge, d, cluster_size="65536")
                create_s = inst.create_s
            else:
                t = time.monotonic()
                inst = Qsd(self, huge, d, cor=True, writable=True, cluster_size=65536)
                create_s = time.monotonic() - t
                inst.start()
            mount_s = inst.mount_s
            small = sorted(self.mount_times.get(s, [])[:-1])
            rss0 = rss_mib(inst.pid) if inst.pid else None
            t = time.monotonic()
            fd = os.open(inst.path, os.O_RDONLY)
            try:
                for i in range(count):
                    os.pread(fd, chunk, i * stride)
            finally:
                os.close(fd)
            read_s = time.monotonic() - t
            rss1 = rss_mib(inst.pid) if inst.pid else None
            hwm = proc_status(inst.pid, "VmHWM") if inst.pid else None
            self.record("scale_mount", f"{human(virt)} image: mount ready", "s", "lower", s,
                        mount_s, extra={"create_s": round(create_s, 3),
                                        "small_image_mounts_median_s":
                                            round(statistics.median(small), 3) if small else None})
            self.record("scale_rss", f"{human(virt)} image: RSS after {human(nread)} read",
                        "MiB", "lower", s, rss1 if rss1 is not None else float("nan"),
                        extra={"rss_after_mount_mib": rss0, "read_s": round(read_s, 2),
                               "vmhwm_mib": int(hwm) / 1024 if hwm else None})
            if s == "corfs":
                self.scale_fast_start(inst)
            inst.stop()
        os.unlink(huge)

    def scale_fast_start(self, inst, rounds=5):
        """Issue 11's fast start on the scale row's leaf: mount-ready and `corfs status` times, the plain JVM
        (java -jar, as the snapshot's wrapper runs it: a background mount is two JVMs in series) against the
        installed launcher (packaging/corfs.in over the same jar: the class-data-sharing archive of this jar, made
        here by corfs.cli.CdsTraining; C1 and the serial GC for a command JVM; a background mount's daemon JVM
        started by the launcher itself, one JVM). Rounds alternate the two so that both see the same load;
        medians."""
        jar = os.path.join(self.work, "corfs.jar")
        jsa = os.path.join(self.work, "corfs.jsa")
        if not os.path.exists(jsa):
            sh(["java", f"-XX:ArchiveClassesAtExit={jsa}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off",
                "-cp", jar, "corfs.cli.CdsTraining"], timeout=300)
        launcher = os.path.join(self.work, "corfs-launcher")
        with open(os.path.join(self.repo, "packaging", "corfs.in")) as f:
            text = f.read().replace("@JAR@", jar).replace("@JSA@", jsa)
        with open(launcher, "w") as f:
            f.write(text)
        os.chmod(launcher, 0o755)
        plain = self.corfs
        times = {"plain": ([], []), "fast": ([], [])}
        try:
            for _ in range(rounds):
                for name, cmd in (("plain", plain), ("fast", launcher)):
                    self.corfs = cmd
                    inst.unmount()
                    inst.mount(inst.opts)
                    t = time.monotonic()
                    sh([self.corfs, "status", inst.mnt], timeout=60)
                    times[name][0].append(inst.mount_s)
                    times[name][1].append(time.monotonic() - t)
        finally:
            self.corfs = plain
        for i, (key, label) in enumerate((("scale_ready", "mount ready, fast start"),
                                          ("scale_status", "`corfs status`, fast start"))):
            plain = statistics.median(times["plain"][i])
            quick = statistics.median(times["fast"][i])
            self.record(key, f"{human(os.path.getsize(inst.backing))} image: {label}", "s", "lower", "corfs", quick,
                        extra={"plain_median_s": round(plain, 3), "fast_over_plain": round(quick / plain, 2),
                               "plain_s": [round(x, 3) for x in times["plain"][i]],
                               "fast_s": [round(x, 3) for x in times["fast"][i]]})

    # --- workload 8: network backings (issue 8) ---------------------------------------------
    def start_server(self, name, cmd, port, cwd=None):
        """A server on 127.0.0.1:port in its own session; returns its Popen (stop_server ends it)."""
        logf = open(os.path.join(self.work, f"{name}.log"), "wb")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=cwd)
        self.servers.append(proc)

        def up():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}: see {logf.name}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False
        if not wait_until(up, 20):
            raise RuntimeError(f"{name} did not listen on {port}")
        return proc

    def stop_server(self, proc):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc in self.servers:
            self.servers.remove(proc)

    def nginx_conf(self, root, port):
        d = os.path.join(self.work, f"nginx-{port}")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n"
                    f"error_log {d}/error.log; events {{ worker_connections 256; }}\n"
                    f"http {{ access_log off; sendfile on; types {{ }} default_type application/octet-stream;\n"
                    f" client_body_temp_path {d}/tmp/b; proxy_temp_path {d}/tmp/p; fastcgi_temp_path {d}/tmp/f;\n"
                    f" uwsgi_temp_path {d}/tmp/u; scgi_temp_path {d}/tmp/s;\n"
                    f" server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n")
        return ["nginx", "-c", conf, "-p", d]

    def w_net(self):
        size = self.p["dense"]
        tools = [t for t in ("qemu-nbd", "nbdkit", "nbdcopy", "nginx", "curl") if not shutil.which(t)]
        if tools:
            self.notes.append(f"net: skipped, missing {' '.join(tools)}")
            return
        log(f"workload 8: network backings, {human(size)}: cold read through the mount and stream to "
            f"standalone over qemu-nbd, nbdkit delay-read=2ms and nginx")
        free = lambda: socket.create_server(("127.0.0.1", 0))
        with free() as a, free() as b, free() as c:
            ports = [a.getsockname()[1], b.getsockname()[1], c.getsockname()[1]]
        nbd_plain = self.start_server("qemu-nbd", ["qemu-nbd", "--read-only", "--persistent", "--shared=32",
                                                   "--format=raw", "--bind=127.0.0.1", f"--port={ports[0]}",
                                                   "--export-name=disk", self.dense], ports[0])
        nbd_delay = self.start_server("nbdkit", ["nbdkit", "-f", "-r", "-i", "127.0.0.1", "-p", str(ports[1]),
                                                 "--filter=delay", "file", self.dense, "delay-read=2ms"], ports[1])
        self.start_server("nginx", self.nginx_conf(self.bdir, ports[2]), ports[2])
        links = [("nbd", "qemu-nbd", f"nbd://127.0.0.1:{ports[0]}/disk"),
                 ("nbd_delay", "nbdkit delay-read=2ms", f"nbd://127.0.0.1:{ports[1]}/disk"),
                 ("http", "nginx", f"http://127.0.0.1:{ports[2]}/dense.raw")]
        try:
            for key, label, uri in links:
                if key != "http":
                    for s in self.order(["corfs", "qsd"]):
                        d = os.path.join(self.work, f"{s}-net-cold-{key}")
                        inst = Corfs(self, uri, d) if s == "corfs" else Qsd(self, uri, d).start()
                        drop_caches()
                        r = self.measured(s, lambda: run_dd(inst.path, size))
                        self.record(f"net_cold_{key}", f"cold seq read dd 1M over {label}", "MB/s", "higher",
                                    s, r["mbps"], extra=prof(r))
                        inst.stop()
                for s in self.order(["corfs", "plain"]):
                    d = os.path.join(self.work, f"{s}-net-stream-{key}")
                    if s == "corfs":
                        inst = Corfs(self, uri, d)
                        drop_caches()
                        secs, _ = self.corfs_stream(inst)
                        inst.stop()
                    else:
                        os.makedirs(d, exist_ok=True)
                        dst = os.path.join(d, "copy.raw")
                        drop_caches()
                        t = time.monotonic()
                        if key == "http":
                            sh(["curl", "-sS", "-f", "-o", dst, uri], timeout=1800)
                        else:
                            sh(["nbdcopy", uri, dst], timeout=1800)
                        sh(["sync", dst])
                        secs = time.monotonic() - t
                        shutil.rmtree(d, ignore_errors=True)
                    peer = "curl -o" if key == "http" else "nbdcopy"
                    self.record(f"net_stream_{key}", f"stream {human(size)} over {label} [plain={peer}]", "s",
                                "lower", s, secs)
        finally:
            for proc in list(self.servers):
                self.stop_server(proc)

    # --- workload 9: qcow2 backings (issue 9) ------------------------------------------------
    def w_qcow2(self):
        size = self.p["dense"]
        log(f"workload 9: qcow2 backings holding {human(size)}: cold read through the mount vs qsd; stream "
            f"to standalone vs qemu-img convert -O raw (uncompressed and zlib)")
        d = os.path.join(self.bdir, "qcow2")
        os.makedirs(d, exist_ok=True)
        plain = os.path.join(d, "plain.qcow2")
        zlib = os.path.join(d, "zlib.qcow2")
        sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", self.dense, plain], timeout=1800)
        # compressible data for the zlib image: each 64 KiB cluster is 16 KiB of random bytes four times
        # (random data would be stored uncompressed: qemu-img keeps a cluster that does not shrink)
        compressible = os.path.join(d, "compressible.raw")
        with open(compressible, "wb") as f:
            for _ in range(size // (64 * 1024)):
                f.write(os.urandom(16 * 1024) * 4)
        sh(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zlib", compressible,
            zlib], timeout=3600)
        os.unlink(compressible)
        for s in self.order(["corfs", "qsd"]):
            w = os.path.join(self.work, f"{s}-qcow2-cold")
            if s == "corfs":
                inst = Corfs(self, plain, w)
            else:
                inst = Qsd(self, plain, w)
                sh(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", plain, "-F", "qcow2", inst.leaf])
                inst.start()
            drop_caches()
            r = self.measured(s, lambda: run_dd(inst.path, size))
            self.record("qcow2_cold", "cold seq read dd 1M of a qcow2 backing", "MB/s", "higher", s, r["mbps"],
                        extra=prof(r))
            inst.stop()
        for key, img in (("qcow2_stream", plain), ("qcow2_stream_zlib", zlib)):
            label = "stream qcow2 " + ("zlib " if "zlib" in key else "") + f"{human(size)} [plain=qemu-img convert]"
            for s in self.order(["corfs", "plain"]):
                w = os.path.join(self.work, f"{s}-{key}")
                if s == "corfs":
                    inst = Corfs(self, img, w)
                    drop_caches()
                    secs, _ = self.corfs_stream(inst)
                    inst.stop()
                else:
                    os.makedirs(w, exist_ok=True)
                    dst = os.path.join(w, "copy.raw")
                    drop_caches()
                    t = time.monotonic()
                    sh(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, dst], timeout=3600)
                    sh(["sync", dst])
                    secs = time.monotonic() - t
                    shutil.rmtree(w, ignore_errors=True)
                self.record(key, label, "s", "lower", s, secs)
        shutil.rmtree(d, ignore_errors=True)

    def run(self):
        self.setup()
        steps = dict(cold=self.w_cold, hot=self.w_hot, rand=self.w_rand, write=self.w_write,
                     stream=self.w_stream, latency=self.w_latency, scale=self.w_scale, net=self.w_net,
                     qcow2=self.w_qcow2, boot=self.issue10.w_boot, contention=self.issue10.w_contention,
                     profcost=self.issue10.w_profcost)
        for w in WORKLOADS:
            if w in self.args.only:
                t = time.monotonic()
                if w in ("boot", "contention", "profcost") and not self.corfs_ok:
                    self.notes.append(f"{w}: skipped, corfs n/a")
                    continue
                try:
                    steps[w]()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:
                    log(f"workload {w} FAILED: {e}")
                    self.notes.append(f"{w}: failed: {str(e)[:300]}")
                log(f"  ({w} took {time.monotonic() - t:.0f}s)")
                if w in ("write",):
                    # the hot leaves were written to: drop them
                    for s in list(self.hot):
                        self.hot.pop(s).stop()
        self.issue10.stop_link()


# ----------------------------------------------------------------------------------------------
# Targets and report

TARGETS = [
    # (name, row key, corfs column, peer column, op, bound)
    ("hot seq read dd >= 3x qsd", "hot_dd", "corfs", "qsd", ">=", 3.0),
    ("hot seq read dd >= 0.9x bindfs", "hot_dd", "corfs", "bindfs", ">=", 0.9),
    ("hot seq read fio >= 3x qsd", "hot_fio", "corfs", "qsd", ">=", 3.0),
    ("hot seq read fio >= 0.9x bindfs", "hot_fio", "corfs", "bindfs", ">=", 0.9),
    ("cold seq read dd >= 2x qsd", "cold_dd", "corfs", "qsd", ">=", 2.0),
    ("cold seq read fio >= 2x qsd", "cold_fio", "corfs", "qsd", ">=", 2.0),
    ("randread 4K 4 jobs >= 1.5x qsd", "rand_4j", "corfs", "qsd", ">=", 1.5),
    ("randread 4K 4 jobs >= 1.0x bindfs", "rand_4j", "corfs", "bindfs", ">=", 1.0),
    ("randread 4K 4 jobs p99 <= 1.2x bindfs", "rand_4j_p99", "corfs", "bindfs", "<=", 1.2),
    ("randread 4K 4 jobs (-s) >= 1.5x qsd", "rand_4j", "corfs-s", "qsd", ">=", 1.5),
    ("randread 4K 4 jobs (-s) >= 0.9x bindfs", "rand_4j", "corfs-s", "bindfs", ">=", 0.9),
    ("randwrite 4K >= 1.5x qsd", "randwrite", "corfs", "qsd", ">=", 1.5),
    ("stream dense <= 1.5x cp time", "stream_dense", "corfs", "plain", "<=", 1.5),
    ("stream sparse <= 1.5x cp --sparse time", "stream_sparse", "corfs", "plain", "<=", 1.5),
    ("cold read over NBD >= 2x qsd", "net_cold_nbd", "corfs", "qsd", ">=", 2.0),
    ("cold read over NBD, 2ms delay >= 3x qsd", "net_cold_nbd_delay", "corfs", "qsd", ">=", 3.0),
    ("stream over NBD <= 1.25x nbdcopy time", "net_stream_nbd", "corfs", "plain", "<=", 1.25),
    ("stream over NBD, 2ms delay <= 1.25x nbdcopy", "net_stream_nbd_delay", "corfs", "plain", "<=", 1.25),
    ("stream over HTTP <= 1.25x curl time", "net_stream_http", "corfs", "plain", "<=", 1.25),
    ("cold read of a qcow2 >= 2x qsd", "qcow2_cold", "corfs", "qsd", ">=", 2.0),
    ("stream qcow2 <= 1.2x qemu-img convert", "qcow2_stream", "corfs", "plain", "<=", 1.2),
    ("stream zlib qcow2 <= 1.2x qemu-img convert", "qcow2_stream_zlib", "corfs", "plain", "<=", 1.2),
]


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float) and v != v:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def evaluate(bench):
    rows = {r["key"]: r for r in bench.rows}
    out = []

    def add(name, a, b, op, bound, unit_note=""):
        if a is None or b is None or b == 0 or a != a or b != b:
            out.append(dict(target=name, ratio=None, bound=bound, op=op, result="n/a"))
            return
        ratio = a / b
        ok = ratio >= bound if op == ">=" else ratio <= bound
        out.append(dict(target=name, ratio=round(ratio, 3), bound=bound, op=op,
                        result="PASS" if ok else "MISS"))

    for name, key, col, peer, op, bound in TARGETS:
        r = rows.get(key)
        if col == "corfs-s" and not bench.corfs_st:
            continue
        a = r["values"].get(col) if r else None
        b = r["values"].get(peer) if r else None
        add(name, a, b, op, bound)
    r_i, r_s = rows.get("lat_idle_p99"), rows.get("lat_stream_p99")
    add("p99 during stream <= 2x idle p99",
        r_s["values"].get("corfs") if r_s else None,
        r_i["values"].get("corfs") if r_i else None, "<=", 2.0)
    m, rss = rows.get("scale_mount"), rows.get("scale_rss")
    mv = m["values"].get("corfs") if m else None
    out.append(dict(target="1 TiB mount ready < 2 s", value=mv, bound=2.0, op="<",
                    result="n/a" if mv is None else ("PASS" if mv < 2.0 else "MISS")))
    rv = rss["values"].get("corfs") if rss else None
    out.append(dict(target="1 TiB RSS < 300 MiB", value=rv, bound=300, op="<",
                    result="n/a" if rv is None or rv != rv else ("PASS" if rv < 300 else "MISS")))
    return out


def table(bench):
    cols = ["corfs"] + (["corfs-s"] if bench.corfs_st else []) + ["qsd", "bindfs", "plain"]
    head = f"{'workload':<46} {'unit':<5}" + "".join(f"{c:>10}" for c in cols) + \
           "".join(f"{'c/' + p:>9}" for p in PEERS)
    lines = [head, "-" * len(head)]
    for r in bench.rows:
        v = r["values"]
        line = f"{r['label']:<46} {r['unit']:<5}" + "".join(f"{fmt(v.get(c)):>10}" for c in cols)
        for p in PEERS:
            a, b = v.get("corfs"), v.get(p)
            line += f"{(fmt(a / b) + 'x') if a and b and a == a and b == b else '':>9}"
        lines.append(line)
    spread = [f"  {r['label']} ({r['unit']}): " + ", ".join(
        f"{c} {fmt(min(r['samples'][c]))}..{fmt(max(r['samples'][c]))}"
        for c in cols if len(r["samples"].get(c, [])) > 1)
        for r in bench.rows if any(len(r["samples"].get(c, [])) > 1 for c in cols)]
    if spread:
        lines += ["", "spread (min..max of the runs whose median is shown):"] + spread
    return "\n".join(lines)


def machine_info(work):
    def cmd(c):
        try:
            return subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return None
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    df = cmd(["df", "-hT", work])
    return dict(nproc=os.cpu_count(), mem_gib=mem, cpu=cpu, kernel=os.uname().release,
                df=df.splitlines()[-1] if df else None,
                fio=cmd(["fio", "--version"]),
                qemu=(cmd(["qemu-storage-daemon", "--version"]) or "").splitlines()[0],
                bindfs=cmd(["bindfs", "--version"]),
                java=(cmd(["java", "-version"]) or "").splitlines()[0])


def main():
    ap = argparse.ArgumentParser(description="corfs vs qemu-storage-daemon vs bindfs vs plain")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="profile", action="store_const", const="quick",
                   help="small sizes: a smoke run in 1-2 minutes")
    g.add_argument("--big", dest="profile", action="store_const", const="big",
                   help="4x the default sizes and longer random-I/O runs")
    ap.set_defaults(profile="default")
    default_dir = "/var/tmp"
    ap.add_argument("--dir", default=default_dir,
                    help="where to make the temporary work dir (default /var/tmp; not a tmpfs)")
    ap.add_argument("--json", default=None,
                    help="results file (default REPO/bench-results/latest.json)")
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma list of workloads: {','.join(WORKLOADS)}")
    ap.add_argument("--systems", default="corfs,qsd,bindfs,plain",
                    help="comma list of systems to run (default all)")
    ap.add_argument("--bindfs-opts", default="", help="extra -o options for bindfs")
    ap.add_argument("--corfs", default=None, help="corfs launcher (default REPO/bin/corfs)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (images) at the end")
    ap.add_argument("--boot-think-scale", type=float, default=0.1,
                    help="boot/contention: replay the trace's think times times this (default 0.1: "
                         "recorded under TCG, ~10x slower than KVM)")
    ap.add_argument("--boot-link-rate", default="200M",
                    help="boot/contention: nbdkit's rate=BITSPERSEC for the link (default 200M: 26.2 MB/s; "
                         "K/M/G are powers of 1024)")
    ap.add_argument("--boot-fast-link-rate", default="1G",
                    help="boot: the boot row again on this faster link, where round trips and not bandwidth "
                         "decide a cold boot (default 1G: 134 MB/s; 'none' to skip)")
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                   "..", "..")))
    ap.add_argument("--no-build", action="store_true", help="(handled by ./run)")
    args = ap.parse_args()
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [w for w in args.only if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {bad}")
    if os.geteuid() != 0:
        ap.error("must run as root")
    json_path = args.json or os.path.join(args.repo, "bench-results", "latest.json")

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    bench = Bench(args)
    load_start = os.getloadavg()
    t0 = time.monotonic()
    rc = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except SystemExit as e:
        log("terminated: cleaning up")
        rc = e.code if isinstance(e.code, int) else 1
    except Exception as e:
        log(f"FAILED: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in list(bench.hot):
            try:
                bench.hot.pop(s).stop()
            except Exception as e:
                log(f"cleanup {s}: {e}")
        REG.close_all()
        work = getattr(bench, "work", None)
        if work:
            # belt and braces: anything still mounted under the work dir
            with open("/proc/mounts") as f:
                left = [l.split()[1] for l in f if l.split()[1].startswith(work)]
            for m in left:
                log(f"cleanup: lazy-unmounting leftover {m}")
                subprocess.run(["fusermount", "-u", "-z", m], stderr=subprocess.DEVNULL)
            if args.keep:
                log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    elapsed = time.monotonic() - t0
    if not bench.rows and not bench.issue10.rows:
        return rc or 1
    targets = evaluate(bench)
    targets10 = bench.issue10.evaluate() if bench.issue10.rows else []
    result = dict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        profile=args.profile, elapsed_s=round(elapsed), sizes=bench.p,
        corfs=dict(status=bench.corfs_why, single_threaded=bench.corfs_st, jar=bench.corfs_jar,
                   java_opts=os.environ.get("CORFS_JAVA_OPTS"),
                   git=(subprocess.run(["git", "-C", args.repo, "rev-parse", "--short", "HEAD"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True).stdout.strip() or None)),
        machine=dict(machine_info(args.dir),
                     loadavg_start=[round(x, 2) for x in load_start],
                     loadavg_end=[round(x, 2) for x in os.getloadavg()]),
        rows=[{k: r[k] for k in ("key", "label", "unit", "better", "values", "samples",
                                 "extra")} for r in bench.rows],
        targets=targets, notes=bench.notes,
        issue10=dict(rows=bench.issue10.rows, targets=targets10, profcost_pairs=bench.issue10.profcost_pairs))
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1, default=str)
    print()
    m = result["machine"]
    print(f"corfs bench ({args.profile}), {m['nproc']} cpus, {m['mem_gib']} GiB, kernel "
          f"{m['kernel']}, corfs {result['corfs']['git']} ({bench.corfs_why}), "
          f"{elapsed:.0f}s, load {m['loadavg_start'][0]} -> {m['loadavg_end'][0]}")
    print("columns: corfs" + (", corfs-s = corfs -o single_threaded" if bench.corfs_st else "")
          + ", qsd = qemu-storage-daemon COR+qcow2 FUSE export, bindfs, plain = the backing "
          "file (cp for stream); c/X = corfs / X")
    print(table(bench))
    print()
    for t in targets:
        val = f"{t['ratio']}x" if t.get("ratio") is not None else fmt(t.get("value"))
        print(f"  {t['result']:<5} {t['target']:<42} {val}")
    if bench.issue10.rows:
        print()
        print(bench.issue10.report())
        print()
        for t in targets10:
            short = t["result"] if t["result"] in ("PASS", "MISS", "n/a") else "skip"
            val = f"{t['ratio']}x" if t.get("ratio") is not None else ("" if short == "n/a" else t["result"])
            reach = (f" (out of reach here: qsd / physical limit = {t['reach']}x)" if t.get("reach") else "")
            print(f"  {short:<5} {t['target']:<50} {val}{reach}")
    for n in bench.notes:
        print(f"  note: {n}")
    print(f"\nJSON: {json_path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
