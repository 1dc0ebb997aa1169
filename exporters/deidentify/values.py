"""New values for old ones, always of the same length: the traffic keeps its
shape (PDU and PDV lengths, TCP sequence numbers) when nothing grows.

- UIDs become ``2.25.<digits>`` (PS3.5 B.2, a UUID-derived root) of the
  original's length, or the original's dots with new digits when it is too
  short for that; the same UID always gives the same one, across a capture
  and, with the same key, across captures.
- Names, IDs and other identifying text (PN, LO, SH, AE) become
  pseudonyms: each letter and digit replaced by one of its kind, the rest
  (``^ = \\ * ? -`` spaces, padding) kept, so the value keeps its VR, its
  person name components and its multiple values; the same value gives
  the same pseudonym, and a value's prefix the pseudonym's prefix (a C-FIND
  key, ``DOE^JANE`` or ``DOE*``, still matches the stored value).
- Dates and times become dummies (1900-01-01, 00:00:00), ranges and
  separators kept (:mod:`.dates`, which also shifts them); other text is
  blanked with spaces (an empty value, valid in every VR, PS3.5 6.2: CS,
  IS, DS, AS included); binary values with zeros.

Every mapping is an HMAC-SHA256 of the original under ``key``: a random
key per run unless one is given.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from dicomwire.exporters.deidentify import dates

STANDARD_ROOT = "1.2.840.10008."       # UIDs of the standard: never replaced
TEXT_PSEUDONYM = frozenset(("PN", "LO", "SH", "AE"))
TEXT_BLANK = frozenset(("LT", "ST", "UT", "UC", "UR", "CS", "IS", "DS", "AS"))
DATES = frozenset(("DA", "DT", "TM"))
_UPPER, _LOWER, _DIGITS = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz",
                           b"0123456789")


class Mapper:
    """Consistent replacements under one key (``--key``, else random)."""

    def __init__(self, key: bytes | None = None):
        self.key = key if key is not None else os.urandom(32)
        self.uids: dict[str, str] = {}
        self.texts: dict[bytes, bytes] = {}

    def _stream(self, kind: bytes, value: bytes, n: int) -> bytes:
        out, i = b"", 0
        while len(out) < n:
            out += hmac.new(self.key, kind + i.to_bytes(4, "big") + value,
                            hashlib.sha256).digest()
            i += 1
        return out[:n]

    # -- UIDs --

    def uid(self, uid: str) -> str:
        """The UID that replaces ``uid`` (unpadded), of the same length."""
        if not uid or uid.startswith(STANDARD_ROOT):
            return uid
        new = self.uids.get(uid)
        if new is None:
            new = self.uids[uid] = self._new_uid(uid)
        return new

    def _new_uid(self, uid: str) -> str:
        n = len(uid)
        rnd = self._stream(b"uid", uid.encode("latin-1"), n + 8)
        digits = "".join(str(b % 10) for b in rnd)
        room = n - 5
        if room < 1:
            new, k = _short_uid(uid, digits), 1
            while new == uid and k < 16:            # a few digits may come out the same
                rnd = self._stream(b"uid%d" % k, uid.encode("latin-1"), n)
                new, k = _short_uid(uid, "".join(str(b % 10) for b in rnd)), k + 1
            return new
        first = str(1 + rnd[-1] % (2 if room == 39 else 9))   # 39 digits: below 2**128
        if room <= 39:
            return "2.25." + first + digits[:room - 1]
        # 2.25 holds a 128-bit integer: 38 digits, then an arc below it.
        rest = room - 39
        second = str(1 + rnd[-2] % 9) if rest > 1 else digits[38]
        return "2.25." + first + digits[:37] + "." + second + digits[39:39 + rest - 1]

    def uid_value(self, raw: bytes) -> bytes:
        """A UI value (several, backslash-separated; NUL or space padded)."""
        text = raw.decode("latin-1")
        core = text.rstrip("\0 ")
        parts = [self.uid(u.strip(" \0")) if u.strip(" \0") else u for u in core.split("\\")]
        return ("\\".join(parts) + text[len(core):]).encode("latin-1")

    # -- text --

    def pseudonym(self, raw: bytes) -> bytes:
        """Letters and digits replaced by ones of their kind, consistently
        and prefix by prefix (:func:`_pseudonym`); never the original where
        it has a letter or digit to change."""
        core = raw.strip(b" \0")
        if not core:
            return raw
        new = self.texts.get(core)
        if new is None:
            new, k = _pseudonym(core, self.key, b"txt"), 1
            while new == core and k < 16:       # only two-byte pairs may come out the same
                new, k = _pseudonym(core, self.key, b"txt%d" % k), k + 1
            self.texts[core] = new
        at = raw.find(core)
        return raw[:at] + new + raw[at + len(core):]


ESC = 0x1B
_KINDS = {c: (alphabet, alphabet.index(c)) for alphabet in (_UPPER, _LOWER, _DIGITS)
          for c in alphabet}


def _pseudonym(core: bytes, key: bytes, kind: bytes) -> bytes:
    """``core`` with each letter and digit replaced by one of its kind, by
    a permutation without fixed points (a random cycle) drawn from the
    HMAC of the value's text before it: equal prefixes give equal prefixes
    (a C-FIND key ``DOE*`` still matches the pseudonym of ``DOE^JANE``,
    PS3.4 C.2.2.2.4) and two values that differ give pseudonyms that
    differ. Each value of several (``\\``) starts afresh. ISO 2022 (PS3.5
    6.1.2.5): escape sequences are kept as they are, and while one has
    put a two-byte set in G0 (``ESC $ B``, ``ESC $ ( D``: ISO 2022 IR 87,
    IR 159) each byte pair becomes a pair in rows 0x30-0x4E, level-1 kanji,
    every one of them assigned. Other bytes of 128 or more become ASCII
    letters: text in any of the standard's character sets."""
    out = bytearray(core)
    base = hmac.new(key, kind, hashlib.sha256)
    h = base.copy()
    i, n, double = 0, len(core), False
    while i < n:
        c = core[i]
        if c == 0x5C:                               # a value delimiter: afresh
            h = base.copy()
            i += 1
            continue
        if c == ESC:
            j = i + 1
            while j < n and 0x20 <= core[j] <= 0x2F:   # intermediate bytes
                j += 1
            seq = core[i + 1:j]
            double = seq[:1] == b"$" and seq[1:2] in (b"", b"(")   # a 94^2 set in G0
            h.update(core[i:j + 1])                                 # and the final byte
            i = j + 1
            continue
        if double and 0x21 <= c <= 0x7E:
            if i + 1 < n and 0x21 <= core[i + 1] <= 0x7E:
                h.update(core[i:i + 2])
                rnd = h.copy().digest()
                out[i] = 0x30 + rnd[0] % 31
                out[i + 1] = 0x21 + rnd[1] % 94
            i += 2
            continue
        kind_of = _KINDS.get(c)
        if kind_of is not None:
            alphabet, at = kind_of
            out[i] = alphabet[_cycle(h.copy().digest(), len(alphabet))[at]]
        elif c >= 128:
            out[i] = _UPPER[h.copy().digest()[0] % 26]      # non-ASCII bytes: letters
        h.update(core[i:i + 1])
        i += 1
    return bytes(out)


def _cycle(rnd: bytes, n: int) -> list[int]:
    """A permutation of ``range(n)`` that is one cycle (Sattolo's
    algorithm): no element stays in place."""
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rnd[i] % i
        p[i], p[j] = p[j], p[i]
    return p


def _short_uid(uid: str, digits: str) -> str:
    """A UID too short for ``2.25.`` (five characters or fewer): its root arc
    (0, 1 or 2) and dots kept, new digits elsewhere, no component of two
    digits or more beginning with 0 (PS3.5 9.1). Same length: every UID
    keeps its length, none needs to change it."""
    head, dot, tail = uid.partition(".")
    if not dot:
        head, tail = "", uid
    out = []
    for i, c in enumerate(tail):
        if c == ".":
            out.append(c)
        elif (i == 0 or tail[i - 1] == ".") and i + 1 < len(tail) and tail[i + 1] != ".":
            out.append(str(1 + int(digits[i]) % 9))      # a component's first digit
        else:
            out.append(digits[i])
    return head + dot + "".join(out)


def blank_text(raw: bytes) -> bytes:
    return b" " * len(raw)


def replace_value(mapper: Mapper, vr: str | None, raw: bytes) -> bytes:
    """The replacement of a value that the profile removes, empties or
    replaces with a dummy, by its VR (None: unknown, as in implicit VR
    private elements): same length, never the original."""
    if vr == "UI":
        return mapper.uid_value(raw)
    if vr in TEXT_PSEUDONYM:
        return mapper.pseudonym(raw)
    if vr in DATES:
        return dates.dummy(raw, vr)[0]
    if vr in TEXT_BLANK:
        return blank_text(raw)
    return bytes(len(raw))
