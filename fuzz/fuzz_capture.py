"""Fuzz target: the capture reader (pcap, pcapng, gzip; from memory or a
mapped file). Input: one selector byte (bit 0: read through a mapped
temporary file instead of a file object; bit 1: a small record limit),
then the capture bytes."""

from __future__ import annotations

import atexit
import io
import os
import tempfile

from dicomwire.capture import CaptureError, CaptureReader

_TMP = os.path.join(tempfile.gettempdir(), f"dicomwire-fuzz-capture-{os.getpid()}.cap")


@atexit.register
def _cleanup():
    if os.path.exists(_TMP):
        os.remove(_TMP)


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    kw = {"max_record": 4096} if mode & 2 else {}
    if mode & 1:
        with open(_TMP, "wb") as f:
            f.write(body)
        source = _TMP
    else:
        source = io.BytesIO(body)
    try:
        reader = CaptureReader(source, **kw)
    except CaptureError:
        return                              # not a capture: the one allowed error
    limit = kw.get("max_record", 16 << 20)
    with reader:
        n = 0
        for number, ts, linktype, frame, orig, iface in reader:
            n += 1
            assert number == n, (number, n)
            assert isinstance(frame, bytes) and len(frame) <= limit
            assert 0 <= linktype <= 0xFFFF and orig >= 0
            assert 0 <= iface < len(reader.interfaces)
            assert isinstance(ts, int)
    assert reader.frames_read == n
    assert 0 <= reader.truncated <= n
    # Every warning says what was done about the fault.
    assert all(("stopped reading" in w or "skipped" in w or "using microseconds" in w)
               for w in reader.warnings), reader.warnings


if __name__ == "__main__":
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "capture", *sys.argv[1:]])
