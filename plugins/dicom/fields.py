"""DICOM fields: filter names as registered data (Wireshark's ``hf[]``).

Names are Wireshark's (packet-dcm.c) where it has them; ours share the
``dicom.`` namespace. :func:`pdu_values` extracts the values of one PDU, for
``show -T fields -e NAME`` now and display filters next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomwire.spec import Doc, field_docs
from dicomwire.specs.dicom import pdu as P


@dataclass(frozen=True)
class Field:
    name: str
    type: str          # uint8, uint16, uint32, string, uid, frames, float
    description: str
    #: (declaration, path in it) of a field read from the wire, so its
    #: standard reference and enumeration come from the declaration.
    spec: tuple | None = field(default=None, compare=False, repr=False)

    def doc(self) -> Doc | None:
        """The declaration's :class:`dicomwire.spec.Doc` (reference,
        enumeration), None for fields no single declaration holds."""
        if self.spec is None:
            return None
        decl, path = self.spec
        return field_docs(decl).get(path)


def _at(decl, *path):
    return (decl, path)


FIELDS = (
    # Wireshark's names
    Field("dicom.pdu.type", "uint8", "PDU Type (PS3.8 9.3)", _at(P.PDU, "pdu_type")),
    Field("dicom.pdu.len", "uint32", "PDU Length", _at(P.PDU, "length")),
    Field("dicom.assoc.version", "uint16", "Protocol Version of an A-ASSOCIATE",
          _at(P.AssociateBody, "protocol_version")),
    Field("dicom.assoc.ae.called", "string", "Called AE Title",
          _at(P.AssociateBody, "called_ae_title")),
    Field("dicom.assoc.ae.calling", "string", "Calling AE Title",
          _at(P.AssociateBody, "calling_ae_title")),
    Field("dicom.assoc.reject.result", "uint8", "A-ASSOCIATE-RJ Result",
          _at(P.AssociateRJBody, "result")),
    Field("dicom.assoc.reject.source", "uint8", "A-ASSOCIATE-RJ Source",
          _at(P.AssociateRJBody, "source")),
    Field("dicom.assoc.reject.reason", "uint8", "A-ASSOCIATE-RJ Reason",
          _at(P.AssociateRJBody, "reason")),
    Field("dicom.assoc.abort.source", "uint8", "A-ABORT Source", _at(P.AbortBody, "source")),
    Field("dicom.assoc.abort.reason", "uint8", "A-ABORT Reason", _at(P.AbortBody, "reason")),
    Field("dicom.actx", "uid", "Application Context", _at(P.ApplicationContextItem, "body")),
    Field("dicom.pctx.id", "uint8", "Presentation Context ID",
          _at(P.PresentationContextRQItem, "body", "context_id")),
    Field("dicom.pctx.result", "uint8", "Presentation Context Result (AC)",
          _at(P.PresentationContextACItem, "body", "result")),
    Field("dicom.pctx.abss.syntax", "uid", "Abstract Syntax", _at(P.AbstractSyntaxItem, "body")),
    Field("dicom.pctx.xfer.syntax", "uid", "Transfer Syntax", _at(P.TransferSyntaxItem, "body")),
    Field("dicom.userinfo.uid", "uid", "Implementation Class UID",
          _at(P.ImplementationClassUIDItem, "body")),
    Field("dicom.userinfo.version", "string", "Implementation Version",
          _at(P.ImplementationVersionNameItem, "body")),
    Field("dicom.userinfo.rolesel.sopclassuid", "uid", "SOP Class UID of a role selection",
          _at(P.RoleSelectionItem, "body", "sop_class_uid")),
    Field("dicom.userinfo.rolesel.scurole", "uint8", "SCU-role",
          _at(P.RoleSelectionItem, "body", "scu_role")),
    Field("dicom.userinfo.rolesel.scprole", "uint8", "SCP-role",
          _at(P.RoleSelectionItem, "body", "scp_role")),
    Field("dicom.userinfo.asyncneg.maxnumopsinv", "uint16", "Maximum-number-operations-invoked",
          _at(P.AsynchronousOperationsWindowItem, "body", "max_operations_invoked")),
    Field("dicom.userinfo.asyncneg.maxnumopsper", "uint16",
          "Maximum-number-operations-performed",
          _at(P.AsynchronousOperationsWindowItem, "body", "max_operations_performed")),
    Field("dicom.max_pdu_len", "uint32", "Max PDU Length",
          _at(P.MaximumLengthItem, "body", "max_length")),
    Field("dicom.pdv.len", "uint32", "PDV Length", _at(P.PDV, "length")),
    Field("dicom.pdv.ctx", "uint8", "PDV Context", _at(P.PDV, "context_id")),
    Field("dicom.pdv.flags", "uint8", "PDV Flags", _at(P.PDV, "message_control_header")),
    Field("dicom.tag", "uint32", "Tag of an element, command or data set (0xGGGGEEEE)"),
    Field("dicom.tag.vr", "string", "VR of an element"),
    Field("dicom.tag.vl", "uint32", "Value length of an element"),
    Field("dicom.tag.value.str", "string", "Value of an element, as text (text VRs; "
          "command elements of every VR)"),
    Field("dicom.tag.value.16u", "uint16", "Value of a US element (first value)"),
    Field("dicom.tag.value.32u", "uint32", "Value of a UL element (first value)"),
    # dicomwire additions
    Field("dicom.stream", "uint32", "TCP stream index"),
    Field("dicom.assoc", "uint32", "Association index"),
    Field("dicom.cmd.field", "uint16", "Command Field (0000,0100)"),
    Field("dicom.cmd.name", "string", "Command name, e.g. C-STORE-RQ"),
    Field("dicom.cmd.msgid", "uint16", "Message ID, or Message ID Being Responded To"),
    Field("dicom.cmd.status", "uint16", "Status (0000,0900)"),
    Field("dicom.cmd.sop_class", "uid", "Affected or Requested SOP Class UID"),
    Field("dicom.cmd.sop_instance", "uid", "Affected or Requested SOP Instance UID"),
    Field("dicom.rsp.time", "float", "Response time in seconds (on responses)"),
    Field("dicom.assoc.duration", "float",
          "Seconds from the A-ASSOCIATE-RQ to this PDU (on every PDU of the association)"),
    Field("dicom.rsp.request_frame", "frames", "Frame of the request a response answers"),
    Field("dicom.summary", "string", "The summary line of the PDU"),
    Field("dicom.tag.offset", "uint32", "Byte offset of an element in its command or data "
          "set"),
)
NAMES = {f.name: f for f in FIELDS}
HEX_FIELDS = {"dicom.tag"}        # BASE_HEX in Wireshark: tshark -T fields prints 0x...


def fmt_value(name: str, v) -> str:
    """A value as ``-T fields`` prints it (tshark's habits)."""
    if name in HEX_FIELDS and isinstance(v, int):
        return f"0x{v:08x}"
    return str(v)


def _strip(v) -> str:
    return (v or "").strip(" \0")


def pdu_values(pdu) -> dict[str, list]:
    """Field name -> values present in this PDU (a field may repeat)."""
    out: dict[str, list] = {}

    def put(name, value):
        if value is not None:
            out.setdefault(name, []).append(value)

    put("dicom.pdu.type", pdu.type)
    put("dicom.pdu.len", pdu.length)
    put("dicom.stream", pdu.stream.id)
    a = pdu.assoc
    if a is not None:
        put("dicom.assoc", a.id)
        if a.rq_ts is not None:
            put("dicom.assoc.duration", round((pdu.last_ts - a.rq_ts) / 1e9, 9))
        if pdu.type not in (1, 2):
            # The association's titles on every PDU of it, so filters can
            # select by AE (Wireshark has them on the A-ASSOCIATE PDUs only).
            put("dicom.assoc.ae.called", a.called_ae)
            put("dicom.assoc.ae.calling", a.calling_ae)
    d = pdu.decoded
    if d is not None and pdu.type in (1, 2):
        _associate(put, d.body)
    elif d is not None and pdu.type == 3:
        put("dicom.assoc.reject.result", d.body.result)
        put("dicom.assoc.reject.source", d.body.source)
        put("dicom.assoc.reject.reason", d.body.reason)
    elif d is not None and pdu.type == 7:
        put("dicom.assoc.abort.source", d.body.source)
        put("dicom.assoc.abort.reason", d.body.reason)
    for pdv in pdu.pdvs:
        put("dicom.pdv.len", pdv.length)
        put("dicom.pdv.ctx", pdv.context_id)
        put("dicom.pdv.flags", pdv.flags)
        m = pdv.message
        if m is None or not pdv.is_command or m.command is None:
            continue
        for tag, _kw, vr, off, size, value in m.command_elements:
            put("dicom.tag", tag)
            put("dicom.tag.vr", vr)
            put("dicom.tag.vl", size - 8)
            put("dicom.tag.offset", off)
            put("dicom.tag.value.str", value if isinstance(value, str) else
                (value.hex() if isinstance(value, bytes) else str(value)))
            if vr == "US" and isinstance(value, int):
                put("dicom.tag.value.16u", value)
            elif vr == "UL" and isinstance(value, int):
                put("dicom.tag.value.32u", value)
        _command(put, m)
        if m.request is not None and m.response_time is not None:   # not on a C-CANCEL-RQ
            put("dicom.rsp.time", round(m.response_time / 1e9, 9))
            put("dicom.rsp.request_frame", m.request.last_frame)
    return out


def _associate(put, b):
    """The fields of an A-ASSOCIATE-RQ or -AC body: version, AE titles,
    application context, presentation contexts, user information."""
    put("dicom.assoc.version", b.protocol_version)
    put("dicom.assoc.ae.called", _strip(b.called_ae_title))
    put("dicom.assoc.ae.calling", _strip(b.calling_ae_title))
    for item in b.variable_items:
        t = item.item_type
        if t == 0x10:
            put("dicom.actx", _strip(item.body))
        elif t in (0x20, 0x21):
            put("dicom.pctx.id", item.body.context_id)
            if t == 0x21:
                put("dicom.pctx.result", item.body.result)
            for sub in item.body.sub_items:
                if sub.item_type == 0x30:
                    put("dicom.pctx.abss.syntax", _strip(sub.body))
                elif sub.item_type == 0x40:
                    put("dicom.pctx.xfer.syntax", _strip(sub.body))
        elif t == 0x50:
            for sub in item.body.sub_items:
                st = sub.item_type
                if st == 0x51:
                    put("dicom.max_pdu_len", sub.body.max_length)
                elif st == 0x52:
                    put("dicom.userinfo.uid", _strip(sub.body))
                elif st == 0x55:
                    put("dicom.userinfo.version", _strip(sub.body))
                elif st == 0x54:
                    put("dicom.userinfo.rolesel.sopclassuid", _strip(sub.body.sop_class_uid))
                    put("dicom.userinfo.rolesel.scurole", sub.body.scu_role)
                    put("dicom.userinfo.rolesel.scprole", sub.body.scp_role)
                elif st == 0x53:
                    put("dicom.userinfo.asyncneg.maxnumopsinv",
                        sub.body.max_operations_invoked)
                    put("dicom.userinfo.asyncneg.maxnumopsper",
                        sub.body.max_operations_performed)


def _command(put, m):
    """The dicom.cmd.* fields of a message whose command set was decoded."""
    put("dicom.cmd.field", m.command_field)
    put("dicom.cmd.name", m.name)
    put("dicom.cmd.msgid", m.message_id)
    put("dicom.cmd.status", m.status)
    put("dicom.cmd.sop_class", m.sop_class_uid)
    put("dicom.cmd.sop_instance", m.sop_instance_uid)


def message_values(m, keywords=(), tags: bool = False) -> dict[str, list]:
    """Field name -> values of one DIMSE message (for filters on objects):
    its command fields, its association, and data set attributes by keyword
    (only during ``dicomwire_message``, while the data set is readable);
    with ``tags``, also the dicom.tag* fields of the data set elements."""
    out: dict[str, list] = {}

    def put(name, value):
        if value is not None:
            out.setdefault(name, []).append(value)

    a = m.assoc
    if a is not None:
        put("dicom.assoc", a.id)
        put("dicom.stream", a.stream.id)
        put("dicom.assoc.ae.called", a.called_ae)
        put("dicom.assoc.ae.calling", a.calling_ae)
    put("dicom.pdv.ctx", m.context_id)
    put("frame.number", m.last_frame)
    if m.command is not None:
        for tag, _kw, vr, _off, _len, value in m.command_elements:
            put("dicom.tag", tag)
            put("dicom.tag.vr", vr)
        _command(put, m)
    if tags and m.has_dataset:
        for k, v in dataset_tag_values(m).items():
            out.setdefault(k, []).extend(v)
    if keywords and m.has_dataset:
        try:
            ds = m.dataset()
        except Exception:
            ds = None
        for kw in keywords:
            if ds is not None and kw in ds:
                v = ds.data_element(kw).value
                many = hasattr(v, "__iter__") and not isinstance(v, (str, bytes))
                out[kw] = [str(x) for x in v] if many else [str(v)]
    return out


TAG_FIELDS = tuple(f.name for f in FIELDS if f.name.startswith("dicom.tag"))
TEXT_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
VALUE_MAX = 1024         # longer values are not read for dicom.tag.value.*


def dataset_tag_values(m) -> dict[str, list]:
    """The dicom.tag* fields of a message's data set elements, from a walk
    of their headers (values read only for short text and US/UL elements).
    Only during ``dicomwire_message``; a broken structure gives the
    elements before the break."""
    import struct

    from dicomwire.plugins.dicom.model import inflate_dataset
    from dicomwire.specs.dicom import dataset
    out: dict[str, list] = {}
    if m.encoding is None:
        return out               # transfer syntax unknown: nothing decoded as a guess
    implicit, little, deflated = m.encoding
    buf = m.dataset_buffer()
    try:
        if deflated:
            try:
                buf = inflate_dataset(bytes(buf))       # the one inflate policy (bounded)
            except ValueError:
                return out
        vr_of = _dictionary_vr if implicit else None
        try:
            for off, tag, vr, length, vpos, _depth in dataset.walk(buf, implicit, little,
                                                                   vr_of=vr_of):
                if tag >> 16 == 0xFFFE:
                    continue
                vr = vr or (vr_of(tag) if vr_of else None)
                out.setdefault("dicom.tag", []).append(tag)
                out.setdefault("dicom.tag.offset", []).append(off)
                out.setdefault("dicom.tag.vl", []).append(length)
                if vr:
                    out.setdefault("dicom.tag.vr", []).append(vr)
                if length > VALUE_MAX or vpos + length > len(buf):
                    continue
                if vr in TEXT_VRS:
                    v = bytes(buf[vpos:vpos + length]).decode("latin-1").strip(" \0")
                    out.setdefault("dicom.tag.value.str", []).append(v)
                elif vr in ("US", "UL") and length >= (2 if vr == "US" else 4):
                    fmt = ("<" if little else ">") + ("H" if vr == "US" else "I")
                    out.setdefault("dicom.tag.value.16u" if vr == "US" else
                                   "dicom.tag.value.32u", []).append(
                        struct.unpack_from(fmt, buf, vpos)[0])
        except dataset.DataSetError:
            pass                 # reported by the expert check; keep what came before
    finally:
        if hasattr(buf, "close"):
            buf.close()
    return out


def _dictionary_vr(tag):
    from pydicom.datadict import dictionary_VR
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0]
