"""What the DICOM stream dissector does when its bytes are lost, wrong or end.

A capture gap inside PDV data keeps framing (its size is known: the message
is marked incomplete); a gap that swallows a header, or a header that cannot
be right (bad length, unknown type), puts the side into resync mode, cutting
the PDU short and reporting the messages it broke. When the stream closes,
what was still in flight is reported: a PDU cut short, the association ended
(``closed``, or not seen to its end when the capture ended or the flow was
dropped), messages cut. Rare events, apart from the per-PDU framing loop of
:class:`~dicomwire.plugins.dicom.dissector.DicomStream` (``ds``), which
calls in.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.association import (CAPTURE_ENDED, EVICTED, cut_text,
                                                 end_association)
from dicomwire.plugins.dicom.sidestate import PDV_DATA, SYNC

# The end of an association whose stream was not seen to its end, by the
# stream's close reason (dicomwire.tcp.Stream.close_reason).
UNSEEN_END = {"open": CAPTURE_ENDED, "evicted": EVICTED}


def gap(ds, side, offset, size, frame, ts):
    """``size`` bytes at stream ``offset`` of ``side`` are not in the capture."""
    side.late = side.head = False
    note = f"{size} bytes missing from the capture at stream offset {offset}"
    if side.state == PDV_DATA and size <= side.pdv_left:
        # Inside fragment data: framing survives, the message does not.
        side.pdv_left -= size
        side.pdu_left -= size
        side.pdu.add_problem("gap", note)
        msg = side.messages.get(side.pdv.context_id)
        if msg is not None:
            if msg.dataset_intact is None:
                msg.dataset_intact = msg.dataset_len
            msg.dataset_missing += size
            msg.problems.append(note)
        if not side.pdv_left:
            ds.pdv_end(side, frame, ts)
        return
    if side.pdu is not None:
        side.pdu.add_problem("gap", note + "; PDU cut short")
        ds.pdu_end(side, complete=False)
    for cid, msg in list(side.messages.items()):
        msg.problems.append(note)
        if msg.command is not None:
            # In its data set: the data after the resync still belongs to
            # it (one damaged object, not two); it ends incomplete.
            if msg.dataset_intact is None:
                msg.dataset_intact = msg.dataset_len
            msg.dataset_missing += size
            continue
        del side.messages[cid]
        ds.emit_message(msg, incomplete="capture gap")
    side.state, side.hbuf, side.need, side.add = SYNC, b"", 6, None


def resync(ds, side, pdu, hb, kind, text):
    """A header that cannot be right (``hb``: its 6 bytes): ``pdu`` ends
    broken, with the problem, and the side looks for the next plausible
    header from the byte after the header's first."""
    pdu.add_problem(kind, text)
    side.pdu = pdu
    ds.pdu_end(side, complete=False)
    side.state, side.need, side.hbuf = SYNC, 6, bytes(hb[1:])


def close(ds):
    """The stream ended: report what was still in flight."""
    for side in ds.sides:
        if side.pdu is not None:
            side.pdu.add_problem("gap", "stream ended inside this PDU")
            ds.pdu_end(side, complete=False)
    if ds.assoc is not None and ds.assoc.end is None:
        # An A-RELEASE-RQ without its A-RELEASE-RP is "closed" too: the
        # expert tells it apart (assoc.released).
        end_association(ds, UNSEEN_END.get(ds.stream.close_reason, "closed"))
    # Messages begun after their association ended (a P-DATA after an
    # A-ABORT, say) were never reported: report them, incomplete.
    cut = UNSEEN_END.get(ds.stream.close_reason)
    for side in ds.sides:
        for msg in list(side.messages.values()):
            msg.beyond_capture = msg.beyond_capture or cut is not None
            ds.emit_message(msg, incomplete=cut_text(cut) if cut else
                            "stream closed before the message ended")
        side.messages.clear()
