"""One direction of a TCP stream (:class:`Direction`): its reassembly state
and counters, the in-order update (:meth:`Direction.advance`,
:meth:`Direction.push`) and the bulk lane (:meth:`Direction.grant_lane`,
:meth:`Direction.ignore`, :meth:`Direction.take_lane`), which the walk of
:mod:`dicomwire.fastpath` (compiled too: ``core/_fastwalk.c`` reads and sets
these attributes by name) and the reassembler (:mod:`dicomwire.tcp`,
:mod:`dicomwire.slowpath`) share; :func:`decline`, a stream no dissector
takes. Everything here is importable from :mod:`dicomwire.fastpath` too.
"""

from __future__ import annotations

MASK = 0xFFFFFFFF


class _Discard:
    """The parts of a lane nobody reads (:meth:`Direction.ignore`): dropped."""
    __slots__ = ()

    def append(self, _part):
        pass

    def __iadd__(self, _parts):
        return self


DISCARD = _Discard()
IGNORED = 1 << 62         # the room of an ignored direction's lane: never used up


class Direction:
    """One direction of a TCP stream: its reassembly state and counters.

    The state moves forward through :meth:`advance` (in-order bytes) and
    the reassembler's gaps; ``expect`` is ``next_seq`` while the fast path
    applies (nothing held, no FIN), else None. The lane is granted and
    taken back only through :meth:`grant_lane` and :meth:`take_lane`.
    """

    __slots__ = ("next_seq", "expect", "next_off", "isn", "ooo", "ooo_heap", "ooo_bytes",
                 "fin_off", "ack", "history", "hist_bytes", "frames", "retrans", "gaps",
                 "gap_bytes", "lost", "conflicts", "keepalives", "ooo_segments", "zero_windows",
                 "lane", "lane_parts", "lane_granted")

    def __init__(self):
        self.next_seq = None      # sequence number of the next expected byte
        self.expect = None        # next_seq while the fast path applies, else None
        self.next_off = 0         # stream offset of the next expected byte
        self.isn = self.fin_off = self.lane_parts = None
        self.ooo = {}             # offset -> (payload, missing, frame, ts)
        self.ooo_heap = []
        self.ack = None           # latest ack field this direction sent with ACK set
        self.history = []         # recently delivered payloads, ending at next_off
        self.ooo_bytes = self.hist_bytes = self.frames = self.retrans = self.ooo_segments = 0
        self.gaps = self.gap_bytes = self.conflicts = self.keepalives = 0
        self.lost = None          # [(offset, size)] of the gaps (dicomwire.slowpath)
        self.zero_windows = 0     # ACKs (not SYN, FIN, RST) advertising a zero window
        self.lane = self.lane_granted = 0   # lane: bytes the walk may still append (grant_lane)

    @property
    def bytes(self) -> int:
        """Payload bytes delivered: the stream so far, less what was missing."""
        return self.next_off - self.gap_bytes

    def advance(self, parts, n: int, history: int) -> int:
        """The in-order update: ``parts`` (payloads, ``n`` bytes in all)
        continue the stream. Returns the stream offset of their first byte.
        They are kept as the retransmission history, at most about
        ``history`` bytes (the older half is dropped past it)."""
        off = self.next_off
        self.next_off = off + n
        self.expect = self.next_seq = (self.next_seq + n) & MASK
        h = self.history
        h += parts
        self.hist_bytes += n
        if self.hist_bytes > history:
            # By count: C-speed, and what is kept still ends at next_off.
            del h[:len(h) // 2]
            self.hist_bytes = sum(map(len, h))
        return off

    def push(self, payload, n: int, history: int, lanes: bool = True) -> int | None:
        """The in-order update for one payload of ``n`` bytes; into the lane
        if one is open (and ``lanes``) and it fits: None, nobody is told.
        Else its stream offset: deliver it."""
        off = self.advance((payload,), n, history)
        if n < self.lane and lanes:
            self.lane -= n
            self.lane_parts.append(payload)
            return None
        return off

    def forget_history(self):
        """Nothing delivered so far can be compared with any more (a gap, the close)."""
        self.history = []
        self.hist_bytes = 0

    # -- the bulk lane --

    def grant_lane(self, room: int, parts: list):
        """Let the walk append the next in-order payloads of this direction
        to ``parts`` instead of delivering them, each while it is shorter
        than what is left of ``room`` bytes. The grantor takes the lane back
        (:meth:`take_lane`) before it handles anything else of the stream."""
        self.lane = self.lane_granted = min(room, IGNORED)  # 64 bits: the compiled walk's
        self.lane_parts = parts

    def ignore(self):
        """No dissector reads this direction: its in-order payloads go into a
        lane that drops them (bursts: one state update, no call)."""
        self.lane = self.lane_granted = IGNORED
        self.lane_parts = DISCARD

    def take_lane(self) -> int:
        """End the lane; returns the bytes appended to its parts meanwhile
        (they are delivered: account for them)."""
        used = self.lane_granted - self.lane
        self.lane = self.lane_granted = 0
        self.lane_parts = None
        return used


def decline(stream):
    """No dissector takes ``stream``: its payloads go into lanes that drop them."""
    stream.dissector = False
    for dr in stream.dirs:
        dr.ignore()
