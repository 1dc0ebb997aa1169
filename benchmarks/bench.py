#!/usr/bin/env python3
"""Benchmark dicomwire against tshark on the same captures and jobs.

    python benchmarks/bench.py CAPTURE [CAPTURE ...] [--jobs show,export,streams]
                               [--runs 5] [--cut 5] [--startup] [--stages]
                               [--no-tshark] [--tshark-timeout 300]

For each capture and job it prints one row: file, size, frames, dicomwire
wall time (median of --runs), its peak memory, seconds per GB (linearity
across captures of different sizes), objects per second (export), tshark's
time and peak memory on the same job, and the speed-up.  tshark jobs:

- show:    ``tshark -r F -Y dicom`` (summary lines, like ``dicomwire show``)
- export:  ``tshark -r F -q --export-objects dicom,DIR``
- streams: ``tshark -r F -q -z conv,tcp``

always with ``-o tcp.reassemble_out_of_order:TRUE`` (the anchor of issue 7)
and port 11112 decoded as DICOM.  A tshark run past --tshark-timeout is shown
as ``>N s``.  ``--cut N`` adds a copy of each capture without its first N
percent of records (no handshake, no A-ASSOCIATE: a capture begun late).
``--startup`` times both tools on a one-association C-ECHO capture.
``--out DIR`` puts the exported files there (e.g. /dev/shm: creating
10,000 files costs several times more on a journaled disk than in tmpfs).
``--stages`` adds an in-process breakdown of the pass.

Captures: ``benchmarks/README.md`` says how to make them (real peers).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warm import compile_project

HERE = Path(__file__).resolve().parent
# As installed: byte-compiled modules (PYTHONDONTWRITEBYTECODE would make
# every run compile the package again, a few hundred ms of start-up).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def timed(cmd: list[str], ok=(0, 1), timeout=None) -> tuple[float, int, str]:
    """Run cmd; (wall seconds, peak RSS MB of that child, stdout). On
    timeout: (inf, RSS so far unknown = 0, '')."""
    # Peak memory through GNU time: a child forked by this (big) process
    # inherits its high-water mark across exec, so wait4's ru_maxrss would
    # report ours; time's own child starts small.
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    rss_file.close()
    if TIME:
        cmd = [TIME, "-f", "%M", "-o", rss_file.name, *cmd]
    t = time.perf_counter()
    out = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=ENV)
    deadline = None if timeout is None else t + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            subprocess.run(["pkill", "-KILL", "-P", str(p.pid)], check=False)   # under time
            p.kill()
            os.wait4(p.pid, 0)
            os.unlink(rss_file.name)
            return float("inf"), 0, ""
        time.sleep(0.005)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss // 1024
    if TIME:                               # time exits with the command's status
        try:
            rss = int(Path(rss_file.name).read_text().split()[-1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
    os.unlink(rss_file.name)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if code not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err.strip()[:500]}")
    out.seek(0)
    text = out.read(1 << 16).decode(errors="replace")
    out.close()
    return wall, rss, text


def median_run(cmd, runs, ok=(0, 1), timeout=None, before=None):
    results = []
    for _ in range(runs):
        if before:
            before()
        results.append(timed(cmd, ok, timeout))
    return (statistics.median(r[0] for r in results), max(r[1] for r in results),
            results[-1][2])


def cut_capture(src: str, percent: float, dst: str) -> None:
    """Copy a pcap without its first `percent` of records, streaming."""
    from dicomwire.capture import open_capture
    r = open_capture(src)
    total = sum(1 for _ in r)
    skip = int(total * percent / 100)
    with open(src, "rb") as f:
        head = f.read(24)
    magic = struct.unpack_from("<I", head)[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    ns = magic in (0xA1B23C4D, 0x4D3CB2A1)
    rec = struct.Struct(order + "IIII")
    with open(dst, "wb") as f:
        f.write(head)
        for n, ts, _lt, data, orig, _i in open_capture(src):
            if n > skip:
                sec, frac = divmod(ts, 1_000_000_000)
                f.write(rec.pack(sec, frac if ns else frac // 1000, len(data), orig))
                f.write(data)


def frames_of(path: str) -> int:
    from dicomwire.capture import open_capture
    r = open_capture(path)
    for _ in r:
        pass
    return r.frames_read


def echo_capture(path: str) -> None:
    """A one-association C-ECHO capture (handshake, A-ASSOCIATE, C-ECHO,
    release), built with the tests' generators."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import capgen as g
    from dicomgen import AC, ECHO_RQ, ECHO_RSP, RELEASE_RP, RELEASE_RQ, RQ, pdata
    steps = [(0, RQ), (1, AC), (0, pdata((1, 3, ECHO_RQ))), (1, pdata((1, 3, ECHO_RSP))),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    pk = g.exchange("127.0.0.1", "127.0.0.1", 40000, 11112, steps)
    Path(path).write_bytes(g.pcap([(i * 100_000, g.ethernet(x)) for i, x in enumerate(pk)]))


def stages(path: str) -> list[tuple[str, float]]:
    """In-process: read, + link, + TCP (general path), the pipeline without
    and with the DICOM dissector, and with every built-in plugin."""
    from dicomwire.capture import open_capture
    from dicomwire.config import Config
    from dicomwire.link import LinkDecoder
    from dicomwire.pipeline import run
    from dicomwire.tcp import Reassembler, StreamSink

    def read():
        for _ in open_capture(path):
            pass

    def link():
        dec, fn = LinkDecoder(), None
        for _n, _ts, lt, data, _o, _i in open_capture(path):
            fn = fn or dec.decoder(lt)
            fn(data)

    def reasm():
        dec, fn = LinkDecoder(), None
        r = Reassembler(StreamSink())
        for n, ts, lt, data, _o, _i in open_capture(path):
            fn = fn or dec.decoder(lt)
            s = fn(data)
            if s is not None:
                r.feed(n, ts, s)
        r.finish()

    jobs = (("read", read), ("read+link", link), ("read+link+tcp", reasm),
            ("pipeline, no dissector", lambda: run(path, Config(dissect=False))),
            ("pipeline, dicom only", lambda: run(path, Config(plugins=["no:dicom-expert",
                                                                        "no:dicom-qr", "no:dicom-nservice"]))),
            ("pipeline, all built-ins", lambda: run(path, Config())))
    out = []
    for name, f in jobs:
        ts = []
        for _ in range(3):
            t = time.process_time()
            f()
            ts.append(time.process_time() - t)
        out.append((name, statistics.median(ts)))
    return out


def table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--jobs", default="show,export")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tshark-runs", type=int, default=1)
    ap.add_argument("--tshark-timeout", type=float, default=300)
    ap.add_argument("--cut", type=float, default=0, metavar="PERCENT")
    ap.add_argument("--startup", action="store_true")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--out", metavar="DIR", help="where export jobs write (default: a "
                    "temporary folder; file creation costs differ a lot between file systems)")
    args = ap.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    compile_project()
    tshark = None if args.no_tshark else shutil.which("tshark")
    tmpdir = tempfile.mkdtemp(prefix="dicomwire-bench-")
    try:
        files = []
        for c in args.captures:
            files.append((os.path.basename(c), c))
            if args.cut:
                cut = os.path.join(tmpdir, f"cut-{os.path.basename(c)}")
                cut_capture(c, args.cut, cut)
                files.append((f"{os.path.basename(c)} minus first {args.cut:g}%", cut))
        me = [sys.executable, "-m", "dicomwire"]
        ts_common = ["-o", "tcp.reassemble_out_of_order:TRUE", "-d", "tcp.port==11112,dicom"]
        outdir = os.path.join(args.out or tmpdir, "dicomwire-bench-out")

        def fresh_out():
            shutil.rmtree(outdir, ignore_errors=True)
            os.makedirs(outdir)

        rows = []
        for label, path in files:
            size = os.path.getsize(path)
            frames = frames_of(path)
            for job in jobs:
                if job == "show":
                    cmd, tcmd = me + ["show", "-q", path], ["-Y", "dicom"]
                elif job == "export":
                    cmd = me + ["export", "-q", path, "-o", outdir]
                    tcmd = ["-q", "--export-objects", f"dicom,{outdir}"]
                elif job == "streams":
                    cmd, tcmd = me + ["streams", "-q", path], ["-q", "-z", "conv,tcp"]
                else:
                    raise SystemExit(f"unknown job {job!r}")
                t, mem, out = median_run(cmd, args.runs, before=fresh_out)
                m = re.search(r"(\d+) object\(s\) written", out)
                objs = int(m.group(1)) if m else None
                row = [label, job, f"{size / 1e6:.0f} MB", f"{frames:,}", f"{t:.2f} s",
                       f"{mem} MB", f"{t / (size / 1e9):.2f}",
                       f"{objs / t:,.0f} ({objs})" if objs is not None else ""]
                if tshark:
                    tt, tmem, _ = median_run([tshark, "-r", path, *ts_common, *tcmd],
                                             args.tshark_runs, ok=(0, 1, 2),
                                             timeout=args.tshark_timeout, before=fresh_out)
                    if tt == float("inf"):
                        row += [f">{args.tshark_timeout:.0f} s", "-",
                                f">{args.tshark_timeout / t:.0f}x"]
                    else:
                        row += [f"{tt:.2f} s", f"{tmem} MB", f"{tt / t:.1f}x"]
                else:
                    row += ["-", "-", "-"]
                rows.append(row)
                print("  ".join(map(str, row)), file=sys.stderr, flush=True)
        if rows:
            print(f"dicomwire vs tshark, median of {args.runs} dicomwire runs, "
                  f"{args.tshark_runs} tshark run(s)")
            table(["file", "job", "size", "frames", "dicomwire", "peak mem", "s/GB",
                   "objects/s", "tshark", "tshark mem", "speed-up"], rows)
        if args.startup:
            echo = os.path.join(tmpdir, "echo.pcap")
            echo_capture(echo)
            runs = max(args.runs, 10)
            t, mem, _ = median_run(me + ["show", echo], runs)
            print(f"\nstart-up, one C-ECHO association, median of {runs}: "
                  f"dicomwire show {t * 1000:.0f} ms, {mem} MB", end="")
            if tshark:
                tt, tmem, _ = median_run([tshark, "-r", echo, "-Y", "dicom", *ts_common], runs)
                print(f"; tshark -Y dicom {tt * 1000:.0f} ms, {tmem} MB; ratio {t / tt:.2f}")
            else:
                print()
        if args.stages and args.captures:
            print(f"\nin-process stages on {os.path.basename(args.captures[0])} "
                  f"(CPU seconds, median of 3):")
            for name, t in stages(args.captures[0]):
                print(f"  {name:<24} {t:.2f}")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if args.out:
            shutil.rmtree(os.path.join(args.out, "dicomwire-bench-out"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
