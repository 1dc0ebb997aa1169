"""The self-check of ``deidentify``: the output read again, as the input was.

- :class:`Signature` (a plugin in both passes) hashes each stream's PDU
  sequence: direction, type, length, stream offset, completeness and every
  PDV (context, flags, length, offset). Same-length rewriting must leave it
  identical; the findings (expert infos by name) are compared too.
- :func:`search` looks for every original identifying value (UIDs, names,
  IDs, text of four characters or more) in the output file's bytes. Values
  are text, so the file is first reduced to its runs of four printable ASCII
  bytes or more (C-speed ``bytes.translate`` and ``find``: pixel data holds
  few), and those runs are matched against all values at once with one
  regular expression built as a trie; values with other bytes (UTF-8, ISO
  2022) are searched for in the whole file. A value of digits and dots (a
  UID, a numeric ID) counts only where no digit or dot touches it: a new
  UID's random digits may contain an old short number by chance.
"""

from __future__ import annotations

import hashlib
import mmap
import re
from collections import Counter

from dicomwire.hookspecs import hookimpl

CHUNK = 16 << 20
_PRINTABLE = bytes.maketrans(bytes(range(256)),
                             bytes(1 if 0x20 <= c < 0x7F else 0 for c in range(256)))
_NUMERIC = frozenset(b"0123456789.")


class Signature:
    """Per stream: [PDU count, running hash of the PDU sequence]."""

    def __init__(self):
        self.streams: dict[int, list] = {}

    @hookimpl
    def dicomwire_pdu(self, pdu):
        s = self.streams.get(pdu.stream.id)
        if s is None:
            s = self.streams[pdu.stream.id] = [0, hashlib.blake2b(digest_size=16)]
        s[0] += 1
        pdvs = [(v.context_id, v.flags, v.length, v.offset) for v in pdu.pdvs]
        s[1].update(repr((pdu.direction, pdu.type, pdu.length, pdu.offset, pdu.complete,
                          pdvs)).encode())

    def digest(self) -> dict:
        return {k: (n, h.hexdigest()) for k, (n, h) in self.streams.items()}


def compare_pdus(before: Signature, after: Signature) -> list[str]:
    """Streams whose PDU sequence differs (empty: identical)."""
    a, b = before.digest(), after.digest()
    out = []
    for sid in sorted(set(a) | set(b)):
        if a.get(sid) != b.get(sid):
            na, nb = a.get(sid, (0,))[0], b.get(sid, (0,))[0]
            out.append(f"stream {sid}: {na} PDU(s) in the input, {nb} in the output"
                       + (" (same count, different PDUs)" if na == nb else ""))
    return out


def compare_findings(before, after) -> list[str]:
    """Expert findings by name whose count differs."""
    a = Counter(i.field.name for i in before.infos)
    b = Counter(i.field.name for i in after.infos)
    return [f"{name}: {a[name]} in the input, {b[name]} in the output"
            for name in sorted(set(a) | set(b)) if a[name] != b[name]]


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


def search(path: str, originals: dict, limit: int = 50) -> list[tuple]:
    """``[(attribute, value, file offset)]`` of original values found in
    the file at ``path`` (at most ``limit``)."""
    ascii_words = [v for v in originals if all(0x20 <= c < 0x7F for c in v)]
    other = [v for v in originals if v not in set(ascii_words)]
    hits: list[tuple] = []
    if not originals:
        return hits
    rx = re.compile(_trie(ascii_words)) if ascii_words else None
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if not size:
            return hits
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            for base in range(0, size, CHUNK):
                chunk = m[base:base + CHUNK + 128]         # overlap: values are short
                if rx is not None:
                    _runs(chunk, base, rx, originals, hits)
                for v in other:
                    at = chunk.find(v)
                    if at >= 0:
                        hits.append((originals[v], v, base + at))
                if len(hits) >= limit:
                    break
        finally:
            m.close()
    seen, out = set(), []
    for h in hits:                      # the overlap may find one twice
        if h[2] not in seen:
            seen.add(h[2])
            out.append(h)
    return out[:limit]


def _runs(chunk, base, rx, originals, hits):
    mask = chunk.translate(_PRINTABLE)
    pos, n = 0, len(mask)
    while True:
        at = mask.find(b"\1\1\1\1", pos)
        if at < 0:
            return
        end = mask.find(b"\0", at)
        if end < 0:
            end = n
        run = chunk[at:end]
        for mt in rx.finditer(run):
            v = mt.group(0)
            if v not in originals:
                continue
            if all(c in _NUMERIC for c in v):
                s, e = mt.start(), mt.end()
                if (s and run[s - 1] in _NUMERIC) or (e < len(run) and run[e] in _NUMERIC):
                    continue
            hits.append((originals[v], v, base + at + mt.start()))
        pos = end
