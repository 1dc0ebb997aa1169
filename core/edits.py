"""What one stream direction's bytes become in a rewrite
(:class:`Edits`): patches by stream offset, blanks, replacements of any
length, and for a strict direction the ranges it may keep. A pack fills
one per direction; :class:`dicomwire.rewrite.Rewriter` applies them frame
by frame (and :mod:`dicomwire.applied` notes which patches it wrote)."""

from __future__ import annotations

import bisect

from dicomwire.applied import Applied
from dicomwire.reshape import Resizes


class Edits(Applied):
    """What one stream direction's bytes become. ``put`` and ``blank`` add
    patches (later ones must not overlap earlier ones: the first wins);
    ``replace`` a replacement of any length (it wins over patches inside
    its range); ``keep`` marks bytes a ``strict`` direction lets through
    unchanged."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self._keep: list[list[int]] = []       # merged [start, end) while in order
        self._patches: list[tuple] = []        # (offset, length, bytes or None: zeros)
        self._resizes: list[tuple] = []        # (offset, old length, new bytes)
        self._over: list[tuple] = []           # blanks over every patch: (offset, end)
        self.resizes: Resizes | None = None    # set by freeze(), when there are any
        self.frozen = False

    def keep(self, start: int, end: int):
        if end <= start:
            return
        k = self._keep
        if k and k[-1][0] <= start <= k[-1][1]:
            if end > k[-1][1]:
                k[-1][1] = end
        else:
            k.append([start, end])

    def put(self, offset: int, data: bytes):
        if data:
            self._patches.append((offset, len(data), bytes(data)))

    def blank(self, offset: int, length: int):
        if length > 0:
            self._patches.append((offset, length, None))

    def blank_over(self, offset: int, length: int):
        """A blank that wins over every patch in its range (what overlaps it
        is cut around it), for bytes no patch may vouch for: retransmitted
        bytes that differ from the first copy, blanked in every copy (which
        copy a receiver keeps is its own: RFC 9293 3.10.7.4 trims to new
        bytes, stacks differ on overlaps)."""
        if length > 0:
            self._over.append((offset, offset + length))

    def replace(self, offset: int, old_len: int, data: bytes):
        """``old_len`` bytes at ``offset`` become ``data``, of any length:
        what follows moves by the difference (:mod:`dicomwire.reshape`)."""
        if old_len < 1:
            raise ValueError("a replacement covers at least one old byte")
        if len(data) == old_len:
            self.put(offset, data)
        else:
            self._resizes.append((offset, old_len, bytes(data)))

    def freeze(self):
        """Sort and merge (called once, before the rewrite)."""
        self._keep = merged = _merge(self._keep)
        self.keep_starts = [s for s, _ in merged]
        patches, end = [], -1
        for p in sorted(self._patches, key=lambda p: p[0]):
            if p[0] >= end:                     # overlapping patches: the first wins
                patches.append(p)
                end = p[0] + p[1]
        if self._over:
            patches = _carve(patches, _merge(self._over))
        self._patches = patches
        self._index(patches)
        resizes, end = [], -1
        for r in sorted(self._resizes, key=lambda r: r[0]):
            if r[0] >= end:                     # overlapping ones: the first wins
                resizes.append(r)
                end = r[0] + r[1]
        self.resizes = Resizes(resizes) if resizes else None
        self._busy(merged, patches)
        self.frozen = True

    def _busy(self, keep, patches):
        """Where anything happens (patches; in a strict direction, what is
        not kept), merged: :meth:`untouched` answers with one bisection."""
        spans = [(p[0], p[0] + p[1]) for p in patches]
        if self.strict:
            prev = 0
            for s, e in keep:
                if s > prev:
                    spans.append((prev, s))
                prev = e
            spans.append((prev, 1 << 62))
        merged = _merge(spans)
        self._busy_starts = [s for s, _e in merged]
        self._busy_ends = [e for _s, e in merged]

    def untouched(self, off: int, end: int) -> bool:
        """Nothing changes in ``[off, end)``: most segments of a long
        transfer (its pixel data), told apart without copying them."""
        i = bisect.bisect_right(self._busy_ends, off)
        return i == len(self._busy_ends) or self._busy_starts[i] >= end

    def apply(self, off: int, payload) -> bytearray | None:
        """The payload at stream offset ``off`` rewritten, or None if unchanged."""
        n = len(payload)
        end = off + n
        out = None
        if self.strict:
            i = bisect.bisect_right(self.keep_starts, off) - 1
            k = self._keep
            if not (i >= 0 and k[i][1] >= end):
                out = bytearray(n)              # zeros, then the kept ranges copied back
                i = max(i, 0)
                while i < len(k) and k[i][0] < end:
                    s, e = max(k[i][0], off), min(k[i][1], end)
                    if s < e:
                        out[s - off:e - off] = payload[s - off:e - off]
                    i += 1
        ps = self.patch_starts
        j = bisect.bisect_right(ps, off) - 1
        if j < 0 or self._patches[j][0] + self._patches[j][1] <= off:
            j += 1
        patches = self._patches
        while j < len(patches) and patches[j][0] < end:
            p_off, p_len, data = patches[j]
            s, e = max(p_off, off), min(p_off + p_len, end)
            if out is None:
                out = bytearray(payload)
            out[s - off:e - off] = bytes(e - s) if data is None else data[s - p_off:e - p_off]
            if not self._applied[j] and (e - s == p_len or self._piece(j, s, e)):
                self._applied[j] = 1
            j += 1
        if out is not None and out == payload:
            return None
        return out


def _merge(spans):
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def _carve(patches, over):
    """Sorted, apart ``patches`` with the merged ranges ``over`` cut out of
    them and laid as blanks instead."""
    starts = [s for s, _e in over]
    out = [(s, e - s, None) for s, e in over]
    for off, n, data in patches:
        i = max(bisect.bisect_right(starts, off) - 1, 0)
        at, end = off, off + n
        while at < end and i < len(over):
            s, e = over[i]
            if e <= at:
                i += 1
                continue
            if s >= end:
                break
            if s > at:
                out.append((at, s - at, None if data is None else data[at - off:s - off]))
            at = max(at, e)
            i += 1
        if at < end:
            out.append((at, end - at, None if data is None else data[at - off:]))
    out.sort(key=lambda p: p[0])
    return out
