#!/usr/bin/env python3
"""Make a large, realistic benchmark capture with real peers: DCMTK storescu
sends COUNT copies of a multi-frame 512x512 CT (FRAMES frames of 0.5 MiB)
to storescp across a veth pair (MTU 1500, no offloads) between two network
namespaces this script creates and removes; tcpdump records at the receiver.
Needs root, dcmtk, tcpdump, iproute2, ethtool, pydicom and numpy.

    python benchmarks/make_large.py OUT.pcap [COUNT] [FRAMES] [ASSOCIATIONS]

COUNT 20, FRAMES 40 (the default) gives about 440 MB and 320k frames: issue
7's capture. COUNT 5 / 60 give the linearity set; COUNT 1, FRAMES 4000 a
single 2 GB object. ASSOCIATIONS (default 1) spreads the COUNT objects over
that many associations, one after the other: 20 20 40 20 is the --dask
benchmark's set of many associations (benchmarks/dask_speedup.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The sender's and the receiver's addresses on the veth pair (TEST-NET-1).
ADDR_A, ADDR_B = "192.0.2.1", "192.0.2.2"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, **kw)


def dcmtk(name: str) -> str:
    # pynetdicom installs Python tools of the same names: take DCMTK's binary.
    for d in ("/usr/bin", "/usr/local/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return shutil.which(name) or name


def make_ct(path: Path, frames: int) -> None:
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames, 512, 512
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    rng = np.random.default_rng(frames)
    ds.PixelData = rng.integers(0, 4000, size=(frames, 512, 512), dtype=np.uint16).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


@contextlib.contextmanager
def veth_namespaces():
    """Two network namespaces joined by a veth pair (MTU 1500, offloads off),
    ADDR_A in the first, ADDR_B in the second: yields (ns_a, ns_b, dev_a,
    dev_b) and removes both namespaces (and so the pair) on exit."""
    tag = str(os.getpid())
    ns_a, ns_b, dev_a, dev_b = f"dwa{tag}", f"dwb{tag}", f"dwva{tag}", f"dwvb{tag}"
    try:
        sh("ip", "netns", "add", ns_a)
        sh("ip", "netns", "add", ns_b)
        sh("ip", "link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        for ns, dev, ip in ((ns_a, dev_a, f"{ADDR_A}/24"), (ns_b, dev_b, f"{ADDR_B}/24")):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", ip, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Real wire-sized segments, as a switch port would show them.
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off",
               "gro", "off", check=False, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
        yield ns_a, ns_b, dev_a, dev_b
    finally:
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)


def start_tcpdump(ns: str, dev: str, out: Path, bpf: str, *, buffer_kib: int = 524288,
                  stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """tcpdump on *dev* in namespace *ns*, whole packets of *bpf* into *out*
    (a *buffer_kib* KiB kernel buffer); stop it with stop() (SIGINT flushes
    the file and prints the counters, see tcpdump_counters, to *stderr*)."""
    return subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-B",
                             str(buffer_kib), "-s", "262144", "-w", str(out), bpf],
                            stderr=stderr)


def tcpdump_counters(text: str) -> dict[str, int]:
    """tcpdump's closing counters: {"captured", "received", "dropped"}
    (packets written, received by filter, dropped by kernel)."""
    return {k: int(m.group(1)) for k in ("captured", "received", "dropped")
            if (m := re.search(rf"(\d+) packets? {k}", text))}


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT each of *procs*, last started first (tcpdump flushes its file);
    SIGKILL one still running after 10 s."""
    for p in reversed(procs):
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    frames = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    assocs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    for tool in ("storescu", "storescp", "tcpdump", "ip", "ethtool"):
        if not shutil.which(tool):
            raise SystemExit(f"missing {tool}: apt-get install dcmtk tcpdump iproute2 ethtool")
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        ct = Path(tmp, "ct.dcm")
        make_ct(ct, frames)
        with veth_namespaces() as (ns_a, ns_b, _dev_a, dev_b):
            try:
                in_b = ["ip", "netns", "exec", ns_b]
                procs.append(subprocess.Popen(in_b + [dcmtk("storescp"), "-aet", "STORESCP",
                                                      "--ignore", "+xa", "11112"]))
                procs.append(start_tcpdump(ns_b, dev_b, out, "tcp port 11112"))
                time.sleep(1.5)
                for i in range(assocs):
                    n = count // assocs + (i < count % assocs)
                    sh("ip", "netns", "exec", ns_a, dcmtk("storescu"), "-aet", "STORESCU",
                       "-aec", "STORESCP", "-xe", "--repeat", str(n), ADDR_B, "11112", str(ct))
                time.sleep(1.5)
            finally:
                stop(procs)
    print(f"{out}: {count} x {frames} frames, {out.stat().st_size:,} bytes")
    return 0

if __name__ == "__main__":
    sys.exit(main())
