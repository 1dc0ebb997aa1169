#!/usr/bin/env python3
"""Benchmark the one-pass engine: read + link decode + TCP reassembly.

    python benchmarks/bench_pass.py CAPTURE [--runs 5] [--cut 5] [--no-tshark]

Prints a table: file, size, frames, dicomwire wall time (median of runs),
tshark time on the equivalent job (``-q -z conv,tcp`` with out-of-order
reassembly on, where installed),
ratio and peak resident memory of each. ``--cut N`` also measures a copy of
the capture with its first N percent of records removed (a capture that
started late: no SYN, no handshake). ``--stages`` adds an in-process
breakdown (read only, + link decode, + reassembly).

Make a large realistic capture with ``perf_capture.sh`` (see README:
DCMTK storescu -> storescp over an MTU-1500 veth pair, tcpdump at the
receiver): 20 x 21 MB C-STOREs, about 440 MB and 320k frames.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], ok=(0, 1)) -> tuple[float, int]:
    """Run cmd; return (wall seconds, peak RSS in MB) of that child alone."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[:500]}")
    return wall, usage.ru_maxrss // 1024


def median_run(cmd: list[str], runs: int, ok=(0, 1)) -> tuple[float, int]:
    results = [timed(cmd, ok) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def cut_capture(src: str, percent: float, dst: str) -> None:
    """Copy a pcap without its first `percent` of records, streaming (this
    process forks the measured ones: it must stay small itself)."""
    from dicomwire.capture import open_capture
    r = open_capture(src)
    total = sum(1 for _ in r)
    skip = int(total * percent / 100)
    with open(src, "rb") as f:
        head = f.read(24)
    order = "<" if struct.unpack_from("<I", head)[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    rec = struct.Struct(order + "IIII")
    ns = struct.unpack_from("<I", head)[0] in (0xA1B23C4D, 0x4D3CB2A1)
    with open(dst, "wb") as f:
        f.write(head)
        for n, ts, _lt, data, orig, _i in open_capture(src):
            if n > skip:
                sec, frac = divmod(ts, 1_000_000_000)
                f.write(rec.pack(sec, frac if ns else frac // 1000, len(data), orig))
                f.write(data)


def stages(path: str) -> list[tuple[str, float]]:
    from dicomwire.capture import open_capture
    from dicomwire.link import LinkDecoder
    from dicomwire.tcp import Reassembler, StreamSink

    def read():
        for _ in open_capture(path):
            pass

    def link():
        dec = LinkDecoder()
        fn = None
        for _n, _ts, lt, data, _o, _i in open_capture(path):
            if fn is None:
                fn = dec.decoder(lt)
            fn(data)

    def reasm():
        dec = LinkDecoder()
        r = Reassembler(StreamSink())
        feed, fn = r.feed, None
        for n, ts, lt, data, _o, _i in open_capture(path):
            if fn is None:
                fn = dec.decoder(lt)
            s = fn(data)
            if s is not None:
                feed(n, ts, s)
        r.finish()

    out = []
    for name, f in (("read", read), ("read+link", link), ("read+link+tcp", reasm)):
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        out.append((name, statistics.median(ts)))
    return out


def frames_of(path: str) -> int:
    from dicomwire.capture import open_capture
    r = open_capture(path)
    for _ in r:
        pass
    return r.frames_read


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cut", type=float, default=0, metavar="PERCENT")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--stages", action="store_true")
    args = ap.parse_args(argv)

    files = [(os.path.basename(args.capture), args.capture)]
    tmp = None
    if args.cut:
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.close()
        cut_capture(args.capture, args.cut, tmp.name)
        files.append((f"{os.path.basename(args.capture)} minus first {args.cut:g}%", tmp.name))
    tshark = None if args.no_tshark else shutil.which("tshark")
    me = [sys.executable, "-m", "dicomwire", "streams", "-q"]

    rows = []
    for label, path in files:
        t, mem = median_run(me + [path], args.runs)
        row = [label, f"{os.path.getsize(path) / 1e6:.0f} MB", f"{frames_of(path):,}",
               f"{t:.2f} s", f"{mem} MB"]
        if tshark:
            # Out-of-order reassembly on, as in the anchor: without it
            # tshark's DICOM dissector takes minutes on lossy captures.
            tt, tmem = median_run([tshark, "-r", path, "-q", "-z", "conv,tcp", "-o",
                                   "tcp.reassemble_out_of_order:TRUE"],
                                  max(1, min(args.runs, 3)), ok=(0, 1, 2))
            row += [f"{tt:.2f} s", f"{tmem} MB", f"{tt / t:.1f}x"]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    head = ["file", "size", "frames", "dicomwire", "peak mem", "tshark conv,tcp",
            "tshark mem", "speed-up"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    print(f"dicomwire streams (read + link + TCP reassembly), median of {args.runs} runs")
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    if args.stages:
        print("\nin-process stages (median of 3):")
        for name, t in stages(args.capture):
            print(f"  {name:<15} {t:.2f} s")
    if tmp:
        os.unlink(tmp.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
