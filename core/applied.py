"""Which planned patches a rewrite wrote: the bookkeeping half of
:class:`dicomwire.rewrite.Edits` (applied = planned). A patch inside one
segment is marked in one step; one across segments collects the pieces its
frames wrote until they cover it. After the rewrite, :meth:`Applied.missed`
gives the patched bytes no frame carried: bytes the rewrite could not place
(the original left in the output), unless the capture never held them."""

from __future__ import annotations


class Applied:
    """Mixed into Edits: ``_patches`` ``[(offset, length, data)]``, sorted."""

    _patches: list

    def _index(self, patches: list):
        """The frozen patches: their starts (for bisection), none written yet."""
        self.patch_starts = [p[0] for p in patches]
        self._applied = bytearray(len(patches))     # 1: written whole
        self._pieces: dict = {}                     # patch index -> [(start, end)] written

    def _piece(self, j: int, s: int, e: int) -> bool:
        """``[s, e)`` of patch ``j`` written: True once its pieces cover it."""
        pieces = self._pieces.setdefault(j, [])
        pieces.append((s, e))
        p_off, p_len = self._patches[j][0], self._patches[j][1]
        if _uncovered(p_off, p_off + p_len, pieces):
            return False
        del self._pieces[j]
        return True

    def missed(self, lost=()) -> list[tuple[int, int]]:
        """``[(offset, length)]`` of patched bytes no frame carried, but for
        those in ``lost`` (``(start, end)`` ranges the capture does not
        hold: its gaps, what follows its end)."""
        out = []
        for j, done in enumerate(getattr(self, "_applied", ())):
            if not done:
                p_off, p_len = self._patches[j][0], self._patches[j][1]
                held = self._pieces.get(j, []) + list(lost)
                out += [(s, e - s) for s, e in _uncovered(p_off, p_off + p_len, held)]
        return out


def _uncovered(start: int, end: int, ranges) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that none of ``ranges`` covers."""
    out, at = [], start
    for s, e in sorted(r for r in ranges if r[1] > start and r[0] < end):
        if s > at:
            out.append((at, s))
        at = max(at, e)
        if at >= end:
            return out
    return out + [(at, end)] if at < end else out
