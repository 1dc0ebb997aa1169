"""The DICOM stream dissector: PDU framing, association state, PDV -> messages.

Per direction a small state machine frames PDUs (PS3.8 9.3.1: type, reserved,
32-bit big-endian length) straight from the reassembled TCP bytes. P-DATA is
never buffered whole: PDV headers (PS3.8 9.3.5.1) are read as they come and
fragment bytes go straight to the message they belong to, so a 2 GB object
in one PDU costs no more memory than a small one. Association PDUs (at most
1 MiB) are collected and decoded with the Construct specs.

A capture gap inside PDV data keeps framing (the gap's size is known: the
message is marked incomplete); a gap that swallows a header, a malformed
header, or a capture that began mid-stream puts the side into resync mode,
which looks for the next plausible PDU header (:func:`detect.find_pdu`).
"""

from __future__ import annotations

from dicomwire.plugins.dicom import detect, tsinfer
from dicomwire.plugins.dicom.model import Association, Message, PDU, PDV
from dicomwire.specs.dicom import pdu as spec
from dicomwire.specs.dicom.tables import C_CANCEL_RQ

HDR, BODY, PDV_HDR, PDV_DATA, SYNC = range(5)
_PDU_HEADER = spec.PDU_HEADER           # PS3.8 9.3.1, derived from the Construct spec
_PDV_HEADER = spec.PDV_HEADER            # PS3.8 9.3.5.1
SYNC_WINDOW = 1 << 16                    # bytes kept while searching for a header
STALL_NS = 100_000_000                   # a longer pause inside a data set is a sender stall
LANE_MIN = 4096                          # smaller bulk lanes are not worth granting
# Streams still open when the capture ended (or dropped from the flow table):
# what came after was not seen, so it is never reported as a fault.
CAPTURE_ENDED = "capture ended"
EVICTED = "not followed further (tcp.max_flows)"
UNSEEN_END = {"open": CAPTURE_ENDED, "evicted": EVICTED}


class _Side:
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
        self.messages: dict[int, Message] = {}   # context id -> message in progress
        self.add = None                  # where the current PDV's bytes go (or None)
        self.lane_msg = None             # the message a bulk lane was granted for (_give_lane)
        # The capture began mid-stream and nothing of this side was lost yet:
        # bytes before the first header, and data before the first command,
        # are what the capture did not see (not resyncs, not faults).
        self.late = state == SYNC
        self.head = self.late            # no PDU header found yet on such a side
        self.commands = 0                # command PDVs seen on this side
        self.hstart = None               # (frame, ts) of a PDU header's first byte


class DicomStream:
    """Dissector for one TCP stream (see ``dicomwire_stream_dissector``)."""

    def __init__(self, stream, host, config, counter):
        self.stream = stream
        self.host = host
        self.config = config
        self.counter = counter           # shared association numbering
        start = HDR if stream.client_known else SYNC
        self.sides = (_Side(start), _Side(start))
        self.assoc: Association | None = None
        self.lanes = 0                   # bulk lanes granted to the pipeline

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

    # -- association --

    def _association(self, negotiated: bool, rq=None) -> Association:
        """The current association; a new one for an A-ASSOCIATE-RQ (``rq``:
        the decoded PDU, applied before the start hook so it sees the AE
        titles) or for the first PDU of a stream whose negotiation was missed."""
        if self.assoc is None or (negotiated and self.assoc.end is not None):
            self.assoc = Association(self.stream, self.counter.next(), negotiated)
            if rq is not None:
                _apply_rq(self.assoc, rq)
            self.host.call("dicomwire_association_start", assoc=self.assoc,
                           expert=self.host.expert)
        elif rq is not None:
            _apply_rq(self.assoc, rq)
        return self.assoc

    def _end_association(self, how, ts=None):
        a = self.assoc
        if a is None or a.end is not None:
            return
        cut = how in (CAPTURE_ENDED, EVICTED)
        for side in self.sides:
            for msg in list(side.messages.values()):
                msg.beyond_capture = msg.beyond_capture or cut
                self._emit_message(msg, incomplete=_cut_text(how) if cut else
                                   f"association {how} before the message ended")
            side.messages.clear()
        a.end = how
        a.end_ts = ts if ts is not None else self.stream.last_ts
        self.host.call("dicomwire_association_end", assoc=a, expert=self.host.expert)

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
                    self._pdv_end(side, frame, ts)
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
                        self._body(side, direction, hb, frame, ts)

    def gap(self, direction, offset, size, frame, ts):
        if self.lanes:
            self._take_lanes()
        side = self.sides[direction]
        side.late = side.head = False
        note = f"{size} bytes missing from the capture at stream offset {offset}"
        if side.state == PDV_DATA and size <= side.pdv_left:
            # Inside fragment data: framing survives, the message does not.
            side.pdv_left -= size
            side.pdu_left -= size
            side.pdu.add_problem("gap", note)
            msg = side.messages.get(side.pdv.context_id)
            if msg is not None:
                msg.dataset_missing += size
                msg.problems.append(note)
            if not side.pdv_left:
                self._pdv_end(side, frame, ts)
            return
        if side.pdu is not None:
            side.pdu.add_problem("gap", note + "; PDU cut short")
            self._pdu_end(side, complete=False)
        for cid, msg in list(side.messages.items()):
            msg.problems.append(note)
            if msg.command is not None:
                # In its data set: the data after the resync still belongs to
                # it (one damaged object, not two); it ends incomplete.
                msg.dataset_missing += size
                continue
            del side.messages[cid]
            self._emit_message(msg, incomplete="capture gap")
        side.state, side.hbuf, side.need, side.add = SYNC, b"", 6, None

    def close(self):
        if self.lanes:
            self._take_lanes()
        for side in self.sides:
            if side.pdu is not None:
                side.pdu.add_problem("gap", "stream ended inside this PDU")
                self._pdu_end(side, complete=False)
        if self.assoc is not None and self.assoc.end is None:
            # An A-RELEASE-RQ without its A-RELEASE-RP is "closed" too: the
            # expert tells it apart (assoc.released).
            self._end_association(UNSEEN_END.get(self.stream.close_reason, "closed"))
        # Messages begun after their association ended (a P-DATA after an
        # A-ABORT, say) were never reported: report them, incomplete.
        cut = UNSEEN_END.get(self.stream.close_reason)
        for side in self.sides:
            for msg in list(side.messages.values()):
                msg.beyond_capture = msg.beyond_capture or cut is not None
                self._emit_message(msg, incomplete=_cut_text(cut) if cut else
                                   "stream closed before the message ended")
            side.messages.clear()

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
                pdu.assoc = self._association(False)
            if length < 6:
                pdu.add_problem("pdu_length", f"P-DATA-TF length {length} is too short for a PDV")
                side.hbuf, side.need = b"", 6
                self._skip_body(side, length)
                return
            side.state, side.need = PDV_HDR, 6
        elif 1 <= ptype <= 7:
            if length > detect.MAX_ASSOC_PDU:
                pdu.add_problem("pdu_length", f"{pdu.name} length {length} is implausible; resynchronising")
                side.pdu = pdu
                self._pdu_end(side, complete=False)
                side.state, side.need = SYNC, 6
                side.hbuf = bytes(hb[1:])
                return
            side.pdu = pdu
            pdu.body = bytes(hb)
            side.hbuf = bytearray()          # amortised appends for the body
            side.state, side.need = BODY, length
            if length == 0:
                self._body(side, direction, b"", frame, ts)
        else:
            pdu.add_problem("malformed", f"unknown PDU type 0x{ptype:02x}; resynchronising")
            side.pdu = pdu
            self._pdu_end(side, complete=False)
            side.state, side.need = SYNC, 6
            side.hbuf = bytes(hb[1:])

    def _skip_body(self, side, length):
        # A P-DATA whose body cannot hold a PDV: read past it as opaque bytes.
        # Context id -1 (no real context): a gap among these bytes must not be
        # counted against a message in progress on context 0.
        side.pdv = PDV(-1, 0, length + 2, None)
        side.add = None
        side.pdv_left = length
        side.state = PDV_DATA if length else HDR
        if not length:
            self._pdu_end(side, complete=True)

    def _pdv_header(self, side, direction, offset, hb, frame, ts):
        plen, cid, flags = _PDV_HEADER.unpack(hb)
        pdu = side.pdu
        side.pdu_left -= 6
        if plen < 2 or plen - 2 > side.pdu_left:
            pdu.add_problem("pdv_length",
                f"invalid PDV length {plen} at stream offset {offset} "
                f"({side.pdu_left + 2} bytes left in the PDU); resynchronising")
            self._pdu_end(side, complete=False)
            side.state, side.need, side.hbuf = SYNC, 6, bytes(hb[1:])
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
                self._emit_message(msg, incomplete="a new command arrived before its data set")
                msg = None
            elif msg is not None and msg.has_dataset and not msg._cmd_parts:
                # Data set fragments whose command was not captured, cut short by
                # a new command: report them alone, not glued to this command.
                self._emit_message(msg,
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
            self._pdv_end(side, frame, ts)

    def _pdv_end(self, side, frame, ts):
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
                        _pair(self.assoc, msg)
                    if not msg.expects_dataset:
                        del side.messages[pdv.context_id]
                        self._emit_message(msg)
                else:
                    pdv.message = msg
                    del side.messages[pdv.context_id]
                    self._emit_message(msg)
        if side.pdu_left <= 0:
            self._pdu_end(side, complete=True)
        elif side.pdu_left < 6:
            # Too few bytes left for a PDV header: skip them, keeping the PDU
            # framing (reading a header would run into the next PDU).
            side.pdu.add_problem("pdv_length", f"{side.pdu_left} byte(s) at the end of the P-DATA-TF, "
                                     f"too short for a PDV")
            self._skip_body(side, side.pdu_left)
        else:
            side.state, side.need = PDV_HDR, 6

    def _body(self, side, direction, body, frame, ts):
        pdu = side.pdu
        pdu.body = pdu.body + body
        pdu.last_frame, pdu.last_ts = frame, ts
        try:
            pdu.decoded = spec.parse_pdu(pdu.body)
        except spec.SpecError as e:
            # Construct says "stream read less than specified amount" when an
            # item overruns its parent: Wireshark's invalid item length too.
            text = str(e)
            pdu.add_problem("item_length" if "length" in text or "read less" in text
                            else "malformed",
                            f"malformed {pdu.name}: {e}")
            if pdu.type in (1, 2):
                # Decoded as far as possible: AE titles and the well-formed items.
                pdu.decoded = spec.salvage_associate(pdu.body)
        self._association_pdu(pdu, direction, frame, ts)
        self._pdu_end(side, complete=True)

    def _pdu_end(self, side, complete):
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

    # -- association PDUs (PS3.8 9.3.2-9.3.8) --

    def _association_pdu(self, pdu, direction, frame, ts):
        d = pdu.decoded
        t = pdu.type
        if t == 1:
            a = self._association(True, d)
            pdu.assoc = a
            a.rq, a.rq_frame, a.rq_ts = d, frame, ts
            a.rq_whole = not pdu.problems       # not salvaged: every item is there
            return
        a = self.assoc or self._association(False)
        pdu.assoc = a
        if t == 2:
            a.ac, a.ac_frame, a.ac_ts = d, frame, ts
            if d is not None:
                _apply_ac(a, d)
        elif t == 3:
            a.rj = d
            a.rj_frame = frame
            self._end_association("rejected", ts)
        elif t == 5:
            a.released = True
        elif t == 6:
            a.released = True
            self._end_association("released", ts)
        elif t == 7:
            a.abort, a.abort_frame = d, frame
            self._end_association("aborted", ts)

    def _emit_message(self, msg, incomplete=None):
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
                _pair(a, msg)
            if msg.has_dataset:
                tsinfer.infer_context(a, msg, not incomplete and not msg.dataset_missing)
        try:
            self.host.call("dicomwire_message", message=msg, expert=self.host.expert)
        finally:
            msg.release()


def _cut_text(how: str) -> str:
    return ("the capture ended before the message did" if how == CAPTURE_ENDED else
            "dicomwire stopped following the stream (tcp.max_flows) before the message ended")


def _text(v) -> str:
    """AE titles and UIDs: padding (spaces, NULs) is not significant (PS3.5 6.2)."""
    return (v or "").strip(" \0")


def _apply_rq(a, d):
    b = d.body
    a.calling_ae = _text(b.calling_ae_title)
    a.called_ae = _text(b.called_ae_title)
    for item in b.variable_items:
        t = item.item_type
        if t == 0x10:
            a.application_context = a.application_contexts[0] = _text(item.body)
        elif t == 0x20:
            pc = a.context(item.body.context_id)
            for sub in item.body.sub_items:
                if sub.item_type == 0x30:
                    pc.abstract_syntax = _text(sub.body)
                elif sub.item_type == 0x40:
                    pc.transfer_syntaxes.append(_text(sub.body))
        elif t == 0x50:
            _apply_user_info(a, item.body.sub_items, 0)


def _apply_ac(a, d):
    for item in d.body.variable_items:
        t = item.item_type
        if t == 0x10:
            a.application_contexts[1] = _text(item.body)
        elif t == 0x21:
            pc = a.context(item.body.context_id)
            pc.result = item.body.result
            for sub in item.body.sub_items:
                if sub.item_type == 0x40:
                    pc.transfer_syntax = _text(sub.body)
        elif t == 0x50:
            _apply_user_info(a, item.body.sub_items, 1)


def _apply_user_info(a, subs, side):
    impl_uid = impl_ver = None
    for sub in subs:
        t = sub.item_type
        if t == 0x51:
            a.max_pdu[side] = sub.body.max_length
        elif t == 0x52:
            impl_uid = _text(sub.body)
        elif t == 0x55:
            impl_ver = _text(sub.body)
        elif t == 0x54:
            a.roles.setdefault(_text(sub.body.sop_class_uid), [None, None])[side] = (
                sub.body.scu_role, sub.body.scp_role)
        elif t == 0x53:
            a.async_window[side] = (sub.body.max_operations_invoked,
                                    sub.body.max_operations_performed)
        elif t == 0x56:
            a.extended.setdefault(_text(sub.body.sop_class_uid), [None, None])[side] = bytes(
                sub.body.service_class_application_information)
        elif t == 0x57:
            a.common_extended[_text(sub.body.sop_class_uid)] = (
                _text(sub.body.service_class_uid),
                [_text(r.uid) for r in sub.body.related_general_sop_classes])
        elif t == 0x58:
            a.user_identity = sub.body
        elif t == 0x59:
            a.user_identity_ac = sub.body
    a.implementation[side] = (impl_uid, impl_ver)


def _pair(a, msg):
    """Pair responses with requests by message ID (PS3.7 9.3.1); a C-CANCEL-RQ
    with the request it cancels (PS3.7 9.3.2.3, 9.1.2.1.6)."""
    msg.paired = True
    mid = msg.message_id
    if mid is None:
        return
    if msg.command_field == C_CANCEL_RQ:
        req = a.pending.get((msg.direction, mid))
        if req is not None:
            msg.request, req.cancel = req, msg
        return
    if not msg.is_response:
        # A request whose ID is still waiting for its response: the older
        # one can no longer be told apart (an expert check reports it).
        d = msg.direction
        msg.duplicate_of = a.pending.get((d, mid))
        a.pending[(d, mid)] = msg
        if msg.duplicate_of is None:
            a.outstanding[d] += 1
        msg.outstanding = a.outstanding[d]
        return
    key = (1 - msg.direction, mid)
    req = a.pending.get(key)
    if req is None:
        return
    msg.request = req
    msg.response_time = msg.first_ts - req.last_ts
    st = msg.status
    if st is None or st not in (0xFF00, 0xFF01):
        del a.pending[key]
        a.outstanding[key[0]] -= 1
