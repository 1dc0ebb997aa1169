"""Association bookkeeping of the DICOM stream dissector (PS3.8 9.3.2-9.3.8).

The dissector frames PDUs; what they mean for the association is here: an
association PDU read to its end is decoded (what a broken A-ASSOCIATE still
says is salvaged) and applied, the :class:`~dicomwire.plugins.dicom.model.Association`
is opened and ended with its hooks, the negotiation (the A-ASSOCIATE-RQ/-AC
items) is copied onto it, and DIMSE responses are paired with their requests
by message ID. A few calls per association and one pairing per message:
apart from the per-PDU framing loop, which only calls in. ``ds`` is the
:class:`~dicomwire.plugins.dicom.dissector.DicomStream`.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.model import Association
from dicomwire.specs.dicom import pdu as spec
from dicomwire.specs.dicom.tables import C_CANCEL_RQ

# Streams still open when the capture ended (or dropped from the flow table):
# what came after was not seen, so it is never reported as a fault.
CAPTURE_ENDED = "capture ended"
EVICTED = "not followed further (tcp.max_flows)"

#: Association PDUs decoded lately, by their bytes. A device proposes the
#: same contexts on each of its associations, and decoding DCMTK storescu's
#: 128 presentation contexts takes about 6 ms (the -AC 4 ms): a capture of
#: many such associations spent a quarter of its pass here. The decoded
#: Containers are only read (renderers copy them, :func:`render.plain`).
DECODED_KEPT = 16
_decoded: dict[bytes, object] = {}


def cut_text(how: str) -> str:
    """Why a message was cut when its stream was not seen to its end."""
    return ("the capture ended before the message did" if how == CAPTURE_ENDED else
            "dicomwire stopped following the stream (tcp.max_flows) before the message ended")


def open_association(ds, negotiated: bool, rq=None) -> Association:
    """The stream's current association; a new one for an A-ASSOCIATE-RQ
    (``rq``: the decoded PDU, applied before the start hook so it sees the AE
    titles) or for the first PDU of a stream whose negotiation was missed."""
    if ds.assoc is None or (negotiated and ds.assoc.end is not None):
        ds.assoc = Association(ds.stream, ds.counter.next(), negotiated)
        if rq is not None:
            _apply_rq(ds.assoc, rq)
        ds.host.call("dicomwire_association_start", assoc=ds.assoc, expert=ds.host.expert)
    elif rq is not None:
        _apply_rq(ds.assoc, rq)
    return ds.assoc


def end_association(ds, how, ts=None):
    """End the current association ``how`` (released, aborted, ...): its
    messages in flight are reported incomplete, then the end hook."""
    a = ds.assoc
    if a is None or a.end is not None:
        return
    cut = how in (CAPTURE_ENDED, EVICTED)
    for side in ds.sides:
        for msg in list(side.messages.values()):
            msg.beyond_capture = msg.beyond_capture or cut
            ds.emit_message(msg, incomplete=cut_text(how) if cut else
                            f"association {how} before the message ended")
        side.messages.clear()
    a.end = how
    a.end_ts = ts if ts is not None else ds.stream.last_ts
    ds.host.call("dicomwire_association_end", assoc=a, expert=ds.host.expert)


def association_pdu(ds, side, direction, body, frame, ts):
    """An association PDU read to its end (``body``: its last bytes):
    decoded, applied to the association, reported."""
    pdu = side.pdu
    pdu.body = pdu.body + body
    pdu.last_frame, pdu.last_ts = frame, ts
    try:
        pdu.decoded = _decode(pdu.body)
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
    _apply_pdu(ds, pdu, frame, ts)
    ds.pdu_end(side, complete=True)


def _decode(body):
    """``spec.parse_pdu(body)``, once for bytes seen lately (errors are
    not kept: each PDU reports its own)."""
    body = bytes(body)
    hit = _decoded.get(body)
    if hit is None:
        hit = spec.parse_pdu(body)
        if len(_decoded) >= DECODED_KEPT:
            del _decoded[next(iter(_decoded))]         # the oldest
        _decoded[body] = hit
    return hit


def _apply_pdu(ds, pdu, frame, ts):
    d = pdu.decoded
    t = pdu.type
    if t == 1:
        a = open_association(ds, True, d)
        pdu.assoc = a
        a.rq, a.rq_frame, a.rq_ts = d, frame, ts
        a.rq_whole = not pdu.problems       # not salvaged: every item is there
        return
    a = ds.assoc or open_association(ds, False)
    pdu.assoc = a
    if t == 2:
        a.ac, a.ac_frame, a.ac_ts = d, frame, ts
        if d is not None:
            _apply_ac(a, d)
    elif t == 3:
        a.rj = d
        a.rj_frame = frame
        end_association(ds, "rejected", ts)
    elif t == 5:
        a.released = True
    elif t == 6:
        a.released = True
        end_association(ds, "released", ts)
    elif t == 7:
        a.abort, a.abort_frame = d, frame
        end_association(ds, "aborted", ts)


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


def pair(a, msg):
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
