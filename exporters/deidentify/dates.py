"""Dates and times replaced at their length, each new value a valid one of
its VR (PS3.5 6.2: DA ``YYYYMMDD``; DT ``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]``;
TM ``HH[MM[SS[.F]]]``), value by value (backslash-separated), ranges of
query keys (``A-B``, ``-B``, ``A-``, PS3.4 C.2.2.2.5) on both ends, padding
kept, an empty value left empty:

- :func:`dummy` (the Basic Profile's dummy or removal): dates 19000101 (a
  partial DT: its first digits), times 00:00:00, UTC offsets +0000.
- :func:`shift` (Retain Longitudinal Temporal Information with Modified
  Dates Option, PS3.15 E.3.6): the date moved by a whole number of days, the
  time of day, fraction and UTC offset kept; a TM stays as it is.

A value that is not a valid one of its VR is blanked (spaces) and reported.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re

_DA = re.compile(rb"(\d{4})(\d{2})(\d{2})")
_DT = re.compile(rb"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?")
_TM = re.compile(rb"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_ONE = {"DA": _DA, "DT": _DT, "TM": _TM}
UTC_OFFSET = re.compile(rb"([+-])(\d{2})(\d{2})")
# A whole number of weeks back, 1 to 10 years: weekdays (and so weekends,
# the rhythm of a department) stay as they were.
SHIFT_WEEKS = (53, 521)


def derived_shift(key: bytes) -> int:
    """The day offset of a key: the same key, the same offset."""
    n = int.from_bytes(hmac.new(key, b"date shift", hashlib.sha256).digest()[:4], "big")
    lo, hi = SHIFT_WEEKS
    return -7 * (lo + n % (hi - lo + 1))


def _valid(m, vr) -> bool:
    g = m.groups()
    try:
        if vr == "TM":
            h, mi, s = (int(x) if x else 0 for x in g[:3])
            return h < 24 and mi < 60 and s < 61
        y, mo, d = int(g[0]), int(g[1] or b"1"), int(g[2] or b"1")
        datetime.date(y, mo, d)
        if vr == "DT":
            h, mi, s = (int(x) if x else 0 for x in g[3:6])
            if not (h < 24 and mi < 60 and s < 61):
                return False
            if g[7] and not _offset_ok(g[7]):
                return False
        return True
    except ValueError:
        return False


def _offset_ok(b: bytes) -> bool:
    m = UTC_OFFSET.fullmatch(b)
    return bool(m) and int(m.group(2)) <= 14 and int(m.group(3)) < 60


def _parts(value: bytes, vr: str):
    """One value as [(text, is a date/time)]: a single one or a range."""
    rx = _ONE[vr]
    if rx.fullmatch(value):
        return [(value, True)]
    at = value.find(b"-")
    while at >= 0:                  # a DT's UTC offset has a '-' too: each one tried
        left, right = value[:at], value[at + 1:]
        if (left or right) and (not left or rx.fullmatch(left)) and \
                (not right or rx.fullmatch(right)):
            return [(left, bool(left)), (b"-", False), (right, bool(right))]
        at = value.find(b"-", at + 1)
    return None


def _each(raw: bytes, vr: str, one) -> tuple[bytes, bool]:
    """``raw`` with every date/time in it replaced by ``one(match, text)``;
    (new, False) when a value is not valid: then all blank."""
    core = raw.rstrip(b" \0")
    out = []
    for v in core.split(b"\\"):
        lead = len(v) - len(v.lstrip(b" "))
        body = v.strip(b" ")
        if not body:
            out.append(v)
            continue
        parts = _parts(body, vr)
        if parts is None:
            return b" " * len(raw), False
        new = b""
        for text, is_value in parts:
            if is_value:
                m = _ONE[vr].fullmatch(text)
                if not _valid(m, vr):
                    return b" " * len(raw), False
                text = one(m, text)
                if text is None:
                    return b" " * len(raw), False
            new += text
        out.append(v[:lead] + new + v[lead + len(body):])
    return b"\\".join(out) + raw[len(core):], True


def _dummy_one(vr):
    def one(m, text):
        if vr == "TM":
            return re.sub(rb"\d", b"0", text)
        g = m.groups()
        n = sum(len(x) for x in g[:3] if x)
        off = (g[7] if vr == "DT" else None) or b""
        middle = text[n:len(text) - len(off)]
        return b"19000101"[:n] + re.sub(rb"\d", b"0", middle) + (b"+0000" if off else b"")
    return one


def dummy(raw: bytes, vr: str) -> tuple[bytes, bool]:
    """The dummy of a DA, DT or TM value; (value, valid)."""
    return _each(raw, vr, _dummy_one(vr))


def shift(raw: bytes, vr: str, days: int) -> tuple[bytes, bool]:
    """A DA or DT value moved by ``days`` (a TM kept); (value, valid)."""
    def one(m, text):
        if vr == "TM":
            return text
        g = m.groups()
        y, mo, d = int(g[0]), int(g[1] or b"1"), int(g[2] or b"1")
        try:
            new = datetime.date(y, mo, d) + datetime.timedelta(days=days)
        except OverflowError:
            return None
        digits = b"%04d%02d%02d" % (new.year, new.month, new.day)
        n = sum(len(x) for x in g[:3] if x)
        return digits[:n] + text[n:]
    return _each(raw, vr, one)


def utc_offset(raw: bytes) -> bytes:
    """Timezone Offset From UTC (0008,0201), SH holding ``&ZZXX``: +0000 in
    place of a valid one, blank in place of anything else."""
    core = raw.strip(b" ")
    if _offset_ok(core):
        return raw.replace(core, b"+0000", 1)
    return b" " * len(raw)
