"""What the DICOM pack decodes: associations, PDUs, PDVs and DIMSE messages.

These objects are what hooks receive and renderers show. Field names follow
PS3.8 (association, PDUs) and PS3.7 (messages). A message's data set bytes
are held by the class it is built on, :class:`~dicomwire.plugins.dicom.spool.DataSetSpool`
(memory bounds, spilling to disk); what they mean (transfer syntax, decoding,
inflation) is here.
"""

from __future__ import annotations

import zlib

from dicomwire.plugins.dicom.spool import DataSetSpool, writev_all  # noqa: F401 (re-exported)
from dicomwire.specs.dicom import dataset, tables
from dicomwire.specs.dicom.command import NO_DATA_SET, decode_command

# Transfer syntaxes the network decoding needs to know (PS3.5 A.1-A.5).
from dicomwire.specs.dicom.tables import (DEFLATED_LE, EXPLICIT_BE,  # noqa: F401 (re-exported)
                                          EXPLICIT_LE, IMPLICIT_LE)

MAX_COMMAND = 1 << 20       # command set bytes kept (real ones: a few hundred)
# Decoding a deflated data set (dataset()) inflates it in memory: at most
# INFLATE_CAP bytes, and at most INFLATE_RATIO times its wire size (real data
# sets stay far below; a deflate bomb reaches 1000x) unless under INFLATE_FLOOR.
INFLATE_CAP = 256 << 20
INFLATE_RATIO = 64
INFLATE_FLOOR = 16 << 20


class PresentationContext:
    __slots__ = ("id", "abstract_syntax", "transfer_syntaxes", "result", "transfer_syntax",
                 "inferred", "inference")

    def __init__(self, cid, abstract_syntax=None, transfer_syntaxes=()):
        self.id = cid
        self.abstract_syntax = abstract_syntax
        self.transfer_syntaxes = list(transfer_syntaxes)   # proposed, in order
        self.result = None            # 0 acceptance, 1-4 rejection (PS3.8 9.3.3.2)
        self.transfer_syntax = None   # accepted one (or proven from the data)
        self.inferred = False         # transfer syntax proven from the data (not negotiated)
        # Without a captured acceptance: what the data set bytes proved, a
        # tsinfer.Inference (.proven, .syntax, .elements, .why), None before any data set.
        self.inference = None

    @property
    def accepted(self) -> bool:
        return self.result == 0


class Association:
    """One association (one TCP stream carries one, PS3.8 9.1)."""

    def __init__(self, stream, index: int, negotiated: bool):
        self.stream = stream
        self.id = index                 # 0-based, in order of appearance
        self.negotiated = negotiated    # the A-ASSOCIATE exchange was captured
        self.calling_ae = self.called_ae = None
        self.application_context = None
        self.application_contexts = [None, None]   # as [requestor, acceptor] named it
        self.contexts: dict[int, PresentationContext] = {}
        self.rq = self.ac = self.rj = self.abort = None      # decoded PDUs (Containers)
        self.rq_frame = self.ac_frame = None
        self.rq_whole = False           # the A-ASSOCIATE-RQ decoded without a problem
        self.lost_syntaxes: dict = {}   # abstract syntax -> its rejected contexts, none accepted
        self.rq_ts = self.ac_ts = None
        self.max_pdu = [None, None]     # max length each side can receive: [requestor, acceptor]
        self.idle_prev = None                # expert: (frame, ts, direction, request) of the last PDU
        self.implementation = [None, None]   # (class UID, version name) [requestor, acceptor]
        self.roles: dict[str, list] = {}     # SOP class -> [(scu, scp) proposed, accepted]
        self.async_window = [None, None]     # (invoked, performed) [requestor, acceptor]
        self.extended: dict[str, list] = {}  # SOP class -> [RQ info bytes, AC info bytes]
        self.common_extended: dict[str, tuple] = {}   # SOP class -> (service class, related)
        self.user_identity = None       # 0x58 sub-item of the RQ
        self.user_identity_ac = None    # 0x59 sub-item of the AC
        self.rj_frame = None
        self.abort_frame = None
        self.released = False
        self.end = None                 # released, aborted, rejected, closed, or
        #                                 association.CAPTURE_ENDED / EVICTED (not seen further)
        self.end_ts = None
        self.pending: dict = {}         # (direction, message id) -> request Message
        self.outstanding = [0, 0]       # requests of each direction waiting for their answer
        self.messages = 0
        self.pdus = 0
        self.reserved_reported = False  # expert: non-zero reserved fields said once
        self.async_reported = False     # expert: the async window overrun said once

    @property
    def requestor(self) -> int:
        """Direction of the association requestor's PDUs (0: the TCP client)."""
        return 0

    def context(self, cid: int) -> PresentationContext:
        pc = self.contexts.get(cid)
        if pc is None:
            pc = self.contexts[cid] = PresentationContext(cid)
        return pc

    def label(self) -> str:
        """'CALLING <-> CALLED', as Wireshark's export list shows hosts."""
        return f"{self.calling_ae or '?'} <-> {self.called_ae or '?'}"


class PDV:
    __slots__ = ("context_id", "flags", "length", "offset", "message")

    def __init__(self, context_id, flags, length, offset):
        self.context_id, self.flags, self.length, self.offset = context_id, flags, length, offset
        self.message = None           # the message this PDV completed, if any

    @property
    def is_command(self) -> bool:
        return bool(self.flags & 1)

    @property
    def is_last(self) -> bool:
        return bool(self.flags & 2)


class PDU:
    """One PDU. ``body`` (association PDUs only) holds its bytes, header
    included; P-DATA keeps PDV descriptions, never the data."""

    __slots__ = ("assoc", "stream", "direction", "type", "length", "offset", "first_frame",
                 "last_frame", "first_ts", "last_ts", "body", "decoded", "pdvs", "problems",
                 "complete", "skipped", "lead", "_kinds")

    def __init__(self, stream, direction, ptype, length, offset, frame, ts):
        self.assoc = None
        self.stream = stream
        self.direction = direction
        self.type = ptype
        self.length = length
        self.offset = offset
        self.first_frame = self.last_frame = frame
        self.first_ts = self.last_ts = ts
        self.body = None
        self.decoded = None
        self.pdvs: list[PDV] = []
        self.problems: list[str] = []
        self._kinds: list[str] = []   # what kind each problem is (expert field mapping)
        self.complete = False
        self.skipped = 0              # bytes skipped before it to resynchronise
        self.lead = 0                 # bytes before it when the capture began mid-stream

    def carries_request(self) -> bool:
        """An A-ASSOCIATE-RQ, an A-RELEASE-RQ, or a P-DATA that ends a request's
        command set: after it the other side is awaited (idle checks, the
        report's idle periods)."""
        if self.type in (1, 5):
            return True
        for p in self.pdvs:
            m = p.message
            if p.flags & 1 and m is not None and m.command_field is not None \
                    and not m.is_response:
                return True
        return False

    def add_problem(self, kind: str, text: str):
        """Record a problem; ``kind`` (pdu_length, pdv_length, pdv_flags,
        pdv_ctx, item_length, reserved, gap, malformed) picks its expert field."""
        self.problems.append(text)
        self._kinds.append(kind)

    def problem_kinds(self):
        """(kind, text) of each problem; ones appended directly count as malformed."""
        kinds = self._kinds + ["malformed"] * (len(self.problems) - len(self._kinds))
        return list(zip(kinds, self.problems))

    @property
    def name(self) -> str:
        return tables.PDU_TYPES.get(self.type, f"PDU type 0x{self.type:02x}")


class Message(DataSetSpool):
    """A DIMSE message: command set, then (optionally) a data set (its bytes:
    ``add_data``, ``dataset_bytes``, ``copy_dataset`` ... of DataSetSpool)."""

    def __init__(self, assoc, direction, context_id, frame, ts):
        super().__init__()
        self.assoc = assoc
        self.direction = direction
        self.context_id = context_id
        self.first_frame = self.last_frame = frame
        self.first_ts = self.last_ts = ts
        self.command: dict | None = None        # keyword -> value
        self.command_elements = []
        self.command_bytes = b""
        # Where its bytes lie in the stream (direction ``direction``): per PDV,
        # (stream offset of the fragment's first byte, length, 1 if command);
        # recorded only when config.state["dicom.spans"] is set (deidentify).
        self.spans: list[tuple] = []
        self.problems: list[str] = []
        self.complete = False
        self.has_dataset = False
        self.dataset_frame = None       # frame of the data set's last fragment
        self.dataset_missing = 0        # bytes lost in capture gaps
        self.dataset_intact = None      # data set bytes held before the first gap (None: no gap)
        # While the data set crossed: zero windows the receiver advertised, and
        # the sender's pauses between fragments (count, total ns).
        self.zero_windows = self.stalls = self.stall_ns = 0
        self.request: Message | None = None     # on a response (or a C-CANCEL: what it cancels)
        self.cancel: Message | None = None      # on a request: the C-CANCEL-RQ that cancelled it
        self.duplicate_of: Message | None = None   # pending request, same ID (till reported)
        self.paired = False             # looked up / registered by message ID (association.pair)
        self.outstanding = 0            # on a request: its sender's requests outstanding with it
        # What is missing of it lies outside the capture (it began after the
        # message's command, or ended before the message did), not in a gap.
        self.beyond_capture = False
        self.response_time = None
        self._cmd_parts: list[bytes] = []
        self._cmd_len = 0               # command bytes received (kept: MAX_COMMAND)

    # -- assembly (the dissector calls these) --

    def add_command(self, data: bytes):
        # Bounded whatever the sender does (a 4 GiB command PDV, a million
        # 1-byte ones): MAX_COMMAND bytes kept, in at most 17 parts.
        room = MAX_COMMAND - self._cmd_len
        self._cmd_len += len(data)
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
        parts = self._cmd_parts
        if len(parts) < 16:
            parts.append(data)
        elif type(parts[-1]) is bytearray:
            parts[-1] += data
        else:
            parts.append(bytearray(data))

    def finish_command(self):
        self.command_bytes = b"".join(self._cmd_parts)
        self._cmd_parts = []
        if self._cmd_len > MAX_COMMAND:
            self.problems.append(f"command set of {self._cmd_len} bytes: no real one comes "
                                 f"close; only its first {MAX_COMMAND} bytes were kept")
        fields, elements, problems = decode_command(self.command_bytes)
        self.command, self.command_elements = fields, elements
        cf = fields.get("CommandField")
        if isinstance(cf, int):
            self.command_field, self.is_response = cf, bool(cf & 0x8000)
            self.name = tables.COMMAND_FIELDS.get(cf, f"command 0x{cf:04x}")
        else:
            self.name = "(no command field)"
        self.problems.extend(problems)
        if "CommandField" not in fields:
            # Every command set has one (PS3.7 E.1-1): without it the message has no name.
            self.problems.append("command set without Command Field (0000,0100)")

    # -- reading --

    # Read many times per message by the checks and renderers: derived once,
    # when the command set is decoded (finish_command). ``name``: "C-STORE-RQ"
    # and so on; "Data Set" for a data set whose command was not captured.
    command_field: int | None = None
    is_response: bool = False
    name: str = "Data Set"

    @property
    def message_id(self):
        """Message ID; on responses and C-CANCEL-RQ (which names the request it
        cancels, PS3.7 9.3.2.3) the Message ID Being Responded To."""
        c = self.command or {}
        if self.is_response or self.command_field == tables.C_CANCEL_RQ:
            return c.get("MessageIDBeingRespondedTo")
        return c.get("MessageID")

    @property
    def status(self) -> int | None:
        return (self.command or {}).get("Status")

    @property
    def expects_dataset(self) -> bool:
        t = (self.command or {}).get("CommandDataSetType")
        return t is not None and t != NO_DATA_SET

    @property
    def sop_class_uid(self):
        c = self.command or {}
        return c.get("AffectedSOPClassUID") or c.get("RequestedSOPClassUID")

    @property
    def exchange_sop_class(self):
        """The SOP Class the message is about: its own Affected/Requested SOP
        Class UID, or else (a response without one) its request's."""
        uid = self.sop_class_uid
        if not uid and self.request is not None:
            uid = self.request.sop_class_uid
        return uid

    @property
    def sop_instance_uid(self):
        c = self.command or {}
        return c.get("AffectedSOPInstanceUID") or c.get("RequestedSOPInstanceUID")

    @property
    def encoding(self):
        """(implicit VR, little endian, deflated) of the data set's transfer
        syntax (PS3.5 A.1-A.5: every syntax but Implicit VR LE and Explicit
        VR BE encodes explicit VR little endian; the deflated ones deflate
        it), or None when the syntax is unknown."""
        ts = self.transfer_syntax
        if ts is None:
            # A compressed syntax the data does not name still proves its
            # elements' encoding: they decode, the pixels stay as they are.
            pc = self.assoc.contexts.get(self.context_id) if self.assoc else None
            inf = pc.inference if pc is not None else None
            if inf is not None and inf.elements == EXPLICIT_LE:
                return False, True, False
            return None
        return ts == IMPLICIT_LE, ts != EXPLICIT_BE, ts in tables.DEFLATED_TRANSFER_SYNTAXES

    def plain_dataset(self) -> tuple:
        """(bytes, implicit VR, little endian): the data set's elements as
        encoded, a deflated one inflated within the bounds of inflate_dataset.
        ValueError when the transfer syntax is unknown or the inflated size
        passes those bounds. Only during ``dicomwire_message``."""
        enc = self.encoding
        if enc is None:
            raise ValueError(unknown_syntax_text(self))
        raw = self.dataset_bytes()
        return (inflate_dataset(raw) if enc[2] else raw), enc[0], enc[1]

    @property
    def transfer_syntax(self):
        pc = self.assoc.contexts.get(self.context_id) if self.assoc else None
        return pc.transfer_syntax if pc else None

    def scan_dataset(self, wanted=()):
        """One walk of the data set's top-level element headers (no values
        decoded, fragments never joined, a spool read through mmap):
        ``(raw values of the wanted tags, first structural break or None)``,
        or None for a deflated data set, whose structure is inside the
        deflate stream, and for one whose transfer syntax is unknown (not
        negotiated in the capture, not proven by the data). Only during
        ``dicomwire_message``."""
        enc = self.encoding
        if enc is None or enc[2]:
            return None
        buf = self.dataset_view()
        try:
            return dataset.scan(buf, enc[0], enc[1], wanted)
        finally:
            if hasattr(buf, "close"):
                buf.close()

    def dataset(self):
        """The data set as a pydicom Dataset, decoded per the context's
        transfer syntax (deflated is inflated, capped). Lazy: pydicom is
        imported on first use. ValueError when the transfer syntax is unknown
        (negotiation not captured, and the data did not prove one): the bytes
        are never decoded in a syntax that was not proven."""
        from io import BytesIO

        from pydicom.filereader import read_dataset
        raw, implicit, little = self.plain_dataset()
        return read_dataset(BytesIO(raw), implicit, little)


def unknown_syntax_text(msg) -> str:
    """Why a message's data set has no transfer syntax, in words (the one
    wording: expert, export and decoding errors say the same)."""
    a = msg.assoc
    pc = a.contexts.get(msg.context_id) if a is not None else None
    missed = "acceptance" if a is not None and a.negotiated else "negotiation"
    why = f"; {pc.inference.why}" if pc is not None and pc.inference is not None else ""
    return f"transfer syntax not proven ({missed} not captured{why})"


def inflate_dataset(raw: bytes) -> bytes:
    """A deflated data set (PS3.5 A.5), inflated within the bounds above;
    ValueError beyond them (export still writes it as it crossed the wire)."""
    limit = min(INFLATE_CAP, max(INFLATE_FLOOR, INFLATE_RATIO * len(raw)))
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = d.decompress(raw, limit)
    if d.unconsumed_tail or (not d.eof and d.decompress(b"", 1)):
        raise ValueError(f"deflated data set of {len(raw)} bytes inflates beyond {limit} "
                         f"bytes (a deflate bomb?): not decoded")
    return out
