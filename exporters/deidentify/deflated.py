"""Deflated data sets (Deflated Explicit VR Little Endian and the other
syntaxes of ``tables.DEFLATED_TRANSFER_SYNTAXES``, PS3.5 A.5): inflated, de-identified
like any other data set (:func:`.plan.plan_dataset` on the inflated bytes,
same-length patches), deflated again (raw Deflate, RFC 1951, no zlib
header, as A.5 requires) and laid back over the PDVs they crossed in. The
new stream rarely has the old length, so the fragments change length:
every PDV keeps its place, its presentation context and its message
control header (so the PDV count and the last-fragment flag stay), the
difference is taken from or given to the last fragments, and the PDV item
length and the P-DATA-TF PDU length of each PDV and PDU that changed are
rebuilt (PS3.8 9.3.5, 9.3.5.1); the rewrite moves every byte after them
(:mod:`dicomwire.reshape`).

A fragment only grows inside the room its PDU has below the receiver's
negotiated maximum length (PS3.8 D.1): a PDU never becomes one the receiver
would refuse. A data set whose new stream does not fit is blanked, as any
data set that cannot be rewritten.

The message hook comes before the hook of the PDU holding its last fragment
(the message ends inside it), so a planned data set waits in
:attr:`Lengths.pending` until every PDU it crossed has been seen.
"""

from __future__ import annotations

import struct
import zlib

from dicomwire.exporters.deidentify.plan import plan_dataset
from dicomwire.plugins.dicom.model import inflate_dataset
from dicomwire.specs.dicom import tables
from dicomwire.specs.dicom.dataset import DataSetError

_LEN = struct.Struct("!I")
LEVEL = 9                     # the smallest stream zlib makes: the least growth


def redeflate(m, profile, mapper, tally) -> bytes:
    """The message's deflated data set, de-identified and deflated again.
    ValueError (why) when it cannot be."""
    raw = m.dataset_bytes()
    try:
        plain = bytearray(inflate_dataset(raw))
    except zlib.error as e:
        raise ValueError(f"does not inflate ({e})") from e
    try:
        patches = plan_dataset(plain, False, True, len(plain), profile, mapper, tally)
    except DataSetError as e:
        raise ValueError(f"does not parse once inflated ({e})") from e
    for rel, new in patches:
        if isinstance(new, int):
            plain[rel:rel + new] = bytes(new)
        else:
            plain[rel:rel + len(new)] = new
    z = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    out = z.compress(plain) + z.flush()
    if len(out) & 1:
        out += b"\0"          # even length, as pydicom writes a deflated data set
    return out


def split(sizes: list, rooms: list, new_total: int) -> list | None:
    """New fragment sizes for ``new_total`` bytes over fragments of
    ``sizes``: each keeps its size but the last ones, which give bytes
    (keeping one at least) or take them (within ``rooms``, a list that is
    drawn down: fragments of one PDU share one). None when impossible."""
    out = list(sizes)
    more = new_total - sum(sizes)
    for i in range(len(out) - 1, -1, -1):
        if more == 0:
            break
        if more < 0:
            give = min(-more, out[i] - 1)
            out[i] -= give
            more += give
        else:
            room = rooms[i]
            take = more if room[0] is None else min(more, max(0, room[0]))
            out[i] += take
            more -= take
            if room[0] is not None:
                room[0] -= take
    return out if more == 0 else None


class Lengths:
    """PDV and PDU length changes of every stream direction, by stream
    offset: ``pdv[key][item offset]`` and ``pdu[key][PDU offset]`` (the
    change in bytes), and what they need to be decided."""

    def __init__(self):
        self.where: dict = {}        # key -> {PDV item offset: PDU offset} (deflated contexts)
        self.pdu_len: dict = {}      # key -> {PDU offset: its length (as the input has it)}
        self.pdv: dict = {}          # key -> {PDV item offset: change}
        self.pdu: dict = {}          # key -> {PDU offset: change}
        self.pending: dict = {}      # key -> [(spans, new bytes, limit, why-callback)]
        self.laid = self.moved = 0   # data sets deflated again; bytes their streams moved

    def see_pdu(self, key, pdu) -> bool:
        """Note a P-DATA-TF whose data PDVs are on deflated contexts; True
        when something waits for it."""
        a = pdu.assoc
        if a is None:
            return False
        ctx = a.contexts
        hit = False
        for v in pdu.pdvs:
            pc = ctx.get(v.context_id)
            if v.offset is not None and not v.flags & 1 and pc is not None and \
                    pc.transfer_syntax in tables.DEFLATED_TRANSFER_SYNTAXES:
                self.where.setdefault(key, {})[v.offset] = pdu.offset
                hit = True
        if hit:
            self.pdu_len.setdefault(key, {})[pdu.offset] = pdu.length
        return hit and key in self.pending

    def plan(self, key, m, spans, new: bytes, failed):
        """A deflated data set's new bytes ``new`` for its fragments
        ``spans``; ``failed(why)`` blanks it if they cannot be laid."""
        a = m.assoc
        limit = a.max_pdu[1 - m.direction] if a.requestor == 0 else None
        self.pending.setdefault(key, []).append((spans, new, limit or None, failed))

    def settle(self, key, edits, final: bool = False):
        """Lay the pending data sets of ``key`` whose PDUs are all seen (at
        the end, ``final``: all, the unseen ones blanked)."""
        waiting = self.pending.get(key, [])
        where = self.where.get(key, {})
        keep = []
        for item in waiting:
            spans = item[0]
            if all(o - 6 in where for o, _n in spans):
                self._lay(key, edits, *item)
            elif final:
                item[3]("the PDU of its last fragment was not read")
            else:
                keep.append(item)
        if keep:
            self.pending[key] = keep
        else:
            self.pending.pop(key, None)

    def _lay(self, key, edits, spans, new, limit, failed):
        where, lens = self.where[key], self.pdu_len[key]
        pdus = self.pdu.setdefault(key, {})
        rooms, shared = [], {}
        for o, _n in spans:
            p = where[o - 6]
            if p not in shared:
                shared[p] = [None if limit is None else limit - lens[p] - pdus.get(p, 0)]
            rooms.append(shared[p])
        sizes = split([n for _o, n in spans], rooms, len(new))
        if sizes is None:
            failed(f"deflated again it is {len(new) - sum(n for _o, n in spans):+d} bytes, "
                   f"more than its PDUs may grow under the receiver's maximum length")
            return
        pdvs = self.pdv.setdefault(key, {})
        self.laid += 1
        self.moved += abs(len(new) - sum(n for _o, n in spans))
        at = 0
        for (o, n), size in zip(spans, sizes):
            edits.replace(o, n, new[at:at + size])
            at += size
            if size != n:
                # PDV item length (PS3.8 9.3.5.1): context id, header and fragment.
                edits.put(o - 6, _LEN.pack(size + 2))
                pdvs[o - 6] = size - n
                p = where[o - 6]
                pdus[p] = pdus.get(p, 0) + size - n

    def finish(self, edits: dict):
        """At the capture's end: what still waits is laid or blanked, and
        every P-DATA-TF whose PDVs changed gets its new length (PS3.8 9.3.5)."""
        for key in list(self.pending):
            e = edits.get(key)
            if e is not None:
                self.settle(key, e, final=True)
        for key, changes in self.pdu.items():
            lens = self.pdu_len[key]
            for p, change in changes.items():
                if change:
                    edits[key].put(p + 2, _LEN.pack(lens[p] + change))
        self.where.clear()
