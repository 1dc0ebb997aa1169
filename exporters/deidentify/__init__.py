"""``dicomwire deidentify``: the capture without patient data, the traffic
kept (PS3.15 Annex E, Basic Application Level Confidentiality Profile).

Two passes and a check. The first (:class:`Deidentifier`, a plugin of the
one-pass pipeline) reads every PDU and message and plans, per stream
direction, same-length patches by stream offset (an
:class:`dicomwire.rewrite.Edits`): data set values by the profile
(:mod:`.plan`), SOP Instance UIDs in command sets, the user identity of
A-ASSOCIATE (:mod:`.assoc`); deflated data sets are deflated again, their
PDV and PDU lengths rebuilt (:mod:`.deflated`, the only length changes);
the byte ranges it understood are kept, and everything else of a DICOM
stream (what came before the first PDU header, bytes skipped to
resynchronise, data sets that cannot be read: an unknown transfer syntax,
bytes missing, a broken structure) is blanked and reported. The second (:func:`dicomwire.rewrite.rewrite_capture`)
copies the capture with those patches, frame by frame. The self-check
(:mod:`.check`) decodes the output again and searches it for every original
value. TLS streams and streams that are not DICOM are copied as they are.
"""

from __future__ import annotations

import bisect
from collections import Counter

from dicomwire.exporters.deidentify.assoc import plan_associate
from dicomwire.exporters.deidentify.deflated import Lengths, redeflate
from dicomwire.exporters.deidentify.plan import (NeedWhole, Profile, Tally, plan_command,
                                                 plan_dataset, plan_prefix)
from dicomwire.exporters.deidentify.values import Mapper
from dicomwire.hookspecs import hookimpl
from dicomwire.rewrite import Edits
from dicomwire.specs.dicom.burned_in import SOP_CLASSES as BURNED_IN_CLASSES
from dicomwire.specs.dicom.dataset import DataSetError

HEAD = 256 << 10            # a data set is first planned from its head (pixels come last)


class Deidentifier:
    """The first pass: plans the edits of every DICOM stream direction."""

    def __init__(self, profile: Profile, mapper: Mapper):
        self.profile, self.mapper = profile, mapper
        self.tally = Tally()
        self.edits: dict = {}               # (stream id, direction) -> Edits
        self.blanked: list[str] = []        # what was blanked, and why (first 1000)
        self.blank_counts: Counter = Counter()
        self.messages = self.datasets = 0
        self.tls_streams: set = set()
        self.burned_in: Counter = Counter()     # SOP Class UID -> data sets likely burned in
        self.lengths = Lengths()            # deflated data sets: PDV/PDU length changes
        self.where: dict = {}               # (stream id, direction) -> [(offset, what, frame)]

    def _edits(self, stream, direction) -> Edits | None:
        if stream.tls is not None:
            self.tls_streams.add(stream.id)
            return None
        key = (stream.id, direction)
        e = self.edits.get(key)
        if e is None:
            e = self.edits[key] = Edits(strict=True)
        return e

    def _blank(self, why: str, frame):
        self.blank_counts[why] += 1
        if len(self.blanked) < 1000:
            self.blanked.append(f"frame {frame}: {why}")

    @hookimpl
    def dicomwire_configure(self, config):
        config.state["dicom.spans"] = True      # Message.spans: where each PDV lies

    @hookimpl
    def dicomwire_pdu(self, pdu):
        e = self._edits(pdu.stream, pdu.direction)
        if e is None:
            return
        start = pdu.offset
        if pdu.lead or pdu.skipped:
            self._blank("bytes outside any PDU (capture began mid-PDU, or resync)",
                        pdu.first_frame)
        if pdu.type == 4:
            key = (pdu.stream.id, pdu.direction)
            if self.lengths.see_pdu(key, pdu):
                self.lengths.settle(key, e)
            if not pdu.problems:
                e.keep(start, start + 6 + pdu.length)
            else:
                e.keep(start, start + 6)
                for pdv in pdu.pdvs:
                    if pdv.offset is not None:
                        e.keep(pdv.offset, pdv.offset + 4 + pdv.length)
        elif 1 <= pdu.type <= 7 and pdu.decoded is not None and pdu.body is not None:
            e.keep(start, start + len(pdu.body))
            for at, new in plan_associate(pdu.body, self.profile.hosts, self.mapper,
                                          self.tally):
                e.put(start + at, new)
        else:
            self._blank(f"{pdu.name} that does not parse", pdu.first_frame)

    @hookimpl
    def dicomwire_message(self, message):
        m = message
        a = m.assoc
        if a is None:
            return
        e = self._edits(a.stream, m.direction)
        if e is None:
            return
        self.messages += 1
        if m.spans:                         # to name a patch no frame carried (check.unapplied)
            self.where.setdefault((a.stream.id, m.direction), []).append(
                (m.spans[0][0], m.name, m.first_frame))
        cmd = [(o, n) for o, n, c in m.spans if c]
        data = [(o, n) for o, n, c in m.spans if not c]
        if cmd:
            try:
                _apply(e, cmd, plan_command(m.command_bytes, self.profile, self.mapper,
                                            self.tally))
            except DataSetError as err:
                _blank_spans(e, cmd)
                self._blank(f"{m.name} command set that does not parse ({err})",
                            m.first_frame)
        if data:
            self.datasets += 1
            self.tally.burned_in = False
            why = self._plan_data(m, e, data)
            if self.tally.burned_in or m.sop_class_uid in BURNED_IN_CLASSES:
                self.burned_in[m.sop_class_uid or ""] += 1
            if why:
                _blank_spans(e, data)
                self._blank(f"{m.name} data set: {why}", m.dataset_frame or m.last_frame)

    def _plan_data(self, m, e, data) -> str | None:
        """Plan a message's data set; the reason it must be blanked instead."""
        partial = m.dataset_missing or not m.complete
        if partial and m.command is None:
            return "incomplete (its start is not in the capture)"
        enc = m.encoding
        if enc is None:
            return "transfer syntax unknown"
        if partial:
            if enc[2]:
                return "deflated and incomplete (bytes missing from the capture, or cut)"
            return self._plan_partial(m, e, data, enc)
        total = m.dataset_len
        if total != sum(n for _o, n in data):
            return "its bytes do not match its PDVs"
        if enc[2]:
            return self._plan_deflated(m, e, data)
        try:
            try:
                head = m.dataset_head(HEAD) if total > HEAD else m.dataset_bytes()
                patches = plan_dataset(head, enc[0], enc[1], total, self.profile,
                                       self.mapper, self.tally)
            except NeedWhole:
                buf = m.dataset_buffer()
                try:
                    patches = plan_dataset(buf, enc[0], enc[1], total, self.profile,
                                           self.mapper, self.tally)
                finally:
                    if hasattr(buf, "close"):
                        buf.close()
        except (DataSetError, NeedWhole) as err:
            return f"does not parse ({err})"
        _apply(e, data, patches)
        return None

    def _plan_deflated(self, m, e, data) -> str | None:
        try:
            new = redeflate(m, self.profile, self.mapper, self.tally)
        except ValueError as err:
            return f"deflated, {err}"
        name, frame = m.name, m.dataset_frame or m.last_frame

        def failed(why):
            _blank_spans(e, data)
            self._blank(f"{name} data set: {why}", frame)
        key = (m.assoc.stream.id, m.direction)
        self.lengths.plan(key, m, data, new, failed)
        self.lengths.settle(key, e)
        return None

    CONFLICT = ("retransmitted bytes that differ from the first copy (tcp.overlap.conflict): "
                "blanked in every copy")

    @hookimpl
    def dicomwire_capture_end(self, result):
        self.lengths.finish(self.edits)
        # Which copy the peer kept is unknown, and only the first was read
        # and planned: the bytes that differ are blanked in every copy.
        for key, spans in getattr(result, "conflicts", {}).items():
            e = self.edits.get(key)
            if e is None or not e.strict:
                continue
            for off, size, frame in spans:
                e.blank_over(off, size)
                self._blank(self.CONFLICT, frame)
        if getattr(result, "conflicts_lost", 0):
            self._blank(f"{result.conflicts_lost} more conflicting retransmission(s) NOT "
                        f"blanked (too many)", None)


    PARTIAL = "incomplete data set: walked up to the first byte missing, the rest blanked"

    def _plan_partial(self, m, e, data, enc) -> str | None:
        """A data set cut by a gap or the capture's end: what precedes the
        first missing byte planned, the rest blanked (a reason: all blanked)."""
        held = m.dataset_len if m.dataset_intact is None else m.dataset_intact
        buf = m.dataset_buffer()
        view = memoryview(buf)
        try:
            with view[:held] as head:
                patches, stop = plan_prefix(head, enc[0], enc[1], self.profile, self.mapper,
                                            self.tally)
        except DataSetError as err:
            return f"incomplete, and what is there does not parse ({err})"
        finally:
            view.release()
            if hasattr(buf, "close"):
                buf.close()
        _apply(e, data, patches)
        _blank_from(e, data, stop)
        self._blank(self.PARTIAL, m.dataset_frame or m.last_frame)
        return None


def _blank_from(e: Edits, spans, rel: int):
    """Blank a set's bytes from ``rel`` (relative to its first) to its end."""
    at = 0
    for off, n in spans:
        if at + n > rel:
            skip = max(0, rel - at)
            e.blank(off + skip, n - skip)
        at += n


def _blank_spans(e: Edits, spans):
    for o, n in spans:
        e.blank(o, n)


def _apply(e: Edits, spans, patches):
    """Patches relative to a set's first byte -> stream offsets, across the
    PDV fragments ``spans`` it crossed in."""
    if not patches:
        return
    starts, at = [], 0
    for _o, n in spans:
        starts.append(at)
        at += n
    for rel, new in patches:
        size = new if isinstance(new, int) else len(new)
        i = bisect.bisect_right(starts, rel) - 1
        done = 0
        while done < size and i < len(spans):
            off, n = spans[i]
            inside = rel + done - starts[i]
            take = min(n - inside, size - done)
            if isinstance(new, int):
                e.blank(off + inside, take)
            else:
                e.put(off + inside, new[done:done + take])
            done += take
            i += 1
