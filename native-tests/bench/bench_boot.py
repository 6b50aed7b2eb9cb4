"""Issue 10's benchmark rows, driven by bench.py (workloads boot, contention, profcost).

  boot        replay of the boot trace (boot.trace, see boottrace.py) over nbdkit on loopback with
              --filter=delay delay-read=5ms --filter=rate rate=200M burstiness=0.1, and again at 1G
              (--boot-fast-link-rate): (a) an all-local leaf, (b) a cold
              leaf (copy-on-read only), (c) a cold leaf told `prefetch PROFILE` as its replay starts, PROFILE being
              `corfs profile export` of (b)'s leaf, (d) qemu-storage-daemon's copy-on-read qcow2 overlay
              over the same server (FUSE export); each replayed twice on fresh leaves, with the trace's
              think time x--boot-think-scale and with think time 0 (an I/O-bound boot), targets on each
  contention  three corfs mounts streaming from that server while a fourth replays the trace: the
              replay's p99 with no stream, with three speed=auto streams, with three unlimited ones;
              and one speed=auto stream vs one unlimited stream on the otherwise idle server
  profcost    the hot 4 KiB random-read row (fio, 4 jobs, O_DIRECT) with the default mount (profile
              recording on) and with -o profile=off, alternating, median of several runs

A variant whose feature is not on this corfs yet (profile export, -o prefetch, -o profile=off,
speed=auto) is tried, and when corfs refuses it the row reads "skipped (needs X)"; everything else
still runs. Every server and mount goes through bench.REG / bench.servers and is stopped in the
workload's `finally` (and again by bench.py's own cleanup).
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

import boottrace
from bench import REG, Corfs, MiB, GiB, Qsd, drop_caches, fmt, human, log, run_dd, run_fio, sh

HERE = os.path.dirname(os.path.abspath(__file__))
TRACE = os.path.join(HERE, "boot.trace")
IMAGE_SIZE = 2 * GiB
# The link: 5 ms per read request (a WAN round trip, or a busy object store) and 200 Mbit/s for the
# whole server (nbdkit's rate filter is in bits per second and shared by all connections). At 25 MB/s
# the 2 GiB image takes ~86 s to stream while a boot touches a few percent of it: the link, not the
# disk, decides how long a cold boot takes, and three streams can saturate it.
LINK_DELAY = "5ms"
LINK_RATE = "200M"  # --boot-link-rate
# The boot row again on a link where round trips, not bandwidth, decide a cold boot (--boot-fast-link-rate):
# at 200M the profile's bytes alone need most of what qsd's cold replay takes, so no prefetch can be 5x
# faster there; at 1 Gbit/s (134 MB/s) qsd's 5 ms round trips are what a cold boot waits for.
FAST_LINK_RATE = "1G"
# nbdkit's rate filter is a token bucket that holds `burstiness` seconds of the link (default 2 s, 52 MB at
# 200M: more than a boot fetches). A real link has no such credit, and with it a row's result depended on
# how long the link had been idle before it (the no-stream replay and the prefetch ran partly on it).
# 0.1 s keeps the rate exact (300 MiB over 200M: 11.84 s against 12.0 s ideal; 10.03 s with 2 s).
LINK_BURST = "0.1"


def link_bytes_per_s(rate):
    """nbdkit's rate=BITSPERSEC in bytes/s: its K/M/G suffixes are powers of 1024 (nbdkit_parse_size), so
    200M is 26.2 MB/s, which is what a lone unlimited stream measures here (1 GiB in 39.1 s, 2 s of burst)."""
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    num, suffix = (rate[:-1], rate[-1].upper()) if rate[-1:].isalpha() else (rate, "")
    if suffix not in scale or not num.isdigit():
        raise ValueError(f"--boot-link-rate {rate!r}: want digits with an optional K, M or G suffix")
    return int(num) * scale[suffix] / 8
THINK_SCALE = 0.1

PROFILES = {
    # boot_reads: trace prefix replayed (None: all); stream_row: image of the auto-vs-unlimited stream (at
    # least ~10 s of the link);
    # cost_reps/cost_s: profcost repetitions and fio seconds; contention_lead_s: streams run before the replay
    "quick": dict(boot_reads=400, stream_row=256 * MiB, cost_reps=3, cost_s=2, contention_lead_s=1),
    "default": dict(boot_reads=None, stream_row=1 * GiB, cost_reps=5, cost_s=6, contention_lead_s=2),
    "big": dict(boot_reads=None, stream_row=2 * GiB, cost_reps=7, cost_s=10, contention_lead_s=3),
}

# (name, row key, value, peer, op, bound)  value/peer: a variant of the row, or a function of the rows
# The boot targets are evaluated on each replay of the row (think time x--boot-think-scale, and 0).
BOOT_TARGETS = [
    ("boot{} (c) prefetch <= 1.5x max(local, profile/link)", "<=", 1.5),
    ("boot{} (c) prefetch >= 5x faster than qsd (d)", ">=", 5.0),
]
TARGETS = [
    ("replay p99, 3 auto streams <= 2x no streams", "<=", 2.0),
    ("1 auto stream <= 1.25x unlimited stream time", "<=", 1.25),
    ("hot randread 4K, recording on vs off within 3%", "within", 0.03),
]


class Skip(Exception):
    """A corfs feature this row needs is not there: the row reads 'skipped (needs ...)'."""


def refused(text):
    """True when corfs's error says it does not know the option or subcommand (libfuse's "unknown option"
    for an -o it passed on, picocli's "Unmatched argument"/"Unknown subcommand"), not some other failure."""
    t = text.lower()
    return any(w in t for w in ("unknown option", "unmatched argument", "unknown subcommand", "unknown command"))


class BootBench:
    def __init__(self, bench):
        self.b = bench
        self.p = PROFILES[bench.args.profile]
        self.rows = []       # dict(key, label, unit, values{variant: number or "skipped (...)"}, extra)
        self.skips = {}      # feature -> first reason seen
        self.trace = None
        self.server = None
        self.uri = None
        self.dir = None
        # The trace's think times were recorded under TCG, which runs guest code ~10x slower than KVM:
        # replays sleep a tenth of them by default (--boot-think-scale).
        self.think_scale = getattr(bench.args, "boot_think_scale", THINK_SCALE)
        self.link_rate = getattr(bench.args, "boot_link_rate", LINK_RATE)
        self.link_bps = link_bytes_per_s(self.link_rate)
        fast = getattr(bench.args, "boot_fast_link_rate", FAST_LINK_RATE)
        self.fast_link_rate = None if fast in (None, "", "none") or fast == self.link_rate else fast
        if self.fast_link_rate:
            link_bytes_per_s(self.fast_link_rate)   # refuse a bad value before the run starts
        self.server_rate = None
        self.profcost_pairs = []  # recording / profile=off IOPS, one per round (see w_profcost)

    # --- bookkeeping -------------------------------------------------------------------------------
    def record(self, key, label, unit, variant, value, extra=None):
        r = next((r for r in self.rows if r["key"] == key), None)
        if r is None:
            r = dict(key=key, label=label, unit=unit, values={}, samples={}, extra={})
            self.rows.append(r)
        if isinstance(value, str):
            r["values"][variant] = value
        else:
            r["samples"].setdefault(variant, []).append(value)
            r["values"][variant] = statistics.median(r["samples"][variant])
        if extra:
            r["extra"].setdefault(variant, {}).update(extra)
        log(f"  {label:<44} {variant:<10} {value if isinstance(value, str) else fmt(value)} "
            f"{'' if isinstance(value, str) else unit}")

    def skip(self, key, label, unit, variant, need):
        self.skips.setdefault(need, True)
        self.record(key, label, unit, variant, f"skipped (needs {need})")

    def value(self, key, variant):
        r = next((r for r in self.rows if r["key"] == key), None)
        v = r["values"].get(variant) if r else None
        return v if isinstance(v, (int, float)) else None

    # --- the server and the trace --------------------------------------------------------------------
    def load_trace(self):
        if self.trace is None:
            t = boottrace.Trace.read(TRACE)
            n = self.p["boot_reads"]
            self.trace = t.head(n) if n else t
            self.trace_path = os.path.join(self.b.work, "boot.trace")
            self.trace.write(self.trace_path)
            log(f"boot trace: {len(self.trace.reads)} of {len(t.reads)} reads, "
                f"{human(self.trace.total_bytes())} ({human(self.trace.touched_bytes())} distinct), think "
                f"{self.trace.think_s():.1f} s (replayed x{self.think_scale}); {t.source}")
        return self.trace

    def start_link(self, rate=None):
        """nbdkit serving dir/ (boot.raw: the 2 GiB image; stream.raw: the stream row's image) behind the
        delay and rate filters (`rate`, default the run's link); the export name picks the file."""
        rate = rate or self.link_rate
        if self.server is not None and self.server.poll() is None:
            if self.server_rate == rate:
                return
            self.stop_link()
        if not shutil.which("nbdkit"):
            raise Skip("nbdkit")
        self.dir = os.path.join(self.b.bdir, "link")
        os.makedirs(self.dir, exist_ok=True)
        img = os.path.join(self.dir, "boot.raw")
        if not os.path.exists(img):
            log(f"making the {human(IMAGE_SIZE)} boot image (random data)")
            from bench import make_random_file
            make_random_file(img, IMAGE_SIZE)
        with socket.create_server(("127.0.0.1", 0)) as s:
            port = s.getsockname()[1]
        self.server = self.b.start_server(
            "nbdkit-link", ["nbdkit", "-f", "-r", "-i", "127.0.0.1", "-p", str(port),
                            "--filter=delay", "--filter=rate", "file", f"dir={self.dir}",
                            f"delay-read={LINK_DELAY}", f"rate={rate}", f"burstiness={LINK_BURST}"], port)
        self.server_rate = rate
        self.port = port
        self.uri = f"nbd://127.0.0.1:{port}/boot.raw"

    def stop_link(self):
        if self.server is not None:
            self.b.stop_server(self.server)
            self.server = None

    def replay(self, path, timeout=3600, think_scale=None):
        """The trace replayed against `path` in a child (so a hang is bounded), think time x think_scale
        (default the run's --boot-think-scale); boottrace's stats."""
        import json
        scale = self.think_scale if think_scale is None else think_scale
        p = sh([sys.executable, os.path.join(HERE, "boottrace.py"), "replay", "--json",
                "--think-scale", str(scale), self.trace_path, path], timeout=timeout)
        out = json.loads(p.stdout)
        out["link_rate"] = self.server_rate
        return out

    def corfs(self, backing, tag, opts=(), need=None):
        """A mounted corfs leaf; Skip(need) when corfs refuses `opts` as unknown."""
        w = os.path.join(self.b.work, f"boot-{tag}")
        try:
            return Corfs(self.b, backing, w, opts=opts)
        except RuntimeError as e:
            for it in [i for i in REG.items if isinstance(i, Corfs) and i.dir == w]:
                it.stop()
            shutil.rmtree(w, ignore_errors=True)
            if need and refused(str(e)):
                raise Skip(need) from None
            raise

    # --- workload: boot replay -------------------------------------------------------------------------
    def boot_links(self):
        """The links the boot row runs on, the run's link first: (rate, bytes/s, row-key suffix, label suffix,
        leaf-tag suffix). The all-local variant (a) runs once, on the first: it does not use the link."""
        links = [(self.link_rate, self.link_bps, "", "", "")]
        if self.fast_link_rate:
            r = self.fast_link_rate
            links.append((r, link_bytes_per_s(r), f"@{r}", f" @{r}", f"-{r.lower()}"))
        return links

    def boot_scales(self, ksuf="", lsuf=""):
        """The think-time scales the boot row replays at, with the row keys of each: the trace's think time
        x think_scale (the TCG boot sped up to a KVM guest's pace), and think time 0 (a guest whose CPU is
        never the bottleneck: every read waits only for the disk, the I/O-bound boot issue 10's targets are
        about). Once only when think_scale is 0 already."""
        scales = [(self.think_scale, "boot_replay" + ksuf, f"boot replay x{self.think_scale:g} think{lsuf}, total time")]
        if self.think_scale != 0:
            scales.append((0.0, "boot_replay_think0" + ksuf, f"boot replay think 0{lsuf}, total time"))
        return scales

    def w_boot(self):
        trace = self.load_trace()
        try:
            for i, link in enumerate(self.boot_links()):
                self.boot_row(trace, link, with_local=(i == 0))
        finally:
            for it in [i for i in REG.items if getattr(i, "dir", "").startswith(os.path.join(self.b.work, "boot-"))]:
                it.stop()

    def boot_row(self, trace, link, with_local):
        rate, bps, ksuf, lsuf, tsuf = link
        self.start_link(rate)
        scales = self.boot_scales(ksuf, lsuf)
        log(f"boot replay: {len(trace.reads)} reads over nbdkit delay-read={LINK_DELAY} rate={rate} "
            f"burstiness={LINK_BURST} (bits/s): " + ("(a) local, " if with_local else "")
            + "(b) cold, (c) cold + prefetch of (b)'s profile, (d) qsd; think time x "
            + " and x".join(f"{s:g}" for s, _, _ in scales) + " (each on a fresh leaf)")
        unit = "s"
        img = os.path.join(self.dir, "boot.raw")
        profile = None

        def rec(key, label, variant, r):
            self.record(key, label, unit, variant, r["total_s"], extra=r)
            self.record(key + "_p99", label.replace("total time", "read p99"), "us", variant, r["p99_us"])

        if with_local:
            # (a) all local: a leaf over the local copy of the image, streamed to standalone
            a = self.corfs(img, "local")
            self.b.corfs_stream(a)
            for scale, key, label in scales:
                drop_caches()
                rec(key, label, "local", self.replay(a.path, think_scale=scale))
            a.stop()
        # (b) cold, copy-on-read only; the first scale's leaf records the profile (c) uses
        for i, (scale, key, label) in enumerate(scales):
            bleaf = self.corfs(self.uri, f"cold{tsuf}" if i == 0 else f"cold{tsuf}-{i}")
            drop_caches()
            rec(key, label, "cold", self.replay(bleaf.path, think_scale=scale))
            if i > 0:
                bleaf.stop()
                continue
            bleaf.unmount()
            profile = os.path.join(self.b.work, f"boot{tsuf}.profile")
            p = sh([self.b.corfs, "profile", "export", bleaf.leaf, profile], check=False, timeout=120)
            bleaf.stop()
            if p.returncode != 0 or not os.path.exists(profile):
                profile = None
                why = (p.stderr or p.stdout).strip()
                if not refused(why):
                    raise RuntimeError(f"corfs profile export: exit {p.returncode}: {why[-300:]}")
        # (c) cold, prefetching the profile
        pbytes = profile_bytes(profile) if profile else None
        if pbytes is not None:
            self.record("boot_profile_link" + ksuf, f"boot: profile bytes / link rate{lsuf}", "s", "profile",
                        pbytes / bps, extra=dict(profile_bytes=pbytes))
        for i, (scale, key, label) in enumerate(scales):
            if not profile:
                self.skip(key, label, unit, "prefetch", "corfs profile export")
                continue
            try:
                # The prefetch starts by the control command right before the replay, not with -o prefetch:
                # that one starts with the daemon and runs during the mount, which the replay does not time
                # (a fast link's whole profile fitted in it, and the row measured an all-local replay).
                c = self.corfs(self.uri, f"prefetch{tsuf}" if i == 0 else f"prefetch{tsuf}-{i}")
                drop_caches()
                try:
                    c.command(f"prefetch {os.path.abspath(profile)}")
                except OSError as e:
                    raise Skip("the prefetch control command") from e
                r = self.replay(c.path, think_scale=scale)
                st = c.status()
                c.stop()
                r.update(profile_bytes=pbytes, profile_link_s=round(pbytes / bps, 3),
                         prefetch=st.get("prefetch"), prefetch_done=st.get("prefetch_done"),
                         prefetch_total=st.get("prefetch_total"), fetched=st.get("fetched"))
                rec(key, label, "prefetch", r)
            except Skip as s:
                self.skip(key, label, unit, "prefetch", str(s))
        # (d) qemu-storage-daemon: qcow2 overlay over the same server, copy-on-read, FUSE export
        for i, (scale, key, label) in enumerate(scales):
            if self.b.args.systems and "qsd" not in self.b.args.systems:
                self.record(key, label, unit, "qsd", "skipped (--systems)")
                continue
            q = Qsd(self.b, self.uri, os.path.join(self.b.work, f"boot-qsd{tsuf}" if i == 0 else f"boot-qsd{tsuf}-{i}")).start()
            try:
                drop_caches()
                r = self.replay(q.path, think_scale=scale)
            finally:
                q.stop()
            rec(key, label, "qsd", r)

    # --- workload: contention ----------------------------------------------------------------------------
    def w_contention(self):
        self.load_trace()
        self.start_link()
        lead = self.p["contention_lead_s"]
        log(f"contention: replay on a 4th mount while 3 mounts stream from the same server "
            f"(none / speed=auto / unlimited); then 1 auto vs 1 unlimited stream of {human(self.p['stream_row'])}")
        key, label = "contention_p99", "replay read p99 beside 3 streams"
        try:
            for mode in ("none", "auto", "unlimited"):
                streams = []
                try:
                    r_leaf = self.corfs(self.uri, f"replay-{mode}")
                    drop_caches()
                    if mode != "none":
                        for i in range(3):
                            s = self.corfs(self.uri, f"streamer{i}")
                            streams.append(s)
                            try:
                                s.command("stream speed=auto" if mode == "auto" else "stream")
                            except OSError as e:
                                if mode == "auto":
                                    raise Skip("speed=auto") from e
                                raise
                        time.sleep(lead)
                    r = self.replay(r_leaf.path)
                    rates = [s.status() for s in streams]
                    r["streams"] = [dict(state=st.get("state"), rate=st.get("rate"), speed=st.get("speed"),
                                         done_bytes=st.get("done_bytes")) for st in rates]
                    self.record(key, label, "us", mode, r["p99_us"], extra=r)
                    self.record("contention_total", "replay total beside 3 streams", "s", mode, r["total_s"])
                except Skip as s:
                    self.skip(key, label, "us", mode, str(s))
                finally:
                    for s in streams:
                        try:
                            if s.status().get("state") in ("running", "paused"):
                                s.command("cancel")
                        except OSError:
                            pass
                    for it in [i for i in REG.items if getattr(i, "dir", "").startswith(
                            os.path.join(self.b.work, "boot-"))]:
                        it.stop()
            # one stream alone on the idle server: speed=auto vs unlimited
            size = self.p["stream_row"]
            small = os.path.join(self.dir, "stream.raw")
            if not os.path.exists(small):
                with open(os.path.join(self.dir, "boot.raw"), "rb") as f, open(small, "wb") as g:
                    g.write(f.read(size))
            uri = f"nbd://127.0.0.1:{self.port}/stream.raw"
            skey, slabel = "contention_stream", f"1 stream of {human(size)} alone"
            for mode in ("unlimited", "auto"):
                inst = self.corfs(uri, f"alone-{mode}")
                try:
                    drop_caches()
                    try:
                        secs, st = self.stream(inst, "stream speed=auto" if mode == "auto" else "stream")
                        self.record(skey, slabel, "s", mode, secs, extra=dict(rate=st.get("rate"),
                                                                             speed=st.get("speed")))
                    except Skip as s:
                        self.skip(skey, slabel, "s", mode, str(s))
                finally:
                    inst.stop()
        finally:
            for it in [i for i in REG.items if getattr(i, "dir", "").startswith(os.path.join(self.b.work, "boot-"))]:
                it.stop()

    def stream(self, inst, command, timeout=3600):
        t = time.monotonic()
        try:
            inst.command(command)
        except OSError as e:
            if "auto" in command:
                raise Skip("speed=auto") from e
            raise
        last = {}
        while time.monotonic() - t < timeout:
            last = inst.status()
            if last.get("state") == "completed":
                return time.monotonic() - t, last
            if last.get("state") in ("failed", "cancelled"):
                raise RuntimeError(f"corfs stream {last.get('state')}: {last.get('error')}")
            time.sleep(0.05)
        raise RuntimeError(f"corfs stream did not complete in {timeout}s: {last}")

    # --- workload: the cost of recording the profile ---------------------------------------------------------
    def w_profcost(self):
        b = self.b
        size, secs, reps = b.p["dense"], self.p["cost_s"], self.p["cost_reps"]
        log(f"profcost: hot 4K randread, fio 4 jobs O_DIRECT {secs}s, default mount (recording) vs "
            f"-o profile=off, {reps} rounds alternating")
        key, label = "profcost", "hot randread 4K 4jobs O_DIRECT"
        inst = self.corfs(b.dense, "profcost")
        try:
            run_dd(inst.path, size)                  # all local: the hot row
            variants = [("recording", []), ("profile=off", ["profile=off"])]
            for rep in range(reps):
                pair = {}
                for name, opts in (variants if rep % 2 == 0 else variants[::-1]):
                    if name in self.skips_for(key):
                        continue
                    try:
                        inst.remount(opts)
                    except RuntimeError as e:
                        if opts and refused(str(e)):
                            self.skip(key, label, "IOPS", name, "-o profile=off")
                            inst.remount([])
                            continue
                        raise
                    run_dd(inst.path, size)          # warm the new daemon's JIT and the page cache
                    r = run_fio(inst.path, rw="randread", bs="4k", size=size, time_based=1, runtime=secs,
                                ramp_time=1, numjobs=4, direct=1)
                    self.record(key, label, "IOPS", name, r["iops"], extra=dict(p99_us=r["p99_us"]))
                    pair[name] = r["iops"]
                if len(pair) == 2 and pair["profile=off"]:
                    # Paired: the two variants of one round ran back to back, so a drift of the machine's load
                    # over the run cancels in their ratio; the target takes the median of these ratios.
                    self.profcost_pairs.append(pair["recording"] / pair["profile=off"])
            if self.profcost_pairs:
                log(f"profcost: recording/off per round {', '.join(f'{x:.3f}' for x in self.profcost_pairs)}, "
                    f"median {statistics.median(self.profcost_pairs):.3f}")
        finally:
            inst.stop()

    def skips_for(self, key):
        r = next((r for r in self.rows if r["key"] == key), None)
        return {v for v, x in r["values"].items() if isinstance(x, str)} if r else set()

    # --- targets and report ------------------------------------------------------------------------------------
    def evaluate(self):
        out = []

        def add(name, op, bound, ratio, why=None):
            if ratio is None:
                out.append(dict(target=name, ratio=None, bound=bound, op=op, result=why or "n/a"))
                return
            ok = ratio <= bound if op == "<=" else ratio >= bound if op == ">=" else abs(ratio - 1) <= bound
            out.append(dict(target=name, ratio=round(ratio, 3), bound=bound, op=op,
                            result="PASS" if ok else "MISS"))

        def need(key, *variants):
            r = next((r for r in self.rows if r["key"] == key), None)
            for v in variants:
                x = r["values"].get(v) if r else None
                if isinstance(x, str):
                    return x
            return None

        (n1, o1, b1), (n2, o2, b2) = BOOT_TARGETS
        (n3, o3, b3), (n4, o4, b4), (n5, o5, b5) = TARGETS
        local_scales = self.boot_scales()
        for _, _, ksuf, lsuf, _ in self.boot_links():
            link = self.value("boot_profile_link" + ksuf, "profile")
            for (scale, key, _), (_, local_key, _) in zip(self.boot_scales(ksuf, lsuf), local_scales):
                tag = (f" x{scale:g} think" if scale else " think 0") + lsuf
                a = self.value(local_key, "local")
                c, d = (self.value(key, v) for v in ("prefetch", "qsd"))
                limit = max(a, link) if a and link is not None else None
                add(n1.format(tag), o1, b1, c / limit if c and limit else None, need(key, "prefetch"))
                add(n2.format(tag), o2, b2, d / c if c and d else None, need(key, "prefetch", "qsd"))
                if d and limit and out[-1]["result"] == "MISS" and d / limit < b2:
                    # Even a replay at the physical limit would miss: say so beside the miss.
                    out[-1]["reach"] = round(d / limit, 3)
        idle, auto = self.value("contention_p99", "none"), self.value("contention_p99", "auto")
        add(n3, o3, b3, auto / idle if auto and idle else None, need("contention_p99", "auto"))
        un, au = self.value("contention_stream", "unlimited"), self.value("contention_stream", "auto")
        add(n4, o4, b4, au / un if au and un else None, need("contention_stream", "auto"))
        rec, off = self.value("profcost", "recording"), self.value("profcost", "profile=off")
        paired = statistics.median(self.profcost_pairs) if len(self.profcost_pairs) >= 3 else None
        add(n5, o5, b5, paired if paired else rec / off if rec and off else None, need("profcost", "profile=off"))
        return out

    def report(self):
        if not self.rows:
            return ""
        fast = f", the boot row also at rate={self.fast_link_rate} (@{self.fast_link_rate})" if self.fast_link_rate else ""
        lines = [f"issue 10 rows (link: nbdkit delay-read={LINK_DELAY} rate={self.link_rate} bit/s burstiness={LINK_BURST}"
                 f"{fast}; boot trace think time x{self.think_scale}, and 0 for the boot row's think-0 replay)"]
        for r in self.rows:
            cells = [f"{v} {x}" if isinstance(x, str) else f"{v} {fmt(x)}" for v, x in r["values"].items()]
            lines.append(f"  {r['label'] + ' (' + r['unit'] + ')':<46} " + " | ".join(cells))
            for v, s in r["samples"].items():
                if len(s) > 1:
                    lines.append(f"  {'':<46}   {v}: median {fmt(statistics.median(s))}, spread {fmt(min(s))}.."
                                 f"{fmt(max(s))} ({(max(s) - min(s)) / statistics.median(s) * 100:.1f}%), n={len(s)}")
        return "\n".join(lines)


def profile_bytes(path):
    """Bytes an exported access profile names (corfs.image.AccessProfile format 1: OFFSET LENGTH FIRST_MS)."""
    total = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                total += int(parts[1])
    return total
