#!/usr/bin/env python3
"""Make a large, realistic benchmark capture with real peers: DCMTK storescu
sends COUNT copies of a multi-frame 512x512 CT (FRAMES frames of 0.5 MiB)
to storescp across a veth pair (MTU 1500, no offloads) between two network
namespaces this script creates and removes; tcpdump records at the receiver.
Needs root, dcmtk, tcpdump, iproute2, ethtool, pydicom and numpy.

    python benchmarks/make_large.py OUT.pcap [COUNT] [FRAMES]

COUNT 20, FRAMES 40 (the default) gives about 440 MB and 320k frames: issue
7's capture. COUNT 5 / 60 give the linearity set; COUNT 1, FRAMES 4000 a
single 2 GB object.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    frames = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    for tool in ("storescu", "storescp", "tcpdump", "ip", "ethtool"):
        if not shutil.which(tool):
            raise SystemExit(f"missing {tool}: apt-get install dcmtk tcpdump iproute2 ethtool")
    tag = str(os.getpid())
    ns_a, ns_b, dev_a, dev_b = f"dwa{tag}", f"dwb{tag}", f"dwva{tag}", f"dwvb{tag}"
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        ct = Path(tmp, "ct.dcm")
        make_ct(ct, frames)
        try:
            sh("ip", "netns", "add", ns_a)
            sh("ip", "netns", "add", ns_b)
            sh("ip", "link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
            for ns, dev, ip in ((ns_a, dev_a, "192.0.2.1/24"), (ns_b, dev_b, "192.0.2.2/24")):
                sh("ip", "link", "set", dev, "netns", ns)
                sh("ip", "-n", ns, "addr", "add", ip, "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "mtu", "1500", "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                # Real wire-sized segments, as a switch port would show them.
                sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off",
                   "gro", "off", check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
            in_b = ["ip", "netns", "exec", ns_b]
            procs.append(subprocess.Popen(in_b + [dcmtk("storescp"), "-aet", "STORESCP", "--ignore",
                                                  "+xa", "11112"]))
            procs.append(subprocess.Popen(in_b + ["tcpdump", "-i", dev_b, "-B", "524288",
                                                  "-s", "262144", "-w", str(out),
                                                  "tcp port 11112"],
                                          stderr=subprocess.DEVNULL))
            time.sleep(1.5)
            sh("ip", "netns", "exec", ns_a, dcmtk("storescu"), "-aet", "STORESCU", "-aec", "STORESCP",
               "-xe", "--repeat", str(count), "192.0.2.2", "11112", str(ct))
            time.sleep(1.5)
        finally:
            for p in reversed(procs):
                p.send_signal(2)           # SIGINT: tcpdump flushes its file
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            for ns in (ns_a, ns_b):
                sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
    print(f"{out}: {count} x {frames} frames, {out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
