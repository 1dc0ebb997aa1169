"""The framing state of one direction of a DICOM stream.

Each direction of a :class:`~dicomwire.plugins.dicom.dissector.DicomStream`
is a small state machine: ``HDR`` reads a PDU header, ``BODY`` collects an
association PDU, ``PDV_HDR`` / ``PDV_DATA`` stream P-DATA-TF fragments,
``SYNC`` looks for the next plausible header. :class:`Side` holds where it
is. Apart from the dissector so that its cold helpers (``losses.py``,
``association.py``) read and set that state without importing the dissector.
"""

from __future__ import annotations

HDR, BODY, PDV_HDR, PDV_DATA, SYNC = range(5)
SYNC_WINDOW = 1 << 16                    # bytes kept while searching for a header


class Side:
    """Framing state of one direction."""

    __slots__ = ("state", "hbuf", "need", "pdu", "pdu_left", "pdv", "pdv_left", "skipped",
                 "messages", "add", "lane_msg", "late", "head", "commands", "hstart")

    def __init__(self, state):
        self.state = state
        self.hbuf = b""
        self.need = 6
        self.pdu = None
        self.pdu_left = 0
        self.pdv = None
        self.pdv_left = 0
        self.skipped = 0                 # bytes discarded while resynchronising
        self.messages: dict = {}         # context id -> Message in progress
        self.add = None                  # where the current PDV's bytes go (or None)
        self.lane_msg = None             # the message a bulk lane was granted for (_give_lane)
        # The capture began mid-stream and nothing of this side was lost yet:
        # bytes before the first header, and data before the first command,
        # are what the capture did not see (not resyncs, not faults).
        self.late = state == SYNC
        self.head = self.late            # no PDU header found yet on such a side
        self.commands = 0                # command PDVs seen on this side
        self.hstart = None               # (frame, ts) of a PDU header's first byte
