"""The self-check of ``deidentify``: the output read again, as the input was.

- :class:`Signature` (a plugin in both passes) hashes each stream's PDU
  sequence: direction, type, length, stream offset, completeness and every
  PDV (context, flags, length, offset). Same-length rewriting must leave it
  identical; where the planner changed lengths on purpose (deflated data
  sets, :class:`Planned`), the output's offsets are mapped back and its
  lengths less the planned changes must give the input's: every other
  difference counts. The findings (expert infos by name) are compared too:
  any that differ fail the check (the traffic must say what it said), but
  for those that blanking on purpose changes, where the run blanked.
- :class:`Inflated` searches the inflated bytes of every deflated data set
  of the output (the file's bytes hold them compressed).
- :func:`search` looks for every original identifying value (UIDs, names,
  IDs, text of four characters or more) in the output file's bytes. Values
  are text, so the file is first reduced to its runs of four printable ASCII
  bytes or more (C-speed ``bytes.translate`` and ``find``: pixel data holds
  few), and those runs are matched against all values at once with one
  regular expression built as a trie; values with other bytes (UTF-8, ISO
  2022) are searched for in the whole file. A value of digits and dots (a
  UID, a numeric ID, a date or time) counts only where no digit or dot
  touches it: a new UID's random digits may contain an old short number by
  chance; an age (AS) only where no letter or digit does.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import zlib
from collections import Counter

from dicomwire import fastpath
from dicomwire.hookspecs import hookimpl

CHUNK = 16 << 20
_PRINTABLE = bytes.maketrans(bytes(range(256)),
                             bytes(1 if 0x20 <= c < 0x7F else 0 for c in range(256)))
_NUMERIC = frozenset(b"0123456789.")
_C_RUNS = getattr(fastpath.ext, "printable_runs", None)     # None: not built, or stale
# An age (AS, PS3.5 6.2: "048Y") counts only where no letter or digit touches it.
_AGE = re.compile(rb"\d{3}[DWMY]")
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class Planned:
    """The length changes the planner made on purpose: per (stream id,
    direction) with any, ``(offset map, {PDU offset: change}, {PDV item
    offset: change})``, offsets as in the input."""

    def __init__(self, edits: dict, lengths):
        self.dirs = {key: (e.resizes, lengths.pdu.get(key, {}), lengths.pdv.get(key, {}))
                     for key, e in edits.items() if e.resizes is not None}


class Signature:
    """Per stream: [PDU count, running hash of the PDU sequence]; with
    ``planned`` (reading the output), PDUs as the input had them."""

    def __init__(self, planned: Planned | None = None):
        self.streams: dict[int, list] = {}
        self.planned = planned.dirs if planned is not None else None

    @hookimpl
    def dicomwire_pdu(self, pdu):
        s = self.streams.get(pdu.stream.id)
        if s is None:
            s = self.streams[pdu.stream.id] = [0, hashlib.blake2b(digest_size=16)]
        s[0] += 1
        shift = self.planned.get((pdu.stream.id, pdu.direction)) if self.planned else None
        if shift is None:
            pdvs = [(v.context_id, v.flags, v.length, v.offset) for v in pdu.pdvs]
            length, offset = pdu.length, pdu.offset
        else:
            back, pdu_changes, pdv_changes = shift
            offset = back.old_offset(pdu.offset)
            length = pdu.length - pdu_changes.get(offset, 0)
            pdvs = []
            for v in pdu.pdvs:
                o = None if v.offset is None else back.old_offset(v.offset)
                pdvs.append((v.context_id, v.flags, v.length - pdv_changes.get(o, 0), o))
        s[1].update(repr((pdu.direction, pdu.type, length, offset, pdu.complete,
                          pdvs)).encode())

    def digest(self) -> dict:
        return {k: (n, h.hexdigest()) for k, (n, h) in self.streams.items()}


class Inflated:
    """Original values in the inflated deflated data sets of a pass
    (``hits``: ``[(attribute, value, where)]``)."""

    def __init__(self, originals: dict):
        self.originals, self.searcher, self.hits = originals, None, []

    @hookimpl
    def dicomwire_message(self, message):
        enc = message.encoding if message.has_dataset else None
        if enc is None or not enc[2] or not self.originals:
            return
        try:
            plain = message.plain_dataset()[0]
        except (ValueError, zlib.error):
            return                              # blanked by the planner, or not readable
        if self.searcher is None:
            self.searcher = Searcher(self.originals)
        s = self.searcher
        s.reset()
        s.feed(plain)
        where = f"a deflated data set (frame {message.dataset_frame})"
        self.hits += [(name, v, where) for name, v, _at in s.hits()]


def compare_pdus(a: dict, b: dict) -> list[str]:
    """Streams whose PDU sequence differs (``Signature.digest()`` of the
    input and of the output; empty: identical)."""
    out = []
    for sid in sorted(set(a) | set(b)):
        if a.get(sid) != b.get(sid):
            na, nb = a.get(sid, (0,))[0], b.get(sid, (0,))[0]
            out.append(f"stream {sid}: {na} PDU(s) in the input, {nb} in the output"
                       + (" (same count, different PDUs)" if na == nb else ""))
    return out


# Findings that blanking on purpose changes: a data set blanked (what could
# not be read) proves no transfer syntax any more; retransmitted bytes that
# differ from the first copy, blanked in every copy, differ no more. Their
# counts may differ where the run blanked; any other difference fails.
BLANKING_FINDINGS = frozenset(("dicom.ts.unproven", "tcp.overlap.conflict"))
# Findings on the capture file, not on the traffic (a file cut short, the
# capture tool's drop counts): the output is a file of its own.
FILE_FINDINGS = "capture."


def compare_findings(a: Counter, b: Counter, blanked: bool = False) -> tuple[list, list]:
    """Expert findings by name whose count differs: those that fail the
    check, and those the run's blanking explains."""
    failing, explained = [], []
    for name in sorted(set(a) | set(b)):
        if a[name] != b[name] and not name.startswith(FILE_FINDINGS):
            text = f"{name}: {a[name]} in the input, {b[name]} in the output"
            (explained if blanked and name in BLANKING_FINDINGS else failing).append(text)
    return failing, explained


def unapplied(streams, edits: dict, where: dict, limit: int = 20) -> list[str]:
    """Applied = planned: the patched byte ranges (values replaced, bytes
    blanked) that no rewritten frame carried, though the capture holds them
    (not in a gap, not past the stream's end): a frame the rewrite could not
    place left the original there. Each named by stream, direction, offsets
    and the message it belongs to (``where``: the first pass's
    ``[(offset, message, frame)]`` per direction)."""
    out = []
    for s in streams:
        for d in (0, 1):
            e = edits.get((s.id, d))
            if e is None or not e.frozen:
                continue
            dr = s.dirs[d]
            lost = [(o, o + n) for o, n in dr.lost or ()]
            lost.append((dr.next_off, 1 << 62))         # past what the capture held
            missed = e.missed(lost)
            msgs = sorted(where.get((s.id, d), ())) if missed else []
            for off, n in missed:
                i = bisect.bisect_right(msgs, (off, "\uffff")) - 1
                what = f"{msgs[i][1]} of frame {msgs[i][2]}" if i >= 0 else "a PDU"
                way = "client to server" if d == 0 else "server to client"
                out.append(f"stream {s.id} ({way}) bytes {off}-{off + n - 1}, in {what}")
                if len(out) >= limit:
                    return out
    return out


def _trie(words) -> bytes:
    root: dict = {}
    for w in words:
        d = root
        for c in w:
            d = d.setdefault(c, {})
        d[None] = True

    def build(d) -> bytes:
        alts = [re.escape(bytes([c])) + build(sub)
                for c, sub in sorted((k, v) for k, v in d.items() if k is not None)]
        if not alts:
            return b""
        body = alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"
        if None in d:
            body = b"(?:" + body + b")?"
        return body
    return build(root)


def searchable(originals: dict, kept: set) -> tuple[dict, int]:
    """The originals worth searching for: not those the profile also keeps
    elsewhere, nor those inside a kept value (an InstitutionName "ACME" in
    a Manufacturer "ACME_MEDICAL"). Returns them and how many were left out."""
    out = {v: n for v, n in originals.items() if v not in kept}
    if out and kept:
        words = [v for v in out if all(0x20 <= c < 0x7F for c in v)]
        if words:
            rx = re.compile(_trie(words))
            text = b"\0".join(kept)
            pos = 0
            while (mt := rx.search(text, pos)) is not None:
                out.pop(mt.group(0), None)
                pos = mt.start() + 1
    return out, len(originals) - len(out)


class Searcher:
    """Original values in a byte stream fed in blocks of any size:
    ``feed(block)``, then ``hits()``: ``[(attribute, value, offset)]``."""

    def __init__(self, originals: dict, limit: int = 50):
        self.originals, self.limit = originals, limit
        ascii_words = [v for v in originals if all(0x20 <= c < 0x7F for c in v)]
        words = set(ascii_words)
        self.other = [v for v in originals if v not in words]
        self.rx = re.compile(_trie(ascii_words)) if ascii_words else None
        # A value across two blocks is seen whole in the next one.
        self.overlap = max(map(len, originals), default=0) + 1
        self.reset()

    def reset(self):
        """Forget what was fed: a new byte stream."""
        self.base, self.tail, self.pending = 0, b"", []
        self.found: list[tuple] = []

    def feed(self, block: bytes):
        if not self.originals or len(self.found) >= self.limit:
            return
        self.pending.append(block)
        if sum(map(len, self.pending)) >= CHUNK:
            self._scan()

    def _scan(self):
        block = b"".join(self.pending)
        self.pending = []
        chunk = self.tail + block
        start = self.base - len(self.tail)
        if self.rx is not None:
            _runs(chunk, start, self.rx, self.originals, self.found)
        for v in self.other:
            at = chunk.find(v)
            if at >= 0:
                self.found.append((self.originals[v], v, start + at))
        self.tail = chunk[-self.overlap:]
        self.base += len(block)

    def hits(self) -> list[tuple]:
        if self.pending:
            self._scan()
        seen, out = set(), []
        for h in self.found:                # the overlap may find one twice
            if h[2] not in seen:
                seen.add(h[2])
                out.append(h)
        return out[:self.limit]


def search(path: str, originals: dict, limit: int = 50) -> list[tuple]:
    """``[(attribute, value, file offset)]`` of original values found in
    the file at ``path`` (at most ``limit``)."""
    s = Searcher(originals, limit)
    with open(path, "rb", buffering=0) as f:
        # Read, not mapped: the pages of a mapping would count as our memory.
        while block := f.read(CHUNK):
            s.feed(block)
    return s.hits()


def printable_runs(chunk, minimum: int = 4):
    """``[(start, end)]`` of the runs of ``minimum`` printable ASCII bytes
    or more: in C where dicomwire._fastwalk is built (the same answer)."""
    if _C_RUNS is not None:
        return _C_RUNS(chunk, minimum)
    mask = chunk.translate(_PRINTABLE)
    pos, n, out, need = 0, len(mask), [], b"\1" * minimum
    while (at := mask.find(need, pos)) >= 0:
        end = mask.find(b"\0", at)
        end = n if end < 0 else end
        out.append((at, end))
        pos = end
    return out


def _runs(chunk, base, rx, originals, hits):
    for at, end in printable_runs(chunk):
        run = chunk[at:end]
        for mt in rx.finditer(run):
            v = mt.group(0)
            if v not in originals:
                continue
            touch = _NUMERIC if all(c in _NUMERIC for c in v) else \
                _ALNUM if _AGE.fullmatch(v) else None
            if touch is not None:
                s, e = mt.start(), mt.end()
                if (s and run[s - 1] in touch) or (e < len(run) and run[e] in touch):
                    continue
            hits.append((originals[v], v, base + at + mt.start()))
