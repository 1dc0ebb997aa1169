"""What the DICOM pack decodes: associations, PDUs, PDVs and DIMSE messages.

These objects are what hooks receive and renderers show. Field names follow
PS3.8 (association, PDUs) and PS3.7 (messages).
"""

from __future__ import annotations

import io
import os
import tempfile
import zlib

from dicomwire.specs.dicom import dataset, tables
from dicomwire.specs.dicom.command import NO_DATA_SET, decode_command

# Transfer syntaxes the network decoding needs to know (PS3.5 A.1-A.5).
from dicomwire.specs.dicom.tables import (DEFLATED_LE, EXPLICIT_BE,  # noqa: F401 (re-exported)
                                          EXPLICIT_LE, IMPLICIT_LE)

IOV_MAX = 1024              # buffers per writev (Linux's limit)
SPOOL_AT = 32 << 20         # data sets larger than this are spooled to disk,
SPOOL_PARTS = 1 << 16       # and so are those in more fragments (tiny PDVs) than this,
MEMORY_BUDGET = 48 << 20    # and any that grows while all in memory together pass this.
# Data set bytes held in memory by all messages (in parallel associations):
# one counter, so the bound holds however many transfers overlap.
_held = [0]
MAX_COMMAND = 1 << 20       # command set bytes kept (real ones: a few hundred)
# Decoding a deflated data set (dataset()) inflates it in memory: at most
# INFLATE_CAP bytes, and at most INFLATE_RATIO times its wire size (real data
# sets stay far below; a deflate bomb reaches 1000x) unless under INFLATE_FLOOR.
INFLATE_CAP = 256 << 20
INFLATE_RATIO = 64
INFLATE_FLOOR = 16 << 20


def writev_all(fd: int, parts: list) -> None:
    """Write every buffer of ``parts`` to ``fd``, IOV_MAX at a time."""
    for i in range(0, len(parts), IOV_MAX):
        group = parts[i:i + IOV_MAX]
        done = os.writev(fd, group)
        if done < sum(map(len, group)):         # a short write: finish it plainly
            rest = memoryview(b"".join(group))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]


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


class Message:
    """A DIMSE message: command set, then (optionally) a data set."""

    def __init__(self, assoc, direction, context_id, frame, ts):
        self.assoc = assoc
        self.direction = direction
        self.context_id = context_id
        self.first_frame = self.last_frame = frame
        self.first_ts = self.last_ts = ts
        self.command: dict | None = None        # keyword -> value
        self.command_elements = []
        self.command_bytes = b""
        self.problems: list[str] = []
        self.complete = False
        self.has_dataset = False
        self._pending = self._spooled = 0     # data set bytes in memory / on disk
        self.dataset_frame = None       # frame of the data set's last fragment
        self.dataset_missing = 0        # bytes lost in capture gaps
        # While the data set crossed: zero windows the receiver advertised, and
        # the sender's pauses between fragments (count, total ns).
        self.zero_windows = self.stalls = self.stall_ns = 0
        self.request: Message | None = None     # on a response (or a C-CANCEL: what it cancels)
        self.cancel: Message | None = None      # on a request: the C-CANCEL-RQ that cancelled it
        self.duplicate_of: Message | None = None   # pending request with the same ID
        self.paired = False             # looked up / registered by message ID (association.pair)
        self.outstanding = 0            # on a request: its sender's requests outstanding with it
        # What is missing of it lies outside the capture (it began after the
        # message's command, or ended before the message did), not in a gap.
        self.beyond_capture = False
        self.response_time = None
        self._cmd_parts: list[bytes] = []
        self._cmd_len = 0               # command bytes received (kept: MAX_COMMAND)
        self._parts: list[bytes] = []
        self._spool = None
        self._released = False

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

    def add_data(self, data: bytes):
        # Per chunk: an append; every SPOOL_AT bytes (or SPOOL_PARTS chunks)
        # one write to a temporary file. (The bulk of a transfer comes through
        # the lane instead: appended by the pipeline, then took().)
        self._parts.append(data)
        self.took(len(data))

    def lane(self) -> tuple[int, list]:
        """For the dissector's bulk lane: how many bytes may be appended to
        the data set, one part each, before add_data would spill it, and the
        list of parts to append them to; ``took`` them after."""
        return (min(SPOOL_AT - self._pending, MEMORY_BUDGET - _held[0],
                    SPOOL_PARTS - len(self._parts)), self._parts)

    def took(self, n: int):
        """Account for ``n`` bytes appended to the parts (add_data, the bulk
        lane); spill them to disk past the bounds."""
        self._pending += n
        _held[0] += n
        if self._pending > SPOOL_AT or _held[0] > MEMORY_BUDGET \
                or len(self._parts) > SPOOL_PARTS:
            self._spill()

    def _spill(self):
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(prefix="dicomwire-", buffering=0)
        # writev: the fragments go out as they are, without joining them first.
        writev_all(self._spool.fileno(), self._parts)
        self._spooled += self._pending
        _held[0] -= self._pending
        self._parts, self._pending = [], 0

    @property
    def dataset_len(self) -> int:
        return self._spooled + self._pending

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

    def _rewound_spool(self):
        """The spool file (all bytes flushed, at its start), or None."""
        if self._released:
            raise RuntimeError("data set bytes are released after dicomwire_message")
        if self._spool is not None:
            if self._parts:
                self._spill()
            self._spool.seek(0)
        return self._spool

    def dataset_bytes(self) -> bytes:
        """The data set exactly as it crossed the wire (deflated stays
        deflated). Only during the ``dicomwire_message`` hook."""
        if self._rewound_spool() is not None:
            return self._spool.read()
        if len(self._parts) != 1 or type(self._parts[0]) is not bytes:
            # Fragments may be memoryviews (the reassembler's out-of-order
            # path): always hand out bytes.
            self._parts = [b"".join(self._parts)]
        return self._parts[0]

    def memory_parts(self) -> list | None:
        """The data set's fragments while all of them are in memory (None
        once spooled to disk). Only during the ``dicomwire_message`` hook."""
        if self._released:
            raise RuntimeError("data set bytes are released after dicomwire_message")
        return None if self._spool is not None else self._parts

    def dataset_head(self, n: int) -> bytes:
        """The first n bytes of the data set, without joining the rest."""
        if self._rewound_spool() is not None:
            return self._spool.read(n)
        out, have = [], 0
        for p in self._parts:
            out.append(p[:n - have])
            have += len(out[-1])
            if have >= n:
                break
        return b"".join(out)

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
        if self._spool is None and len(self._parts) > 1 and not self._released:
            buf = dataset.Chunks(self._parts)
        else:
            buf = self.dataset_buffer()
        try:
            return dataset.scan(buf, enc[0], enc[1], wanted)
        finally:
            if hasattr(buf, "close"):
                buf.close()

    def dataset_buffer(self):
        """The data set as one buffer without copying a spooled one: bytes,
        or a read-only mmap of the spool file (the caller closes it)."""
        spool = self._rewound_spool()
        if spool is None:
            return self.dataset_bytes()
        if not self._spooled:
            return b""
        import mmap
        return mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)

    def copy_dataset(self, out, head: bytes = b"") -> int:
        """Write ``head`` (a file meta header, say), then the wire bytes of the
        data set, to ``out``: a binary file or a file descriptor. Bounded
        memory; an in-memory data set goes out in one writev with its head.
        Returns the data set bytes written."""
        if isinstance(out, int):
            fd, write = out, None
        else:
            write = out.write
            try:
                out.flush()
                fd = out.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                fd = None                  # not a real file: write the parts one by one
        if self._rewound_spool() is not None:
            if head:
                writev_all(fd, [head]) if write is None else write(head)
            total, n = self._spooled, 0
            if fd is not None:
                try:
                    # In the kernel, spool file to output file: no copy through Python.
                    while n < total:
                        sent = os.sendfile(fd, self._spool.fileno(), n, total - n)
                        if not sent:
                            break
                        n += sent
                except OSError:
                    pass                   # no sendfile here: by hand
            self._spool.seek(n)            # go on by hand from where sendfile stopped
            while n < total:
                b = self._spool.read(1 << 20)
                if not b:
                    break
                writev_all(fd, [b]) if write is None else write(b)
                n += len(b)
            return n
        parts = [head, *self._parts] if head else self._parts
        if fd is not None:
            writev_all(fd, parts)         # the fragments as they are: no join, no copy
        else:
            for p in parts:
                write(p)
        return self._pending

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

    def release(self):
        """Drop the data set bytes (after the message hooks ran)."""
        if not self._released:
            _held[0] -= self._pending
        self._parts = []
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._released = True


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
