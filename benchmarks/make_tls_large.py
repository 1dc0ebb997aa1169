#!/usr/bin/env python3
"""Make the DICOM-over-TLS benchmark capture with real peers (issue 15): a
pynetdicom SCU (Python's ssl, TLS 1.3) sends COUNT copies of make_large.py's
multi-frame CT (FRAMES frames of 0.5 MiB) to DCMTK ``storescp +tls`` on port
2762, across the veth pair between two network namespaces that make_large.py
sets up (MTU 1500, no offloads); tcpdump records at the receiver.  The SCU's
NSS key log goes next to the capture (OUT with the suffix ``.keys``).

    python benchmarks/make_tls_large.py OUT.pcap [COUNT] [FRAMES] [--tls12 | --plain]

``--tls12``: TLS 1.2 with an ECDHE-RSA AES-GCM suite instead.  ``--plain``:
the same pynetdicom SCU without TLS to storescp on port 11112 (no key log),
the like-for-like baseline: same sender, same PDU size (storescp's 16384).
Needs root, dcmtk built with OpenSSL, tcpdump, iproute2, ethtool, pydicom,
pynetdicom, cryptography and numpy (the venv of ``pip install -e '.[test]'
numpy``).  The server's certificate comes from a throwaway RSA test CA
(tests/tlscerts.py) in a temporary folder; storescp does not ask for a client
certificate (``-ic``).  The script fails unless tcpdump dropped nothing and
storescp stored COUNT objects (into a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from make_large import (ADDR_B, dcmtk, make_ct, start_tcpdump, stop,  # noqa: E402
                        tcpdump_counters, veth_namespaces)

TLS_PORT, PLAIN_PORT = 2762, 11112
SERVER_NAME = "localhost"          # the name in tlscerts' server certificate


def send(args) -> int:
    """The SCU (run inside the sender's namespace): one association, COUNT
    C-STOREs of the file, release.  Prints the TLS version and suite."""
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    sop_class = dcmread(args.file, stop_before_pixels=True).SOPClassUID
    ae = AE("PYNSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    tls_args = None
    if args.ca:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)          # checks the server's name
        ctx.load_verify_locations(args.ca)
        if args.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("ECDHE+AESGCM")
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = args.keylog
        tls_args = (ctx, SERVER_NAME)
    assoc = ae.associate(args.host, args.port, ae_title="STORESCP", tls_args=tls_args)
    if not assoc.is_established:
        print("make_tls_large: association failed", file=sys.stderr)
        return 1
    sock = assoc.dul.socket.socket
    if isinstance(sock, ssl.SSLSocket):
        print(f"  {sock.version()} {sock.cipher()[0]}")
    t = time.perf_counter()
    bad = 0
    for _ in range(args.count):
        status = assoc.send_c_store(Path(args.file))
        bad += getattr(status, "Status", None) != 0
    elapsed = time.perf_counter() - t
    assoc.release()
    size = os.path.getsize(args.file) * args.count
    print(f"  {args.count} C-STOREs, {size / 1e6:.0f} MB in {elapsed:.1f} s "
          f"({size / 1e6 / elapsed:.0f} MB/s), {bad} failed")
    return 1 if bad else 0


def make(args) -> int:
    import tlscerts
    out = Path(args.out).resolve()
    keys = out.with_suffix(".keys")
    for tool in ("storescp", "tcpdump", "ip", "ethtool"):
        if not shutil.which(tool):
            raise SystemExit(f"missing {tool}: apt-get install dcmtk tcpdump iproute2 ethtool")
    port = PLAIN_PORT if args.plain else TLS_PORT
    # storescp's files go to tmpfs when there is one (COUNT x 21 MB)
    scratch = "/dev/shm" if os.path.isdir("/dev/shm") else None
    procs = []
    with tempfile.TemporaryDirectory() as tmp, \
            tempfile.TemporaryDirectory(dir=scratch) as stored:
        ct = Path(tmp, "ct.dcm")
        make_ct(ct, args.frames)
        scp_tls, scu_tls = [], []
        if not args.plain:
            pki = tlscerts.make_pki(Path(tmp, "pki"), key="rsa")
            scp_tls = ["+tls", str(pki.server_key), str(pki.server_cert), "-ic"]
            keys.unlink(missing_ok=True)              # Python appends to a key log
            scu_tls = ["--ca", str(pki.ca_cert), "--keylog", str(keys)]
            if args.tls12:
                scu_tls.append("--tls12")
        dump_err = Path(tmp, "tcpdump.err")
        scp_log = Path(tmp, "storescp.log")
        with veth_namespaces() as (ns_a, ns_b, _dev_a, dev_b), \
                open(dump_err, "wb") as err, open(scp_log, "wb") as log:
            try:
                in_b = ["ip", "netns", "exec", ns_b]
                procs.append(subprocess.Popen(
                    in_b + [dcmtk("storescp"), "-aet", "STORESCP", "+xa", "+B", "+uf",
                            "-od", stored, *scp_tls, str(port)],
                    stdout=log, stderr=subprocess.STDOUT))
                procs.append(start_tcpdump(ns_b, dev_b, out, f"tcp port {port}",
                                           buffer_kib=args.buffer, stderr=err))
                time.sleep(1.5)
                sent = subprocess.run(
                    ["ip", "netns", "exec", ns_a, sys.executable, __file__, "--send",
                     "--host", ADDR_B, "--port", str(port), "--file", str(ct),
                     str(out), str(args.count), str(args.frames), *scu_tls])
                time.sleep(1.5)
            finally:
                stop(procs)
        counters = tcpdump_counters(dump_err.read_text(errors="replace"))
        got = sorted(Path(stored).iterdir())
        problems = []
        if sent.returncode:
            problems.append(f"the SCU failed ({sent.returncode})")
        if len(got) != args.count:
            problems.append(f"storescp stored {len(got)} of {args.count} objects")
        if counters.get("dropped", 1) or counters.get("captured") != counters.get("received"):
            problems.append(f"tcpdump lost packets: {counters}")
        if problems:
            print(scp_log.read_text(errors="replace")[-2000:], file=sys.stderr)
            raise SystemExit("make_tls_large: " + "; ".join(problems))
    print(f"{out}: {args.count} x {args.frames} frames, {out.stat().st_size:,} bytes, "
          f"tcpdump {counters}, storescp stored {len(got)}"
          + ("" if args.plain else f"; key log {keys}"))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", metavar="OUT.pcap")
    ap.add_argument("count", type=int, nargs="?", default=20)
    ap.add_argument("frames", type=int, nargs="?", default=40)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--tls12", action="store_true", help="TLS 1.2, ECDHE-RSA AES-GCM")
    mode.add_argument("--plain", action="store_true", help="no TLS, port 11112")
    ap.add_argument("--buffer", type=int, default=524288, help="tcpdump -B, KiB")
    # the sender's half, run by make() inside the sender's namespace
    ap.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--host", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--ca", help=argparse.SUPPRESS)
    ap.add_argument("--keylog", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return send(args) if args.send else make(args)


if __name__ == "__main__":
    sys.exit(main())
