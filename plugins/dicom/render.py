"""Text for people, per PDU: Wireshark-style summary lines, trees, JSON records.

What ``show`` prints for each PDU as it goes (the summary line, the ``-V``
tree of its decoded fields and PDVs with their command sets, the ``-T json``
record) and the helpers every renderer shares: UID names, sizes, a decoded
spec value as plain data (secrets masked), item offsets from the located
parse. The negotiation dump of ``assoc`` is in ``render_assoc.py``, the
decoded data set of ``show -V`` in ``render_dataset.py``.
"""

from __future__ import annotations

from dicomwire.specs.dicom import pdu as spec
from dicomwire.specs.dicom import tables
from dicomwire.specs.dicom.uids import UID_NAMES


def uid_name(uid: str | None) -> str:
    """The registered name of a UID (PS3.6 Annex A; a generated table, so
    no pydicom import for summary lines)."""
    return UID_NAMES.get(uid, "") if uid else ""


def size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def message_summary(msg) -> str:
    name = msg.name
    mid = msg.message_id
    out = f"{name} ID={mid}" if mid is not None else name
    if msg.is_response:
        st = msg.status
        if st is not None:
            cat, meaning = tables.status_info(st, msg.command_field,
                                              sop_class=msg.exchange_sop_class)
            # Long meanings (Pending, Warning details) belong to -V; the line stays short.
            out += f" ({meaning})" if meaning and len(meaning) <= 40 else f" ({cat} 0x{st:04X})"
    elif msg.request is not None:          # a C-CANCEL-RQ
        out += f" (cancels {msg.request.name} in frame {msg.request.last_frame})"
    else:
        cls = uid_name(msg.sop_class_uid)
        if cls:
            out += f" {cls}"
    return out


_BULK: dict = {}        # (last-fragment flag, PDV length) -> summary text


def pdu_summary(pdu) -> str:
    pdvs = pdu.pdvs
    if pdu.type == 4 and len(pdvs) == 1 and not pdvs[0].flags & 1 and not pdu.problems:
        # The bulk of a transfer: one data set fragment, nearly always of the
        # same size, so the text is cached.
        pdv = pdvs[0]
        key = (pdv.flags & 2, pdv.length)
        text = _BULK.get(key)
        if text is None:
            frag = "Data Set" if pdv.flags & 2 else "Data Set fragment"
            text = f"P-DATA, {frag} ({size(pdv.length - 2)})"
            if len(_BULK) < 4096:
                _BULK[key] = text
        return text
    a = pdu.assoc
    calling = (a.calling_ae if a else None) or "?"
    called = (a.called_ae if a else None) or "?"
    t = pdu.type
    if t == 1:
        s = f"A-ASSOCIATE request {calling} --> {called}"
    elif t == 2:
        s = f"A-ASSOCIATE accept {calling} <-- {called}"
    elif t == 3:
        d = pdu.decoded
        why = ""
        if d is not None:
            why = " (" + tables.reject_text(d.body.result, d.body.source, d.body.reason) + ")"
        s = f"A-ASSOCIATE reject {calling} <-- {called}{why}"
    elif t == 4:
        parts = []
        for pdv in pdu.pdvs:
            msg = pdv.message
            if pdv.is_command:
                if pdv.is_last and msg is not None:
                    parts.append(message_summary(msg))
                else:
                    parts.append("Command fragment")
            else:
                frag = "Data Set" if pdv.is_last else "Data Set fragment"
                parts.append(f"{frag} ({size(pdv.length - 2)})")
        s = "P-DATA, " + ", ".join(parts) if parts else "P-DATA"
    elif t == 5:
        s = "A-RELEASE request"
    elif t == 6:
        s = "A-RELEASE response"
    elif t == 7:
        d = pdu.decoded
        s = "A-ABORT"
        if d is not None:
            s += " (" + tables.abort_text(d.body.source, d.body.reason) + ")"
    else:
        s = pdu.name
    if pdu.problems:
        s += " [" + "; ".join(pdu.problems[:2]) + ("; ..." if len(pdu.problems) > 2 else "") + "]"
    return s


SECRET_FIELDS = {"primary_field", "secondary_field", "server_response"}


def plain(value, show_secrets: bool, key: str = ""):
    """A decoded spec value (Construct Containers and ListContainers) as
    plain JSON-able data; user identity secrets masked."""
    if key in SECRET_FIELDS and not show_secrets and value:
        return "********"
    if isinstance(value, dict):
        return {k: plain(v, show_secrets, k) for k, v in value.items()
                if not k.startswith("_")}
    if isinstance(value, (list, tuple)):
        return [plain(v, show_secrets) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        try:
            s = b.decode("ascii")
            if s.isprintable() or not s.strip("\0 "):
                return s
        except UnicodeDecodeError:
            pass
        return b.hex()
    if hasattr(value, "__int__") and not isinstance(value, (int, float, bool)):
        return int(value)         # Construct EnumIntegerString and the like
    return value


def item_offsets(pdu) -> dict[tuple, int]:
    """Where every item and sub-item of an association PDU starts in its
    stream, by path (``("body", "variable_items", 2, "body", "sub_items",
    0)``): the located parse of the spec runtime over the PDU's bytes (the
    salvaged part when the whole does not parse)."""
    try:
        located = spec.parse_located(spec.PDU, pdu.body)[1]
    except spec.SpecError:
        located = []
        spec.salvage_associate(pdu.body, located)
    return {f.path: pdu.offset + f.offset for f in located if isinstance(f.path[-1], int)}


def add_offsets(plain: dict, pdu) -> dict:
    """Put the stream offset of every item and sub-item into a decoded
    association PDU (as ``offset``), from :func:`item_offsets`."""
    body = plain.get("body")
    if not (isinstance(body, dict) and isinstance(body.get("variable_items"), list)):
        return plain
    where = item_offsets(pdu)

    def visit(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    visit(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                at = where.get(path + (i,))
                if isinstance(v, dict) and "item_type" in v and at is not None:
                    visit(v, path + (i,))
                    v["offset"] = at

    visit(plain, ())
    return plain


def _tree_lines(value, indent: int, out: list, key: str = ""):
    pad = "    " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "offset" and "item_type" in value:
                continue                 # shown on the item's own line
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                _tree_lines(v, indent + 1, out, k)
            else:
                extra = ""
                if isinstance(v, str) and v.startswith("1.2.840.10008"):
                    name = uid_name(v)
                    extra = f" ({name})" if name else ""
                out.append(f"{pad}{k}: {v!r}{extra}" if isinstance(v, str) else f"{pad}{k}: {v}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            at = v.get("offset") if isinstance(v, dict) and "item_type" in v else None
            out.append(f"{pad}[{i}]" + (f" (stream offset {at})" if at is not None else ""))
            _tree_lines(v, indent + 1, out, key)


def _command_elements(msg):
    for tag, kw, vr, _off, _len, value in msg.command_elements:
        extra = ""
        if kw == "CommandField":
            extra = f" ({tables.COMMAND_FIELDS.get(value, '?')})"
        elif vr == "UI":
            name = uid_name(value)
            extra = f" ({name})" if name else ""
        elif kw == "Status":
            meaning = tables.status_info(value, msg.command_field,
                                         sop_class=msg.exchange_sop_class)[1]
            extra = f" ({meaning})"
        elif kw == "EventTypeID":
            name = tables.event_type_name(msg.exchange_sop_class, value)
            extra = f" ({name})" if name else ""
        elif kw == "ActionTypeID":
            name = tables.action_type_name(msg.exchange_sop_class, value)
            extra = f" ({name})" if name else ""
        shown = f"0x{value:04X}" if kw == "Status" else value
        yield f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} {kw}: {shown}{extra}"


def pdu_tree(pdu, show_secrets: bool = False) -> str:
    """The decoded tree of one PDU, indented, for ``show -V``."""
    out = [f"    {pdu.name} (type 0x{pdu.type:02x}), PDU length {pdu.length}, "
           f"stream offset {pdu.offset}, frames {pdu.first_frame}-{pdu.last_frame}"]
    if pdu.lead:
        out.append(f"    ({pdu.lead} bytes before this PDU: the rest of a PDU sent before "
                   f"the capture began)")
    if pdu.skipped:
        out.append(f"    ({pdu.skipped} bytes skipped before this PDU to resynchronise)")
    if pdu.decoded is not None:
        _tree_lines(add_offsets(plain(pdu.decoded, show_secrets), pdu), 2, out)
    for pdv in pdu.pdvs:
        kind = "Command" if pdv.is_command else "Data Set"
        last = "Last Fragment" if pdv.is_last else "More Fragments"
        at = f", stream offset {pdv.offset}" if pdv.offset is not None else ""
        out.append(f"        PDV: context {pdv.context_id}, flags 0x{pdv.flags:02x} "
                   f"({kind}, {last}), length {pdv.length}{at}")
        msg = pdv.message
        if msg is not None and pdv.is_command and msg.command is not None:
            for line in _command_elements(msg):
                out.append("            " + line)
            req = msg.request
            if req is not None and msg.response_time is not None:
                out.append(f"            [Response to {req.name} ID={req.message_id} in frame "
                           f"{req.last_frame}, after {msg.response_time / 1e6:.3f} ms]")
            elif req is not None:
                out.append(f"            [Cancels {req.name} ID={req.message_id} in frame "
                           f"{req.last_frame}]")
            if msg.cancel is not None:
                out.append(f"            [Cancelled by the C-CANCEL-RQ in frame "
                           f"{msg.cancel.last_frame}]")
    for p in pdu.problems:
        out.append(f"    [problem] {p}")
    return "\n".join(out)


def pdu_json(pdu, t0: int, src: str, dst: str, show_secrets: bool = False) -> dict:
    """One PDU as the documented JSON record of ``show -T json|jsonl``;
    ``t0``: the origin of times in ns (the capture's first frame)."""
    doc = {
        "frame": pdu.last_frame, "first_frame": pdu.first_frame,
        "time": round((pdu.last_ts - t0) / 1e9, 9),
        "first_time": round((pdu.first_ts - t0) / 1e9, 9),
        "src": src, "dst": dst, "stream": pdu.stream.id,
        "association": pdu.assoc.id if pdu.assoc is not None else None,
        "pdu_type": pdu.type, "pdu_name": pdu.name, "pdu_length": pdu.length,
        "offset": pdu.offset, "summary": pdu_summary(pdu), "problems": list(pdu.problems),
    }
    if pdu.decoded is not None:
        doc["fields"] = add_offsets(plain(pdu.decoded, show_secrets), pdu)
    if pdu.type == 4:
        pdvs = []
        for pdv in pdu.pdvs:
            p = {"context_id": pdv.context_id, "flags": pdv.flags, "length": pdv.length,
                 "command": pdv.is_command, "last": pdv.is_last, "offset": pdv.offset}
            msg = pdv.message
            if msg is not None and pdv.is_command and msg.command is not None:
                p["command_set"] = {kw: v for _t, kw, _vr, _o, _l, v in msg.command_elements
                                    if not isinstance(v, bytes)}
            pdvs.append(p)
        doc["pdvs"] = pdvs
    return doc
