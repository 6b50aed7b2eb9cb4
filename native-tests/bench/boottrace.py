#!/usr/bin/env python3
"""Boot traces for the corfs benchmark: make one, read one, replay one. python3 stdlib only.

A trace is the reads a guest sent to its disk while booting, in the order it sent them:

    # corfs-boot-trace 1
    # source: TEXT                      (how it was made; any '#' line is a comment)
    # image_size BYTES                  (the disk the trace was recorded on)
    OFFSET LENGTH THINK_US              (one read a line, decimal)

THINK_US is the time the guest spent between the end of the read before and the start of this
one (0 when it sent this read while the one before was still in flight). A replay sends the reads
one at a time, in order, each THINK_US after the previous one completed, so it models a guest that
waits for every read (queue depth 1): the slow case for a lazily fetched disk.

Subcommands:
  from-nbdkit-log LOG -o TRACE [--image-size N] [--source TEXT]   nbdkit --filter=log output -> trace
  synthetic -o TRACE [--seed N] [--count N] [--image-size N]       issue 10's fallback trace
  replay TRACE FILE [--json] [--think-scale X] [--no-direct]       replay against a file, print stats
  stats TRACE                                                      reads, bytes, think time, span
  self-test                                                        checks the logic above, no root
"""
import argparse
import datetime
import json
import mmap
import os
import random
import re
import sys
import tempfile
import time

MAGIC = "# corfs-boot-trace 1"
ALIGN = 4096          # replays round each read out to this (O_DIRECT on any file system)
MAX_READ = 64 << 20   # a line asking for more is refused (hostile or broken trace)


class Read:
    __slots__ = ("offset", "length", "think_us")

    def __init__(self, offset, length, think_us):
        self.offset, self.length, self.think_us = offset, length, think_us

    def __eq__(self, o):
        return (self.offset, self.length, self.think_us) == (o.offset, o.length, o.think_us)

    def __repr__(self):
        return f"Read({self.offset}, {self.length}, {self.think_us})"


class Trace:
    def __init__(self, reads, image_size=None, source=None):
        self.reads, self.image_size, self.source = list(reads), image_size, source

    def total_bytes(self):
        return sum(r.length for r in self.reads)

    def think_s(self):
        return sum(r.think_us for r in self.reads) / 1e6

    def touched_bytes(self, granule=ALIGN):
        """Distinct bytes the reads touch, counted in `granule`-sized pieces."""
        seen = set()
        for r in self.reads:
            seen.update(range(r.offset // granule, (r.offset + r.length + granule - 1) // granule))
        return len(seen) * granule

    def head(self, n):
        return Trace(self.reads[:n], self.image_size, self.source)

    def write(self, path):
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(MAGIC + "\n")
            if self.source:
                f.write(f"# source: {' '.join(self.source.split())}\n")
            if self.image_size:
                f.write(f"# image_size {self.image_size}\n")
            f.write(f"# reads {len(self.reads)} bytes {self.total_bytes()} think_s {self.think_s():.3f}\n")
            f.write("# OFFSET LENGTH THINK_US\n")
            for r in self.reads:
                f.write(f"{r.offset} {r.length} {r.think_us}\n")
        os.replace(tmp, path)

    @staticmethod
    def read(path):
        reads, image_size, source = [], None, None
        with open(path) as f:
            first = f.readline().rstrip("\n")
            if first != MAGIC:
                raise ValueError(f"{path}: not a corfs boot trace (first line)")
            for n, line in enumerate(f, 2):
                line = line.strip()
                if not line:
                    continue
                if line.startswith("#"):
                    m = re.match(r"# image_size (\d+)$", line)
                    if m:
                        image_size = int(m.group(1))
                    elif line.startswith("# source: "):
                        source = line[len("# source: "):]
                    continue
                parts = line.split()
                if len(parts) != 3 or not all(p.isdigit() for p in parts):
                    raise ValueError(f"{path}:{n}: expected OFFSET LENGTH THINK_US")
                off, length, think = map(int, parts)
                if length == 0 or length > MAX_READ:
                    raise ValueError(f"{path}:{n}: read length out of range")
                if image_size and off + length > image_size:
                    raise ValueError(f"{path}:{n}: read past the image's end")
                reads.append(Read(off, length, think))
        return Trace(reads, image_size, source)


# ------------------------------------------------------------------------------------------------
# Making traces

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) connection=(\d+) (\.\.\.)?Read id=(\d+)"
                    r"(?: offset=0x([0-9a-fA-F]+) count=0x([0-9a-fA-F]+))?")


def _ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def from_nbdkit_log(lines, image_size=None, source=None):
    """Reads of an nbdkit `--filter=log` log, in the order they were issued.

    Think time of read i = its start minus the latest completion of any read issued before it
    (0 if a read issued before it was still in flight when it started). Reads whose completion
    is missing (a log cut short) still count; their end is taken as their start."""
    starts = {}     # (conn, id) -> [start, offset, count, end]
    order = []
    for line in lines:
        m = LOG_RE.match(line)
        if not m:
            continue
        ts, conn, done, rid, off, cnt = m.groups()
        key = (conn, rid)
        if done:
            if key in starts:
                starts[key][3] = _ts(ts)
        elif off is not None:
            starts[key] = [_ts(ts), int(off, 16), int(cnt, 16), None]
            order.append(key)
    reads = []
    last_end = None
    in_flight_until = None
    for key in order:
        start, off, cnt, end = starts[key]
        end = end if end is not None else start
        if last_end is None:
            think = 0
        elif in_flight_until is not None and in_flight_until > start:
            think = 0
        else:
            think = max(0, round((start - last_end) * 1e6))
        reads.append(Read(off, cnt, think))
        last_end = end if last_end is None else max(last_end, end)
        in_flight_until = last_end
    return Trace(reads, image_size, source)


def synthetic(seed=10, count=2000, image_size=2 << 30, min_kib=4, max_kib=64, think_ms=(0.0, 2.0)):
    """Issue 10's fallback: `count` scattered 4-64 KiB reads (4 KiB aligned) over the image, with
    a think time drawn uniformly from think_ms; deterministic for a seed."""
    rnd = random.Random(seed)
    reads = []
    for _ in range(count):
        length = rnd.randint(min_kib // 4, max_kib // 4) * 4096
        off = rnd.randrange(0, (image_size - length) // 4096 + 1) * 4096
        reads.append(Read(off, length, round(rnd.uniform(*think_ms) * 1000)))
    return Trace(reads, image_size, f"synthetic seed={seed} count={count} {min_kib}-{max_kib} KiB "
                                    f"think {think_ms[0]}-{think_ms[1]} ms")


# ------------------------------------------------------------------------------------------------
# Replay and statistics

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list: the smallest value with at least
    p% of the values at or below it."""
    if not values:
        raise ValueError("percentile of nothing")
    s = sorted(values)
    if p <= 0:
        return s[0]
    k = -(-p * len(s) // 100)  # ceil(p * n / 100), exact for integer p
    return s[min(len(s), max(1, int(k))) - 1]


def summarize(latencies_us, total_s, nbytes):
    lat = latencies_us
    return dict(reads=len(lat), bytes=nbytes, total_s=round(total_s, 4),
                io_s=round(sum(lat) / 1e6, 4),
                p50_us=round(percentile(lat, 50), 1), p90_us=round(percentile(lat, 90), 1),
                p99_us=round(percentile(lat, 99), 1), max_us=round(max(lat), 1),
                mean_us=round(sum(lat) / len(lat), 1))


def aligned(offset, length, size=None):
    start = offset // ALIGN * ALIGN
    end = -(-(offset + length) // ALIGN) * ALIGN
    if size is not None:
        end = min(end, -(-size // ALIGN) * ALIGN)
    return start, max(ALIGN, end - start)


def replay(trace, path, think_scale=1.0, direct=True, stop=None):
    """Send the trace's reads to `path` one at a time, in order, each think_us * think_scale after
    the one before completed; returns summarize() plus the think time slept. Each read is rounded
    out to 4 KiB and made with O_DIRECT (unless direct=False or the file system refuses it), into
    a page-aligned buffer, so the page cache never answers. `stop()` returning true ends it early."""
    flags = os.O_RDONLY
    used_direct = False
    if direct:
        try:
            fd = os.open(path, flags | os.O_DIRECT)
            used_direct = True
        except OSError:
            fd = os.open(path, flags)
    else:
        fd = os.open(path, flags)
    try:
        size = os.fstat(fd).st_size or None
        biggest = max(aligned(r.offset, r.length)[1] for r in trace.reads)
        buf = mmap.mmap(-1, biggest)
        view = memoryview(buf)
        lat = []
        nbytes = 0
        slept = 0.0
        t0 = last = time.perf_counter()
        for r in trace.reads:
            if stop is not None and stop():
                break
            if r.think_us and think_scale > 0:
                due = last + r.think_us * think_scale / 1e6
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                    slept += due - now
            off, length = aligned(r.offset, r.length)
            if size is not None and off >= size:
                continue
            a = time.perf_counter()
            n = os.preadv(fd, [view[:length]], off)
            last = time.perf_counter()
            lat.append((last - a) * 1e6)
            nbytes += n
        total = time.perf_counter() - t0
        view.release()
        buf.close()
    finally:
        os.close(fd)
    if not lat:
        raise RuntimeError(f"replay of {path}: no read was made")
    out = summarize(lat, total, nbytes)
    out.update(think_slept_s=round(slept, 4), o_direct=used_direct, think_scale=think_scale)
    return out


# ------------------------------------------------------------------------------------------------
# Self-test (python3 boottrace.py self-test): the parsing and statistics the benchmark relies on

def self_test():
    fails = []

    def check(name, got, want):
        if got != want:
            fails.append(f"{name}: got {got!r}, want {want!r}")

    # percentile: nearest rank
    v = list(range(1, 101))
    check("p50 of 1..100", percentile(v, 50), 50)
    check("p99 of 1..100", percentile(v, 99), 99)
    check("p100 of 1..100", percentile(v, 100), 100)
    check("p99 of 3 values", percentile([5, 1, 3], 99), 5)
    check("p50 of 3 values", percentile([5, 1, 3], 50), 3)
    check("p0", percentile([5, 1, 3], 0), 1)
    check("p90 of 10", percentile(list(range(10)), 90), 8)

    # nbdkit log: two reads in flight at once (the second's think is 0), a read on a second
    # connection, non-read lines, a completion out of order, a read with no completion
    log = """2026-12-02 08:03:19.563633 Ready thread_model=3
2026-12-02 08:03:19.601859 connection=1 Connect export="" tls=0 size=0x100000
2026-12-02 08:00:00.000000 connection=1 Read id=1 offset=0x1000 count=0x2000 ...
2026-12-02 08:00:00.001000 connection=1 Read id=2 offset=0x8000 count=0x200 ...
2026-12-02 08:00:00.002000 connection=1 ...Read id=2 return=0
2026-12-02 08:00:00.003000 connection=1 ...Read id=1 return=0
2026-12-02 08:00:00.010000 connection=2 Read id=1 offset=0x10000 count=0x1000 ...
2026-12-02 08:00:00.010500 connection=2 ...Read id=1 return=0
2026-12-02 08:00:00.011000 connection=1 Write id=3 offset=0x0 count=0x200 ...
2026-12-02 08:00:00.020500 connection=1 Read id=4 offset=0x0 count=0x1000 ...
"""
    t = from_nbdkit_log(log.splitlines(), image_size=1 << 20, source="test")
    check("log reads", t.reads, [Read(0x1000, 0x2000, 0), Read(0x8000, 0x200, 0),
                                 Read(0x10000, 0x1000, 7000), Read(0, 0x1000, 10000)])
    check("log bytes", t.total_bytes(), 0x2000 + 0x200 + 0x1000 + 0x1000)
    check("touched", t.touched_bytes(), 4 * 4096 + 4096)  # 0x1000-0x3000, 0x8000, 0x10000, 0

    # synthetic: deterministic, in bounds, aligned, 4-64 KiB
    a, b = synthetic(seed=3, count=500, image_size=1 << 30), synthetic(seed=3, count=500, image_size=1 << 30)
    check("synthetic deterministic", a.reads, b.reads)
    check("synthetic in bounds", all(r.offset % 4096 == 0 and 4096 <= r.length <= 65536
                                     and r.offset + r.length <= 1 << 30 for r in a.reads), True)
    check("synthetic seeds differ", a.reads != synthetic(seed=4, count=500, image_size=1 << 30).reads, True)

    # alignment
    check("aligned 512", aligned(512, 512), (0, 4096))
    check("aligned across", aligned(4000, 200), (0, 8192))
    check("aligned exact", aligned(8192, 4096), (8192, 4096))

    with tempfile.TemporaryDirectory() as d:
        # round trip, and a broken trace is refused
        p = os.path.join(d, "t.trace")
        t.write(p)
        u = Trace.read(p)
        check("round trip reads", u.reads, t.reads)
        check("round trip size", u.image_size, 1 << 20)
        check("round trip source", u.source, "test")
        for bad in ("1 2\n", "1 0 0\n", "x 1 1\n", f"{1 << 20} 4096 0\n"):
            q = os.path.join(d, "bad.trace")
            with open(q, "w") as f:
                f.write(MAGIC + "\n# image_size 1048576\n" + bad)
            try:
                Trace.read(q)
                fails.append(f"broken trace line {bad!r} accepted")
            except ValueError:
                pass
        # replay against a real file: every read made, think time honoured, stats consistent
        img = os.path.join(d, "img")
        with open(img, "wb") as f:
            f.write(os.urandom(1 << 20))
        tt = Trace([Read(0, 4096, 0), Read(8192, 512, 20000), Read(65536, 65536, 0)], 1 << 20)
        r = replay(tt, img)
        check("replay reads", r["reads"], 3)
        check("replay bytes", r["bytes"], 4096 + 4096 + 65536)
        check("replay waited the think time", r["total_s"] >= 0.02, True)
        check("replay p50 <= p99 <= max", r["p50_us"] <= r["p99_us"] <= r["max_us"], True)
        r0 = replay(tt, img, think_scale=0)
        check("think_scale 0 sleeps nothing", r0["think_slept_s"], 0.0)
    if fails:
        for f in fails:
            print("FAIL", f)
        print(f"boottrace self-test: {len(fails)} failed")
        return 1
    print("boottrace self-test: all checks passed")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("from-nbdkit-log")
    p.add_argument("log")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--image-size", type=int)
    p.add_argument("--source")
    p = sub.add_parser("synthetic")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=2 << 30)
    p = sub.add_parser("replay")
    p.add_argument("trace")
    p.add_argument("file")
    p.add_argument("--think-scale", type=float, default=1.0)
    p.add_argument("--no-direct", action="store_true")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("stats")
    p.add_argument("trace")
    sub.add_parser("self-test")
    a = ap.parse_args(argv)
    if a.cmd == "self-test":
        return self_test()
    if a.cmd == "from-nbdkit-log":
        with open(a.log) as f:
            t = from_nbdkit_log(f, a.image_size, a.source)
        if not t.reads:
            print(f"{a.log}: no reads in the log", file=sys.stderr)
            return 1
        t.write(a.out)
        a.trace = a.out
    elif a.cmd == "synthetic":
        synthetic(a.seed, a.count, a.image_size).write(a.out)
        a.trace = a.out
    elif a.cmd == "replay":
        r = replay(Trace.read(a.trace), a.file, a.think_scale, not a.no_direct)
        print(json.dumps(r) if a.json else
              f"{r['reads']} reads, {r['bytes']} bytes in {r['total_s']:.3f} s (think {r['think_slept_s']:.3f} s): "
              f"p50 {r['p50_us']:.0f} us, p90 {r['p90_us']:.0f} us, p99 {r['p99_us']:.0f} us, max {r['max_us']:.0f} us")
        return 0
    t = Trace.read(a.trace)
    print(f"{a.trace}: {len(t.reads)} reads, {t.total_bytes()} bytes ({t.touched_bytes()} distinct), "
          f"think {t.think_s():.2f} s, image {t.image_size}; source: {t.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
