"""Annotated pcapng: every original frame, with DICOM comments on the frames
that carry DICOM (PDU summaries, expert infos, the association), written
with :class:`dicomwire.pcapng_writer.PcapngWriter` so Wireshark and tshark show them as packet comments
(``frame.comment``).

Frames are spooled to a temporary file during the one pass (the comments of
a frame may only be known later, e.g. when an association ends) and the
pcapng is written from the spool at the end. Timestamps are written at
nanosecond resolution (exact for every input), interfaces keep their link
types and names, comments already in the capture are kept.
"""

from __future__ import annotations

import struct
import tempfile

from dicomwire.hookspecs import hookimpl
from dicomwire.pcapng_writer import DEFAULT_SNAPLEN, PcapngWriter

_REC = struct.Struct("<IqIII")          # number, ts_ns, iface, orig_len, captured length


class Annotator:
    def __init__(self, out, only_dicom: bool = False, match=None):
        self.out = out
        self.only_dicom = only_dicom
        self.match = match          # -Y: keeps the frames of matching PDUs (ranges per stream)
        self.spool = tempfile.TemporaryFile(prefix="dicomwire-annotate-")
        self.comments: dict[int, list[str]] = {}
        self.written = 0
        self.commented = 0          # written frames that carry DICOM comments

    def tap(self, number, ts, linktype, data, orig, iface):
        self.spool.write(_REC.pack(number, ts, iface, orig, len(data)))
        self.spool.write(data)

    def _add(self, frame, text):
        if frame is not None:
            self.comments.setdefault(frame, []).append(text)

    @hookimpl(trylast=True)
    def dicomwire_pdu(self, pdu):
        from dicomwire.plugins.dicom.render import pdu_summary
        a = pdu.assoc
        assoc = f" [association {a.id}: {a.label()}]" if a is not None else ""
        self._add(pdu.last_frame, f"DICOM: {pdu_summary(pdu)}{assoc}")
        if pdu.first_frame != pdu.last_frame:
            self._add(pdu.first_frame, f"DICOM: {pdu.name} starts here, ends in frame "
                                       f"{pdu.last_frame}{assoc}")

    @hookimpl
    def dicomwire_capture_end(self, result):
        for i in result.expert.infos:
            for fr in i.frames:
                self._add(fr, f"Expert Info ({i.field.severity}/{i.field.group}) "
                              f"{i.field.name}: {i.message}")
        self.write(result)

    def write(self, result):
        from dicomwire.link import LinkDecoder
        reader = result.reader
        dicom_flows = set()
        by_flow: dict = {}                   # flow -> stream ids (port reuse: several)
        if self.match is not None:
            from dicomwire.link import reverse_flow
            for s in result.streams:
                f = s.client[0] + s.server[0] + struct.pack(">HH", s.client[1], s.server[1])
                for key in (f, reverse_flow(f)):
                    by_flow.setdefault(key, []).append(s.id)
        if self.only_dicom:
            from dicomwire.link import reverse_flow
            for s in result.streams:
                if s.dissector is not None and s.dissector is not False:
                    f = s.client[0] + s.server[0] + struct.pack(">HH", s.client[1], s.server[1])
                    dicom_flows |= {f, reverse_flow(f)}
        writer = PcapngWriter(self.out, application="dicomwire")
        for itf in reader.interfaces:
            writer.add_interface(itf.linktype, itf.snaplen or DEFAULT_SNAPLEN, itf.name)
        write = writer.write
        dec = LinkDecoder()
        self.spool.seek(0)
        read = self.spool.read
        while True:
            head = read(_REC.size)
            if len(head) < _REC.size:
                break
            number, ts, iface, orig, n = _REC.unpack(head)
            data = read(n)
            if self.only_dicom or self.match is not None:
                try:
                    seg = dec.decode(reader.interfaces[iface].linktype, data)
                except Exception:
                    seg = None
                if self.only_dicom and (seg is None or seg[0] not in dicom_flows):
                    continue
                if self.match is not None and not (seg is not None and any(
                        lo <= number <= hi for sid in by_flow.get(seg[0], ())
                        for lo, hi in self.match.ranges.get(sid, ()))):
                    continue
            comments = reader.comments.get(number, []) + self.comments.get(number, [])
            write(ts, data, iface=iface, orig_len=orig, comments=comments)
            self.written += 1
            self.commented += number in self.comments
        self.spool.close()
