#!/usr/bin/env python3
"""A stand-in for tcpdump in tests that need no root (tests/test_live.py):
installed as ``tcpdump`` on a PATH of its own, it writes the classic pcap
named by $FAKE_CAPTURE to stdout a record at a time ($FAKE_PACE seconds
apart), honours ``-c N``, then waits, as an idle link does, until SIGINT or
SIGTERM; it then says what tcpdump says and exits 0. $FAKE_FAIL: print
tcpdump's permission error and exit 1 instead; $FAKE_DROPS: the drops it
reports; $FAKE_SILENT: write nothing, not even the file header, until
stopped."""

import os
import signal
import struct
import sys
import time

stop = False


def _stop(*_):
    global stop
    stop = True


signal.signal(signal.SIGINT, _stop)
signal.signal(signal.SIGTERM, _stop)
args = sys.argv[1:]
if os.environ.get("FAKE_ARGS"):
    with open(os.environ["FAKE_ARGS"], "w") as f:
        f.write("\n".join(args))
if os.environ.get("FAKE_FAIL"):
    print(f"tcpdump: {args[args.index('-i') + 1]}: You don't have permission to perform this "
          "capture on that device\n(socket: Operation not permitted)", file=sys.stderr)
    sys.exit(1)
print("tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
      file=sys.stderr, flush=True)
while os.environ.get("FAKE_SILENT") and not stop:      # nothing at all until stopped
    time.sleep(0.02)
if stop and os.environ.get("FAKE_SILENT"):
    sys.exit(0)
limit = int(args[args.index("-c") + 1]) if "-c" in args else None
with open(os.environ["FAKE_CAPTURE"], "rb") as f:
    data = f.read()
pace = float(os.environ.get("FAKE_PACE", "0.01"))
out = sys.stdout.buffer
out.write(data[:24])
out.flush()
pos = count = 0
pos = 24
while pos + 16 <= len(data) and not stop and (limit is None or count < limit):
    incl = struct.unpack_from("<I", data, pos + 8)[0]
    out.write(data[pos:pos + 16 + incl])
    out.flush()
    pos += 16 + incl
    count += 1
    time.sleep(pace)
while not stop and limit is None:
    time.sleep(0.02)
print(f"{count} packets captured\n{count} packets received by filter\n"
      f"{os.environ.get('FAKE_DROPS', '0')} packets dropped by kernel", file=sys.stderr)
