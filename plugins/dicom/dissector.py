"""The DICOM stream dissector: PDU framing and PDV -> messages, the hot path.

Per direction a small state machine (:mod:`~dicomwire.plugins.dicom.sidestate`)
frames PDUs (PS3.8 9.3.1: type, reserved, 32-bit big-endian length) straight
from the reassembled TCP bytes. P-DATA is never buffered whole: PDV headers
(PS3.8 9.3.5.1) are read as they come and fragment bytes go straight to the
message they belong to, so a 2 GB object in one PDU costs no more memory than
a small one; inside a long data set PDV the engine's fast path appends them
itself (the bulk lane). Association PDUs (at most 1 MiB) are collected, then
decoded and applied by :mod:`~dicomwire.plugins.dicom.association`.

This module is the per-segment and per-PDU code; the rare events are apart:
gaps, the stream's close and resynchronisation in
:mod:`~dicomwire.plugins.dicom.losses` (a gap inside PDV data keeps framing;
one that swallows a header, a malformed header, or a capture that began
mid-stream puts the side into resync mode, which looks for the next plausible
PDU header: :func:`detect.find_pdu`), association start, end and pairing in
:mod:`~dicomwire.plugins.dicom.association`.
"""

from __future__ import annotations

from dicomwire.plugins.dicom import detect, losses, tsinfer
from dicomwire.plugins.dicom.association import (  # noqa: F401 (CAPTURE_ENDED, EVICTED re-exported)
    CAPTURE_ENDED, EVICTED, association_pdu, open_association, pair)
from dicomwire.plugins.dicom.model import Message, PDU, PDV
from dicomwire.plugins.dicom.sidestate import (  # noqa: F401 (SYNC_WINDOW re-exported)
    BODY, HDR, PDV_DATA, PDV_HDR, SYNC, SYNC_WINDOW, Side)
from dicomwire.specs.dicom import pdu as spec

_PDU_HEADER = spec.PDU_HEADER           # PS3.8 9.3.1, derived from the Construct spec
_PDV_HEADER = spec.PDV_HEADER            # PS3.8 9.3.5.1
STALL_NS = 100_000_000                   # a longer pause inside a data set is a sender stall
LANE_MIN = 4096                          # smaller bulk lanes are not worth granting


class DicomStream:
    """Dissector for one TCP stream (see ``dicomwire_stream_dissector``)."""

    def __init__(self, stream, host, config, counter):
        self.stream = stream
        self.host = host
        self.config = config
        self.counter = counter           # shared association numbering
        start = HDR if stream.client_known else SYNC
        self.sides = (Side(start), Side(start))
        self.assoc = None                # the current Association
        self.lanes = 0                   # bulk lanes granted to the pipeline
        # Record where each PDV's bytes lie (Message.spans) only when a plugin
        # asked (config.state["dicom.spans"]): a million PDVs cost a million tuples.
        self.spans = bool(config.state.get("dicom.spans"))

    # -- the bulk lane (dicomwire.fastpath.Direction.grant_lane) --

    def _give_lane(self, direction, side):
        """Inside a data set PDV, let the engine's fast path append the next
        segments to the message itself, up to the PDV's last byte and no
        further than the message may grow before it must spill to disk."""
        add = side.add
        if add is None or getattr(add, "__func__", None) is not Message.add_data:
            return
        msg = add.__self__
        room, parts = msg.lane()
        room = min(side.pdv_left - 1, room)
        if room < LANE_MIN:
            return
        self.stream.dirs[direction].grant_lane(room, parts)
        side.lane_msg = msg
        self.lanes += 1

    def _take_lanes(self):
        """Take the lanes back, accounting for the bytes the fast path appended."""
        for direction, side in enumerate(self.sides):
            msg = side.lane_msg
            if msg is not None:
                side.lane_msg = None
                used = self.stream.dirs[direction].take_lane()
                if used:
                    side.pdv_left -= used
                    side.pdu_left -= used
                    msg.took(used)
        self.lanes = 0

    # -- stream dissector interface --

    def data(self, direction, offset, payload, frame, ts):
        if self.lanes:
            self._take_lanes()
        side = self.sides[direction]
        n = len(payload)
        if side.state == PDV_DATA and side.pdv_left > n:
            # The bulk of a transfer: a segment wholly inside a PDV's data.
            side.pdv_left -= n
            side.pdu_left -= n
            if side.add is not None:
                side.add(payload)
                self._give_lane(direction, side)
            return
        self._data(side, direction, offset, payload, n, frame, ts)
        if side.state == PDV_DATA and side.add is not None:
            self._give_lane(direction, side)

    def _data(self, side, direction, offset, payload, n, frame, ts):
        # offset + pos is always the stream offset of payload[pos].
        pos = 0
        while pos < n:
            st = side.state
            if st == PDV_DATA:
                take = side.pdv_left
                if take >= n - pos:
                    take = n - pos
                    chunk = payload if pos == 0 else payload[pos:]
                else:
                    chunk = payload[pos:pos + take]
                pos += take
                side.pdv_left -= take
                side.pdu_left -= take
                if side.add is not None:
                    side.add(chunk)
                if not side.pdv_left:
                    self.pdv_end(side, frame, ts)
            elif st == SYNC:
                buf = side.hbuf + bytes(payload[pos:])
                base = offset + pos - len(side.hbuf)
                at, keep = detect.find_pdu(buf)
                if at is None:
                    side.skipped += keep
                    rest = buf[keep:]
                    if len(rest) > SYNC_WINDOW:
                        side.skipped += len(rest) - SYNC_WINDOW
                        rest = rest[-SYNC_WINDOW:]
                    side.hbuf = rest
                    return
                side.skipped += at
                side.hbuf, side.state, side.need = b"", HDR, 6
                payload, pos, n, offset = buf, at, len(buf), base
            elif not side.hbuf and n - pos >= side.need and st != BODY:
                # Whole header in this chunk: no copy.
                at = pos
                pos += 6
                if st == HDR:
                    self._header(side, direction, offset + at, payload[at:pos], frame, ts)
                else:
                    self._pdv_header(side, direction, offset + at, payload[at:pos], frame, ts)
            else:
                if st == HDR and not side.hbuf:
                    side.hstart = (frame, ts)    # a PDU begins in the frame of its first byte
                take = min(n - pos, side.need - len(side.hbuf))
                side.hbuf += payload[pos:pos + take]
                pos += take
                if len(side.hbuf) == side.need:
                    hb, side.hbuf = bytes(side.hbuf), b""
                    if st == HDR:
                        self._header(side, direction, offset + pos - 6, hb, *side.hstart)
                    elif st == PDV_HDR:
                        self._pdv_header(side, direction, offset + pos - 6, hb, frame, ts)
                    else:
                        association_pdu(self, side, direction, hb, frame, ts)

    def gap(self, direction, offset, size, frame, ts):
        if self.lanes:
            self._take_lanes()
        losses.gap(self, self.sides[direction], offset, size, frame, ts)

    def close(self):
        if self.lanes:
            self._take_lanes()
        losses.close(self)

    # -- framing steps --

    def _header(self, side, direction, offset, hb, frame, ts):
        ptype, _res, length = _PDU_HEADER.unpack(hb)
        pdu = PDU(self.stream, direction, ptype, length, offset, frame, ts)
        pdu.assoc = self.assoc
        if side.skipped:
            if side.head:
                pdu.lead = side.skipped
            else:
                pdu.skipped = side.skipped
            side.skipped = 0
        side.head = False
        if _res:
            pdu.add_problem("reserved", f"reserved byte of the PDU header is 0x{_res:02x}, not 0")
        if ptype == 4:
            side.pdu, side.pdu_left = pdu, length
            if self.assoc is None:
                pdu.assoc = open_association(self, False)
            if length < 6:
                pdu.add_problem("pdu_length", f"P-DATA-TF length {length} is too short for a PDV")
                side.hbuf, side.need = b"", 6
                self._skip_body(side, length)
                return
            side.state, side.need = PDV_HDR, 6
        elif 1 <= ptype <= 7:
            if length > detect.MAX_ASSOC_PDU:
                losses.resync(self, side, pdu, hb, "pdu_length",
                              f"{pdu.name} length {length} is implausible; resynchronising")
                return
            side.pdu = pdu
            pdu.body = bytes(hb)
            side.hbuf = bytearray()          # amortised appends for the body
            side.state, side.need = BODY, length
            if length == 0:
                association_pdu(self, side, direction, b"", frame, ts)
        else:
            losses.resync(self, side, pdu, hb, "malformed",
                          f"unknown PDU type 0x{ptype:02x}; resynchronising")

    def _skip_body(self, side, length):
        # A P-DATA whose body cannot hold a PDV: read past it as opaque bytes.
        # Context id -1 (no real context): a gap among these bytes must not be
        # counted against a message in progress on context 0.
        side.pdv = PDV(-1, 0, length + 2, None)
        side.add = None
        side.pdv_left = length
        side.state = PDV_DATA if length else HDR
        if not length:
            self.pdu_end(side, complete=True)

    def _pdv_header(self, side, direction, offset, hb, frame, ts):
        plen, cid, flags = _PDV_HEADER.unpack(hb)
        pdu = side.pdu
        side.pdu_left -= 6
        if plen < 2 or plen - 2 > side.pdu_left:
            losses.resync(self, side, pdu, hb, "pdv_length",
                          f"invalid PDV length {plen} at stream offset {offset} "
                          f"({side.pdu_left + 2} bytes left in the PDU); resynchronising")
            return
        pdv = PDV(cid, flags, plen, offset)
        pdu.pdvs.append(pdv)
        if flags > 3:
            pdu.add_problem("pdv_flags", f"invalid PDV flags 0x{flags:02x} (context {cid})")
        if not cid & 1:
            pdu.add_problem("pdv_ctx", f"PDV on even presentation context id {cid}")
        msg = side.messages.get(cid)
        if flags & 1:
            if msg is not None and msg.command is not None:
                # A new command while the previous message still waits for its data set.
                self.emit_message(msg, incomplete="a new command arrived before its data set")
                msg = None
            elif msg is not None and msg.has_dataset and not msg._cmd_parts:
                # Data set fragments whose command was not captured, cut short by
                # a new command: report them alone, not glued to this command.
                self.emit_message(msg,
                                  incomplete="a new command arrived before the data set ended")
                msg = None
            if msg is None:
                msg = side.messages[cid] = Message(self.assoc, direction, cid, frame, ts)
        elif msg is None:
            # Data without a command: the command was not captured.
            msg = side.messages[cid] = Message(self.assoc, direction, cid, frame, ts)
            if side.late and not side.commands:
                msg.beyond_capture = True
                msg.problems.append("data set without its command (sent before the capture began)")
            else:
                msg.problems.append("data set without its command (not captured)")
        elif msg.command is None and msg._cmd_parts:
            msg.problems.append("data set PDV before the last command fragment")
        side.pdv, side.pdv_left = pdv, plen - 2
        if self.spans:
            msg.spans.append((offset + 6, plen - 2, flags & 1))
        if flags & 1:
            side.commands += 1
            side.add = msg.add_command
        else:
            if not msg.has_dataset:
                msg.has_dataset = True
                # The receiver's zero windows before the transfer, to count those during it.
                msg.zero_windows = -self.stream.dirs[1 - direction].zero_windows
            elif ts - msg.last_ts > STALL_NS:
                # The sender paused between two fragments of its data set.
                msg.stalls += 1
                msg.stall_ns += ts - msg.last_ts
            side.add = msg.add_data
        side.state = PDV_DATA
        if not side.pdv_left:
            self.pdv_end(side, frame, ts)

    def pdv_end(self, side, frame, ts):
        """The current PDV of ``side`` read to its end (or its last byte lost)."""
        pdv = side.pdv
        side.add = None
        # Frames and times are recorded per PDV, not per chunk.
        side.pdu.last_frame, side.pdu.last_ts = frame, ts
        msg = side.messages.get(pdv.context_id) if pdv.offset is not None else None
        if msg is not None:
            msg.last_frame, msg.last_ts = frame, ts
            if not pdv.flags & 1:
                msg.dataset_frame = frame
        if pdv.offset is not None and pdv.flags & 2:
            if msg is not None:
                if pdv.flags & 1:
                    msg.finish_command()
                    pdv.message = msg
                    if self.assoc is not None:
                        # Paired now, before this PDU is rendered: a response
                        # that carries a data set shows its request at once.
                        pair(self.assoc, msg)
                    if not msg.expects_dataset:
                        del side.messages[pdv.context_id]
                        self.emit_message(msg)
                else:
                    pdv.message = msg
                    del side.messages[pdv.context_id]
                    self.emit_message(msg)
        if side.pdu_left <= 0:
            self.pdu_end(side, complete=True)
        elif side.pdu_left < 6:
            # Too few bytes left for a PDV header: skip them, keeping the PDU
            # framing (reading a header would run into the next PDU).
            side.pdu.add_problem("pdv_length", f"{side.pdu_left} byte(s) at the end of the P-DATA-TF, "
                                     f"too short for a PDV")
            self._skip_body(side, side.pdu_left)
        else:
            side.state, side.need = PDV_HDR, 6

    def pdu_end(self, side, complete):
        """The current PDU of ``side`` read to its end or its break: reported."""
        pdu = side.pdu
        side.pdu = None
        side.state, side.need = HDR, 6
        if pdu is None:
            return
        pdu.complete = complete and not pdu.problems
        if pdu.assoc is None:
            pdu.assoc = self.assoc
        if pdu.assoc is not None:
            pdu.assoc.pdus += 1
        self.host.call("dicomwire_pdu", pdu=pdu, expert=self.host.expert)

    def emit_message(self, msg, incomplete=None):
        """A message complete, or cut (``incomplete``: why), to the hooks."""
        a = self.assoc
        if msg.command is None and msg._cmd_parts:
            msg.finish_command()
        if incomplete:
            msg.problems.append(f"incomplete: {incomplete}")
        msg.complete = (not incomplete and msg.command is not None and not msg.dataset_missing
                        and (msg.has_dataset or not msg.expects_dataset))
        if msg.has_dataset:
            msg.zero_windows += self.stream.dirs[1 - msg.direction].zero_windows
        if a is not None:
            msg.assoc = a
            a.messages += 1
            if not msg.paired:
                pair(a, msg)
            if msg.has_dataset:
                tsinfer.infer_context(a, msg, not incomplete and not msg.dataset_missing)
        try:
            self.host.call("dicomwire_message", message=msg, expert=self.host.expert)
        finally:
            msg.release()
            # Reported by now: a chain of requests reusing one unanswered ID
            # would otherwise hold every one of them (a long association).
            msg.duplicate_of = None

