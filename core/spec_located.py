"""The located parse: :func:`parse_located` parses as a declaration does and
also says where every named field and every :class:`ToEnd` element was
(:class:`Located`: path, offset, size, value, declaration), for field maps
(the fuzzer), item offsets (renderers) and salvage.

Apart because it works on a recording mirror of the declaration tree
(:func:`located_spec`, made once per declaration) with its own
thread-local log, machinery no plain parse needs. Import these from
:mod:`dicomwire.spec`.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any, NamedTuple

from construct import Construct, Renamed
from construct.core import stream_tell

from dicomwire.spec_blocks import ToEnd
from dicomwire.spec_errors import parse


class Located(NamedTuple):
    """Where one field of parsed bytes is.  ``path`` is a tuple of field
    names and list indexes (``("body", "items", 2, "length")``); a path
    ending in an index is a whole list element.  ``offset``/``size`` locate
    its bytes (absolute: ``base`` added); ``decl`` is its declaration (the
    field's subconstruct)."""
    path: tuple
    offset: int
    size: int
    value: Any
    decl: Construct


_log = threading.local()
_mirrors: dict[int, Construct] = {}
_mirror_lock = threading.Lock()


class _LocatedField(Renamed):
    """A named field that records where it was parsed (Construct's bounded
    substreams report offsets in the outer stream)."""

    def _parse(self, stream, context, path):
        start = stream_tell(stream, path)
        obj = super()._parse(stream, context, path)
        _log.records.append((f"{path} -> {self.name}", start, stream_tell(stream, path),
                             obj, self.subcon))
        return obj


class _LocatedToEnd(ToEnd):
    """ToEnd recording each element's span."""

    def _element(self, stream, context, path):
        start = stream_tell(stream, path)
        obj = self.subcon._parsereport(stream, context, path)
        _log.records.append((path, start, stream_tell(stream, path), obj, self.subcon))
        return obj


def _mirror(con: Construct, memo: dict) -> Construct:
    """A copy of a declaration tree whose named fields and lists record
    themselves; the original declarations stay untouched."""
    if id(con) in memo:
        return memo[id(con)]
    new = copy.copy(con)
    memo[id(con)] = new
    if isinstance(con, Renamed):
        new.__class__ = _LocatedField
    elif type(con) is ToEnd:
        new.__class__ = _LocatedToEnd
    for attr in ("subcon", "default"):
        sub = getattr(con, attr, None)
        if isinstance(sub, Construct):
            setattr(new, attr, _mirror(sub, memo))
    if isinstance(getattr(con, "subcons", None), list):
        new.subcons = [_mirror(s, memo) for s in con.subcons]
    if isinstance(getattr(con, "cases", None), dict):
        new.cases = {k: _mirror(v, memo) for k, v in con.cases.items()}
    return new


def located_spec(spec: Construct) -> Construct:
    """The recording mirror of ``spec`` (made once, cached)."""
    with _mirror_lock:
        mirror = _mirrors.get(id(spec))
        if mirror is None:
            mirror = _mirrors[id(spec)] = _mirror(spec, {})
    return mirror


@functools.lru_cache(maxsize=4096)
def _path(text: str) -> tuple:
    parts = []
    for p in text.split(" -> "):
        if p in ("(parsing)", ""):
            continue
        parts.append(int(p[1:-1]) if p.startswith("[") else p)
    return tuple(parts)


def parse_located(spec: Construct, data, base: int = 0,
                  prefix: tuple = ()) -> tuple[Any, list[Located]]:
    """Parse ``data`` as ``spec`` and say where everything was: ``(value,
    located)``, ``located`` holding a :class:`Located` for every named field
    and every element of a :class:`ToEnd` list, in byte order (enclosing
    before enclosed), zero-size ones included.  ``base`` is added to every
    offset and ``prefix`` put before every path (to locate a piece parsed on
    its own inside bigger bytes).  Raises :class:`SpecError`."""
    mirror = located_spec(spec)
    outer = getattr(_log, "records", None)
    _log.records = []
    try:
        value = parse(mirror, data)
        raw = _log.records
    finally:
        _log.records = outer
    located = [Located(prefix + _path(text), base + start, end - start, obj, sc)
               for text, start, end, obj, sc in raw]
    located.sort(key=lambda f: (f.offset, -f.size))
    return value, located
