"""Acceptance of issue 5: on a lossy link (segments dropped, retransmitted and
delivered out of order) every object the SCP stored is exported byte-identical.

DCMTK storescu sends four ~1-3 MB CT objects, one association per transfer
syntax (implicit LE, explicit LE, explicit BE, deflated explicit LE), to a
bit-preserving storescp (``+B``) across an impaired link, and tcpdump records
the traffic at the receiver.  ``dicomwire export`` on that capture must give
back exactly the data sets storescp wrote.  A second test cuts a real hole
into the capture (every copy of some bytes in the middle of one object) and
checks the other objects still come out byte-identical while the damaged one
is reported, and written as ``.dcm.incomplete`` only when asked to: once
with the hole inside one PDV's fragment data, once across a P-DATA-TF header
(the decoder has to resynchronise and keeps the damaged object whole).

The link: three network namespaces, all created here and torn down after::

    sender 192.0.2.1 [veth] == [veth] impairer [veth] == [veth] 192.0.2.2 receiver
        storescu                  (lossy bridge)            storescp, tcpdump

``tc qdisc ... netem`` would be the natural impairment, but kernels built
without sch_netem are common (6.18 here: CONFIG_NET_SCH_NETEM unset), so the
middle namespace runs a small user-space layer-2 bridge instead (AF_PACKET,
no IP addresses, nothing routed): it forwards every frame, and on the way
from the sender drops a share of the TCP data segments (seeded random
choices) and delays most frames a little while letting some
through at once, netem's ``loss L% reorder R% delay D`` semantics.  The
receiver therefore sees holes, out-of-order segments and retransmissions.

No traffic leaves the namespaces (TEST-NET-1 addresses, no routes, no
default gateway).  Skips cleanly unless running as root with ``ip``,
``ethtool``, ``tcpdump`` and DCMTK storescu / storescp, and network
namespaces and veth pairs can be created.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import peers
from support import dw
from test_interop_dicom import stored_dataset, stored_files

# Network namespaces, DCMTK peers, tcpdump; the lossy link alone takes seconds.
pytestmark = [pytest.mark.interop, pytest.mark.root, pytest.mark.slow]

PORT = 11112
SENDER_IP, RECEIVER_IP = "192.0.2.1", "192.0.2.2"
# The impairment, applied to frames from the sender only (netem on the
# sender's egress would do the same): LOSS of the TCP data segments are
# dropped; every frame is held DELAY_MS, except a REORDER share sent at once,
# overtaking the frames still held.
LOSS, REORDER, DELAY_MS, SEED = 0.03, 0.10, 2.0, 5

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

# storescu option, file byte order, rows = columns (16 bit pixels), and the
# transfer syntax storescp +xd accepts for it.  Explicit BE needs a BE file:
# storescu sends a file unconverted when its own transfer syntax is accepted.
OBJECTS = [
    ("-xi", "le", 768, IMPLICIT_LE),     # 1.2 MB
    ("-xe", "le", 1024, EXPLICIT_LE),    # 2.1 MB
    ("-xb", "be", 896, EXPLICIT_BE),     # 1.6 MB
    ("-xd", "le", 1152, DEFLATED_LE),    # 2.7 MB (random pixels do not deflate)
]
TIMEOUT = 40          # seconds for all storescu runs together

# ---------------------------------------------------------------------------
# The lossy bridge, run with `ip netns exec MIDDLE python3 -c BRIDGE ...`.
# ---------------------------------------------------------------------------

BRIDGE = r'''
import heapq, random, select, signal, socket, struct, sys, time
side_a, side_b, loss, reorder, delay, seed = sys.argv[1:7]
loss, reorder, delay = float(loss), float(reorder), float(delay) / 1000
rng = random.Random(int(seed))
ETH_P_ALL, PACKET_OUTGOING, PACKET_IGNORE_OUTGOING = 3, 4, 23

def open_side(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    try:
        s.setsockopt(263, PACKET_IGNORE_OUTGOING, 1)   # SOL_PACKET, Linux >= 4.20
    except OSError:
        pass
    s.bind((name, ETH_P_ALL))
    return s

a, b = open_side(side_a), open_side(side_b)
stats = dict(frames_ab=0, frames_ba=0, data_ab=0, dropped=0, early=0, send_errors=0)
held = []            # (due, n, frame): frames from a on their way to b
n = 0

def stop(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

def send(sock, frame):
    try:
        sock.send(frame)
    except OSError:
        stats["send_errors"] += 1

def tcp_data(f):
    if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
        return False
    ihl = (f[14] & 15) * 4
    total = struct.unpack_from("!H", f, 16)[0]
    return total - ihl - (f[14 + ihl + 12] >> 4) * 4 > 0

print("ready", flush=True)
try:
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            send(b, heapq.heappop(held)[2])
        wait = max(0.0, held[0][0] - now) if held else 0.5
        ready, _, _ = select.select([a, b], [], [], wait)
        for s in ready:
            while True:
                try:
                    frame, addr = s.recvfrom(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                if s is b:
                    stats["frames_ba"] += 1
                    send(a, frame)
                    continue
                stats["frames_ab"] += 1
                if tcp_data(frame):
                    stats["data_ab"] += 1
                    if rng.random() < loss:
                        stats["dropped"] += 1
                        continue
                n += 1
                if rng.random() < reorder:
                    stats["early"] += 1
                    heapq.heappush(held, (time.monotonic(), n, frame))
                else:
                    heapq.heappush(held, (time.monotonic() + delay, n, frame))
finally:
    for _, _, frame in sorted(held):
        send(b, frame)
    print("stats " + " ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
'''


# ---------------------------------------------------------------------------
# Namespaces, processes
# ---------------------------------------------------------------------------

def _run(*cmd, check=True, timeout=20):
    res = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, errors="replace",
                         timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed (rc={res.returncode}): "
                           f"{res.stderr.strip() or res.stdout.strip()}")
    return res


def _skip_unless_possible():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets, tcpdump)")
    missing = [t for t in ("ip", "ethtool", "tcpdump") if shutil.which(t) is None]
    if not peers.have_dcmtk("storescu", "storescp"):
        missing.append("DCMTK storescu/storescp")
    if missing:
        pytest.skip(f"missing: {', '.join(missing)}")


class Link:
    """Three namespaces and two veth pairs; see the module docstring."""

    def __init__(self):
        tag = f"dwl{os.getpid()}"
        self.sender, self.middle, self.receiver = (f"{tag}s", f"{tag}m", f"{tag}r")
        self.if_s, self.if_m1, self.if_m2, self.if_r = (f"{tag}s0", f"{tag}m1",
                                                        f"{tag}m2", f"{tag}r0")
        self.made: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def ns(self, name, *cmd):
        return ["ip", "netns", "exec", name, *map(str, cmd)]

    def build(self):
        for name in (self.sender, self.middle, self.receiver):
            _run("ip", "netns", "add", name)
            self.made.append(name)
            _run(*self.ns(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                          "net.ipv6.conf.default.disable_ipv6=1"), check=False)
        # Created inside the namespaces: nothing ever exists in the caller's.
        _run("ip", "-n", self.sender, "link", "add", self.if_s, "type", "veth",
             "peer", "name", self.if_m1, "netns", self.middle)
        _run("ip", "-n", self.receiver, "link", "add", self.if_r, "type", "veth",
             "peer", "name", self.if_m2, "netns", self.middle)
        _run("ip", "-n", self.sender, "addr", "add", f"{SENDER_IP}/24", "dev", self.if_s)
        _run("ip", "-n", self.receiver, "addr", "add", f"{RECEIVER_IP}/24", "dev", self.if_r)
        for name, dev in ((self.sender, self.if_s), (self.middle, self.if_m1),
                          (self.middle, self.if_m2), (self.receiver, self.if_r)):
            _run("ip", "-n", name, "link", "set", dev, "mtu", "1500", "up")
            # Whole 1500-byte frames on the wire, and checksums computed in
            # software: a frame the bridge copies must carry a valid one.
            _run(*self.ns(name, "ethtool", "-K", dev, "tso", "off", "gso", "off",
                          "gro", "off", "tx", "off"), check=False)
        for name in (self.sender, self.receiver):
            _run("ip", "-n", name, "link", "set", "lo", "up")

    def start(self, name, cmd, **kw) -> subprocess.Popen:
        # `ip netns exec` execs the command: the Popen pid is the program.
        proc = subprocess.Popen(self.ns(name, *cmd), stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def teardown(self):
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                stop(proc, signal.SIGTERM)
        for name in reversed(self.made):
            _run("ip", "netns", "del", name, check=False)   # deletes its veths too
        self.made.clear()


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout=5.0):
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def _tcp_states(pid: int, port: int) -> list[str]:
    """TCP socket states on *port* in the network namespace of process *pid*."""
    states = []
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if port in (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)):
                states.append(f[3])
    return states


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def _lines_of(stream, lines: list, event: threading.Event, marker: str):
    for line in stream:
        lines.append(line)
        if marker in line:
            event.set()
    event.set()


# ---------------------------------------------------------------------------
# Test objects
# ---------------------------------------------------------------------------

def make_objects(folder: Path) -> list[dict]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import generate_uid
    out = []
    for i, (option, order, size, ts) in enumerate(OBJECTS):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = size
        ds.PixelData = os.urandom(size * size * 2)
        path = folder / f"obj{i}-{order}.dcm"
        if order == "le":
            ds.file_meta.TransferSyntaxUID = EXPLICIT_LE
            ds.save_as(path, enforce_file_format=True)
        else:
            ds.file_meta.TransferSyntaxUID = EXPLICIT_BE
            dcmwrite(path, ds, little_endian=False, implicit_vr=False, force_encoding=True)
        out.append(dict(option=option, path=path, uid=str(ds.SOPInstanceUID), ts=ts))
    return out


# ---------------------------------------------------------------------------
# The lossy transfer (once per module; every test reads its capture)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    _skip_unless_possible()
    work = tmp_path_factory.mktemp("lossy")
    objects = make_objects(work)
    stored, pcap = work / "stored", work / "lossy.pcap"
    stored.mkdir()
    link = Link()
    scp_log = open(work / "storescp.log", "w+")
    timings = {}
    t0 = time.monotonic()
    try:
        try:
            link.build()
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"cannot build network namespaces / veth pairs: {exc}")
        timings["setup"] = time.monotonic() - t0

        bridge = link.start(link.middle, [sys.executable, "-c", BRIDGE, link.if_m1,
                                          link.if_m2, LOSS, REORDER, DELAY_MS, SEED],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = bridge.stdout.readline()
        if first.strip() != "ready":
            stop(bridge)
            pytest.fail(f"lossy bridge did not start: {first}{bridge.stderr.read()}")

        scp = link.start(link.receiver, [peers.dcmtk_tool("storescp"), "-aet", "STORESCP",
                                         "-od", stored, "+B", "+uf", "+xd", "-pdu", "16384",
                                         "-dhl", "-ta", "10", "-td", "30", PORT],
                         stdout=scp_log, stderr=subprocess.STDOUT)
        tcpdump = link.start(link.receiver, ["tcpdump", "-i", link.if_r, "-n", "-s", "0",
                                             "-B", "65536", "--immediate-mode", "-U",
                                             "-w", pcap, "tcp", "port", PORT],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        td_lines: list[str] = []
        td_ready = threading.Event()
        reader = threading.Thread(target=_lines_of, daemon=True,
                                  args=(tcpdump.stderr, td_lines, td_ready, "listening on"))
        reader.start()
        _wait(lambda: "0A" in _tcp_states(scp.pid, PORT) or scp.poll() is not None,
              10, "storescp did not listen")
        assert scp.poll() is None, "storescp exited: " + Path(scp_log.name).read_text()
        td_ready.wait(10)
        assert any("listening on" in x for x in td_lines), "tcpdump: " + "".join(td_lines)

        t1 = time.monotonic()
        for obj in objects:
            left = TIMEOUT - (time.monotonic() - t1)
            if left <= 0:
                pytest.fail(f"storescu runs took over {TIMEOUT}s on the lossy link")
            res = subprocess.run(
                link.ns(link.sender, peers.dcmtk_tool("storescu"), "-aet", "STORESCU",
                        "-aec", "STORESCP", "-to", "10", "-ta", "10", "-td", "30",
                        obj["option"], "-pdu", "16384", RECEIVER_IP, PORT, obj["path"]),
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                errors="replace", timeout=left)
            assert res.returncode == 0, f"storescu {obj['option']}: {res.stdout}{res.stderr}"
        timings["transfer"] = time.monotonic() - t1

        # All connections closed (FINs and last ACKs through the bridge) before
        # tcpdump stops, so the capture holds whole sessions.
        _wait(lambda: set(_tcp_states(scp.pid, PORT)) <= {"0A", "06", "07"}, 10,
              "connections to storescp did not close")
        time.sleep(0.3)
        stop(tcpdump, signal.SIGINT)
        reader.join(5)
        stop(bridge, signal.SIGTERM)
        out = bridge.stdout.read()
        m = re.search(r"stats (.*)", out)
        bridge_stats = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
        bridge_stats = {k: int(v) for k, v in bridge_stats.items()}
        stop(scp)
    finally:
        link.teardown()
        scp_log.close()
    timings["total"] = time.monotonic() - t0
    m = re.search(r"(\d+) packets? dropped by kernel", "".join(td_lines))
    assert m is None or m.group(1) == "0", "tcpdump lost packets: " + "".join(td_lines)
    return dict(pcap=pcap, stored=stored, objects=objects, timings=timings,
                bridge=bridge_stats, tcpdump="".join(td_lines), work=work)


# ---------------------------------------------------------------------------
# Helpers on dicomwire
# ---------------------------------------------------------------------------

def streams(pcap) -> list[dict]:
    p = dw("streams", "-T", "json", pcap)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["streams"]


def expert_names(pcap) -> set[str]:
    p = dw("expert", "-T", "json", pcap)
    assert p.returncode == 0, p.stderr
    return {s["name"] for s in json.loads(p.stdout)["summary"]}


def by_uid(folder) -> dict[str, Path]:
    """SOP Instance UID -> file, for the Part 10 files in *folder*."""
    import pydicom
    out = {}
    for f in stored_files(folder):
        uid = str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
        assert uid not in out, f"two files for {uid}: {out[uid].name}, {f.name}"
        out[uid] = f
    return out


# ---------------------------------------------------------------------------
# 1. Lossy link: everything exported byte-identical
# ---------------------------------------------------------------------------

def test_lossy_link_export_byte_identical(lossy, tmp_path):
    import pydicom
    pcap, objects = lossy["pcap"], lossy["objects"]
    print(f"\ntimings {lossy['timings']}, bridge {lossy['bridge']}")

    # storescp stored every object, each in the transfer syntax intended.
    stored = by_uid(lossy["stored"])
    assert sorted(stored) == sorted(o["uid"] for o in objects), sorted(stored)
    for o in objects:
        ts = pydicom.dcmread(stored[o["uid"]], stop_before_pixels=True).file_meta.TransferSyntaxUID
        assert ts == o["ts"], (o["option"], ts)

    # The link really was lossy, and the receiver's capture shows it.
    assert lossy["bridge"].get("dropped", 0) > 0, lossy["bridge"]
    rows = [s for s in streams(pcap) if s["server"].endswith(f":{PORT}")]
    assert len(rows) == len(objects), rows
    retrans = sum(s["retransmissions"] for s in rows)
    ooo = sum(s["out_of_order"] for s in rows)
    print(f"capture: retransmissions={retrans} out_of_order={ooo} "
          f"gaps={sum(s['gaps'] for s in rows)}")
    if retrans == 0 and ooo == 0:
        pytest.fail(f"the link impairment did nothing: no retransmission and no "
                    f"out-of-order segment in the capture (bridge {lossy['bridge']})")
    # Nothing missing at the receiver: every dropped segment came again.
    assert all(s["gaps"] == 0 and s["conflicts"] == 0 for s in rows), rows
    assert all(s["close"] == "fin" for s in rows), rows

    # Export: one byte-identical data set for every stored object, no other
    # object, nothing incomplete.
    # A lossy but whole capture is no problem: --fail-on problems exits 0.
    out = tmp_path / "exported"
    p = dw("export", pcap, "-o", out, "--fail-on", "problems")
    assert p.returncode == 0, p.stderr
    assert "not exported" not in p.stderr, p.stderr
    assert f"{len(objects)} object(s) written" in p.stdout, p.stdout
    exported = by_uid(out)
    assert sorted(exported) == sorted(stored)
    for uid, f in stored.items():
        ours = exported[uid]
        assert stored_dataset(ours) == stored_dataset(f), f"{uid}: {ours.name} differs"
        assert (pydicom.dcmread(ours, stop_before_pixels=True).file_meta.TransferSyntaxUID
                == pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    assert not list(out.glob("*.incomplete"))

    names = expert_names(pcap)
    assert "dicom.message.incomplete" not in names, names
    assert "tcp.gap" not in names and "tcp.overlap.conflict" not in names, names


# ---------------------------------------------------------------------------
# 2. A real hole in one object: the others still exported, it is reported
# ---------------------------------------------------------------------------

def _tcp(frame: bytes):
    """(src port, dst port, seq, flags, payload offset, payload length) of an
    Ethernet/IPv4 TCP frame, else None."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    t = 14 + ihl
    sport, dport, seq = struct.unpack_from("!HHI", frame, t)
    doff = (frame[t + 12] >> 4) * 4
    return sport, dport, seq, frame[t + 13], t + doff, total - ihl - doff


@pytest.fixture(scope="module")
def parsed(lossy):
    """The lossy capture's frames, and per association (in the order of the
    SYNs, i.e. of the objects sent): the client port, its initial sequence
    number, the client -> server bytes (rebuilt from the frames; any copy of
    a retransmitted byte will do, they are equal: no conflicts) and the
    offset, type and length of every PDU in them."""
    from dicomwire.capture import open_capture
    frames = []
    with open_capture(str(lossy["pcap"])) as cap:
        for number, ts_ns, linktype, data, orig_len, _iface in cap:
            frames.append((number, ts_ns, linktype, bytes(data), orig_len))
    conns: dict[int, dict] = {}
    for _, _, _, data, _ in frames:
        t = _tcp(data)
        if not t or t[1] != PORT:
            continue
        sport, _, seq, flags, at, n = t
        if flags & 0x02:
            conns.setdefault(sport, dict(port=sport, isn=seq, data=bytearray()))
        c = conns.get(sport)
        if c is None or not n:
            continue
        off = (seq - c["isn"] - 1) % 2**32
        buf = c["data"]
        if len(buf) < off + n:
            buf.extend(bytes(off + n - len(buf)))
        buf[off:off + n] = data[at:at + n]
    for c in conns.values():
        buf, pos, pdus = c["data"], 0, []
        while pos + 6 <= len(buf):
            ptype, length = buf[pos], struct.unpack_from("!I", buf, pos + 2)[0]
            pdus.append((pos, ptype, length))
            pos += 6 + length
        assert pos == len(buf), f"client bytes of port {c['port']} are not whole PDUs"
        c["pdus"] = pdus
    assert len(conns) == len(lossy["objects"]), list(conns)
    return dict(frames=frames, conns=list(conns.values()))


def cut_hole(parsed, dst: Path, victim: int, lo: int, hi: int) -> tuple[int, int]:
    """Write the capture to *dst* (pcap, nanosecond time stamps) without every
    frame that carries any client byte in [lo, hi) of association *victim*.
    Returns the stream range really missing (whole segments go)."""
    c = parsed["conns"][victim]
    frames = parsed["frames"]
    linktype = frames[0][2]
    gone = []
    with open(dst, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        for number, ts_ns, lt, data, orig_len in frames:
            assert lt == linktype
            t = _tcp(data)
            if t and t[0] == c["port"] and t[1] == PORT and t[5]:
                off = (t[2] - c["isn"] - 1) % 2**32
                if off < hi and off + t[5] > lo:
                    gone.append((off, off + t[5]))
                    continue
            f.write(struct.pack("<IIII", ts_ns // 10**9, ts_ns % 10**9, len(data), orig_len))
            f.write(data)
    assert gone, "no frame removed"
    return min(a for a, _ in gone), max(b for _, b in gone)


def middle_pdata(parsed, victim: int) -> tuple[int, int]:
    """(offset, length) of the P-DATA-TF PDU in the middle of association
    *victim*'s client bytes."""
    pdata = [(off, n) for off, t, n in parsed["conns"][victim]["pdus"] if t == 4]
    assert len(pdata) > 20, len(pdata)
    return pdata[len(pdata) // 2]


def export_holed(lossy, holed: Path, damaged: str, tmp_path: Path):
    """Export *holed* with and without --keep-incomplete and check what must
    hold however the hole fell: every undamaged object exported complete and
    byte-identical, the damaged one never written as a complete file but
    reported, and with --keep-incomplete written as NAME.dcm.incomplete.
    Returns (the 'not exported' warnings, the .dcm.incomplete files)."""
    stored = by_uid(lossy["stored"])
    intact = sorted(u for u in stored if u != damaged)
    assert len(intact) == len(stored) - 1

    out = tmp_path / "exported"
    p = dw("export", holed, "-o", out)
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "not exported" in line]
    assert warnings, p.stderr
    assert any("CT Image Storage not exported" in w for w in warnings), warnings
    assert f"{len(intact)} object(s) written" in p.stdout, p.stdout
    exported = by_uid(out)
    assert sorted(exported) == intact
    for uid, f in exported.items():
        assert stored_dataset(f) == stored_dataset(stored[uid]), uid
    assert not list(out.glob("*.incomplete"))

    # --list flags exactly the damaged object's line, by its SOP Instance UID.
    p = dw("export", holed, "--list")
    assert p.returncode == 0, p.stderr
    flagged = [line for line in p.stdout.splitlines() if "(incomplete)" in line]
    assert any(damaged in line for line in flagged), p.stdout
    assert not any(u in line for u in intact for line in flagged), p.stdout

    # Incomplete objects are findings: --fail-on problems exits 1.
    p = dw("export", holed, "-o", tmp_path / "again", "--fail-on", "problems")
    assert p.returncode == 1, (p.returncode, p.stderr)

    out = tmp_path / "kept"
    p = dw("export", holed, "-o", out, "--keep-incomplete")
    assert p.returncode == 0, p.stderr
    assert "not exported" not in p.stderr, p.stderr
    incomplete = sorted(out.glob("*.dcm.incomplete"))
    assert any(damaged in f.name for f in incomplete), [f.name for f in incomplete]
    complete = sorted(out.glob("*.dcm"))
    assert sorted(by_uid_files(complete)) == intact
    for f in complete:
        uid = by_uid_files([f])
        assert stored_dataset(f) == stored_dataset(stored[next(iter(uid))]), f.name

    names = expert_names(holed)
    assert "dicom.message.incomplete" in names and "tcp.gap" in names, names
    return warnings, incomplete


def by_uid_files(files) -> dict[str, Path]:
    import pydicom
    return {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}


def test_hole_inside_pdv(lossy, parsed, tmp_path):
    """Segments lost inside one PDV's fragment data: framing survives, the
    object is reported once and the others are exported byte-identical."""
    victim = 3                                      # the deflated one
    off, length = middle_pdata(parsed, victim)
    data_lo, data_hi = off + 12, off + 6 + length   # PDU header 6, PDV header 6
    mid = (data_lo + data_hi) // 2
    holed = tmp_path / "holed.pcap"
    gap = cut_hole(parsed, holed, victim, mid, mid + 1000)
    assert data_lo < gap[0] and gap[1] < data_hi, (gap, data_lo, data_hi)

    warnings, incomplete = export_holed(lossy, holed, lossy["objects"][victim]["uid"],
                                        tmp_path)
    assert len(warnings) == 1, warnings
    assert len(incomplete) == 1, incomplete


@pytest.fixture(scope="module")
def across_header(lossy, parsed, tmp_path_factory):
    """Segments lost across the header of a P-DATA-TF in the middle of the
    second object: export_holed's findings (shared by the two tests below)."""
    tmp = tmp_path_factory.mktemp("across-header")
    victim = 1
    off, _ = middle_pdata(parsed, victim)
    holed = tmp / "holed.pcap"
    gap = cut_hole(parsed, holed, victim, off - 1000, off + 1000)
    assert gap[0] < off and off + 6 < gap[1], (gap, off)
    return export_holed(lossy, holed, lossy["objects"][victim]["uid"], tmp)


def test_hole_across_pdu_header(across_header):
    """The decoder resynchronises after the hole; the damaged object is
    reported, the others exported byte-identical (checked by the fixture)."""
    warnings, incomplete = across_header
    assert warnings and incomplete


def test_hole_across_pdu_header_reported_once(across_header):
    warnings, incomplete = across_header
    assert len(warnings) == 1, warnings
    assert len(incomplete) == 1, [f.name for f in incomplete]
