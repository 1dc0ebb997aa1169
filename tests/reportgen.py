"""Captures for the report's tests and benchmark: whole associations made
of dicomgen's PDUs, carried by capgen's TCP conversations, at the times the
caller chooses (pauses before chosen steps, several associations at once).

A step is ``(direction, payload)`` or ``(direction, payload, pause)``:
``pause`` seconds pass before that step's segment (0: the client's).
"""

from __future__ import annotations

import capgen as g
from dicomgen import (AC, ABORT, CT_STORAGE, NO_DATA, REJECT, RELEASE_RP, RELEASE_RQ, RQ,
                      VERIFICATION, element, encode_command, pdata)

CLIENT, SERVER, PORT = "10.0.0.1", "10.0.0.2", 104
STEP_NS = 1_000_000                    # 1 ms between segments unless paused


def echo(mid: int = 1, pause: float = 0.0) -> list:
    rq = encode_command(dict(CommandField=0x0030, MessageID=mid,
                             AffectedSOPClassUID=VERIFICATION, CommandDataSetType=NO_DATA))
    rsp = encode_command(dict(CommandField=0x8030, MessageIDBeingRespondedTo=mid,
                              AffectedSOPClassUID=VERIFICATION, CommandDataSetType=NO_DATA,
                              Status=0))
    return [(0, pdata((1, 3, rq))), (1, pdata((1, 3, rsp)), pause)]


def store(mid: int = 2, status: int = 0, instance: str = "1.2.826.0.1.3680043.9.7",
          dataset: bytes | None = None) -> list:
    """A C-STORE of a small CT data set (dicomgen's, with ``instance`` as its
    SOP Instance UID) and its response."""
    if dataset is None:
        dataset = (element(0x0008, 0x0016, CT_STORAGE.encode())
                   + element(0x0008, 0x0018, instance.encode())
                   + element(0x0010, 0x0010, b"DOE^JANE")
                   + element(0x7FE0, 0x0010, bytes(range(256)) * 4))
    rq = encode_command(dict(CommandField=0x0001, MessageID=mid, Priority=0,
                             AffectedSOPClassUID=CT_STORAGE, AffectedSOPInstanceUID=instance,
                             CommandDataSetType=0))
    rsp = encode_command(dict(CommandField=0x8001, MessageIDBeingRespondedTo=mid,
                              AffectedSOPClassUID=CT_STORAGE, AffectedSOPInstanceUID=instance,
                              CommandDataSetType=NO_DATA, Status=status))
    return [(0, pdata((3, 3, rq)) + pdata((3, 2, dataset))), (1, pdata((3, 3, rsp)))]


def association(*body, end: str = "release") -> list:
    """Negotiation, the body's steps, then a release (or "abort", or
    "none": the capture ends with the association open)."""
    tail = {"release": [(0, RELEASE_RQ), (1, RELEASE_RP)], "abort": [(0, ABORT)],
            "none": []}[end]
    return [(0, RQ), (1, AC), *[s for part in body for s in part], *tail]


def rejected() -> list:
    return [(0, RQ), (1, REJECT)]


def timed(steps: list, start_ns: int = 0, cport: int = 40000) -> list:
    """(ts_ns, IP packet) of one TCP connection carrying ``steps``."""
    pkts = g.exchange(CLIENT, SERVER, cport, PORT, [(s[0], s[1]) for s in steps])
    pauses = {2 + 2 * k: s[2] for k, s in enumerate(steps) if len(s) > 2 and s[2]}
    out, ts = [], start_ns
    for i, p in enumerate(pkts):
        ts += int(pauses.get(i, 0) * 1e9) + (STEP_NS if i else 0)
        out.append((ts, p))
    return out


def pcap(*connections) -> bytes:
    """A pcap of timed connections, their frames merged in time order (so
    connections that overlap in time interleave)."""
    frames = sorted((f for conn in connections for f in conn), key=lambda f: f[0])
    return g.pcap([(ts, g.ethernet(p)) for ts, p in frames])
