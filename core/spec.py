"""The spec runtime: generic Construct machinery the protocol packs declare
their wire layouts with.  It names no protocol; a pack's declarations (in
``specs/<proto>/``) import it.

- :class:`SpecError`: the one exception of a pack's parse and build, with
  the Construct path (``"body -> items -> [2] -> length"``) and an offset.
- Building blocks: :class:`Latin1` / :data:`Text` (bytes as one character
  per byte), :class:`ToEnd` (repeat to the end of a bounded body, errors
  kept), :class:`ByType` (dispatch on a leading type byte), :class:`Fail`,
  :class:`Require`, :func:`sized` (a length field and a value parsed from
  exactly that many bytes, the length recomputed on build).
- :func:`struct_of`: the ``struct.Struct`` fast path of a fixed-layout
  declaration, derived from it (:func:`struct_names` names what it unpacks).
- :func:`parse_located`: a parse that also returns where every field was:
  :class:`Located` records (path, offset, size, value, declaration).
- :func:`doc`: standard references and enumerations as data on a field
  (:func:`field_docs` reads them back).
- :func:`parse` / :func:`build`: Construct's, with errors as SpecError.
"""

from __future__ import annotations

import copy
import functools
import io
import struct
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

from construct import (
    Adapter,
    Bytes,
    CheckError,
    Const,
    Construct,
    ConstructError,
    ExplicitError,
    FixedSized,
    FormatField,
    GreedyBytes,
    ListContainer,
    Rebuild,
    Renamed,
    SizeofError,
    StringError,
    Struct,
    Subconstruct,
    this,
)
from construct.core import stream_read, stream_seek, stream_tell

# ===========================================================================
# Errors
# ===========================================================================


class SpecError(ValueError):
    """Malformed input, or values that cannot be built.

    ``path`` is where Construct was when it failed (``"body -> items -> [2]
    -> length"``), or a field name for errors found by a fast path;
    ``offset`` is a byte offset when one is known.
    """

    def __init__(self, message: str, path: str | None = None,
                 offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset

    def __str__(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{self.message} ({', '.join(where)})" if where else self.message

    @classmethod
    def from_construct(cls, err: ConstructError) -> "SpecError":
        """Wrap a Construct error, keeping its path (without the
        ``(parsing)``/``(building)`` root marker) and its bare message."""
        path = err.path
        message = str(err)
        if path is not None:
            prefix = f"Error in path {path}\n"
            if message.startswith(prefix):
                message = message[len(prefix):]
            for root in ("(parsing) -> ", "(building) -> "):
                if path.startswith(root):
                    path = path[len(root):]
            if path in ("(parsing)", "(building)"):
                path = None
        return cls(message or type(err).__name__, path=path)


def build(spec: Construct, obj: Any) -> bytes:
    """``spec.build(obj)`` with errors as :class:`SpecError` (a missing
    required field included)."""
    try:
        return spec.build(obj)
    except ConstructError as err:
        raise SpecError.from_construct(err) from err
    except (KeyError, AttributeError) as err:
        # Struct raises KeyError for a missing required field; a context
        # lambda raises AttributeError for one it needs.
        raise SpecError(f"missing field: {err}") from err


def parse(spec: Construct, data) -> Any:
    """``spec.parse(data)`` with errors as :class:`SpecError`.  The caller
    bounds ``data`` (no check that all of it was used)."""
    try:
        return spec.parse(bytes(data))
    except ConstructError as err:
        raise SpecError.from_construct(err) from err


# ===========================================================================
# Building blocks
# ===========================================================================


class Latin1(Adapter):
    """Bytes shown as a latin-1 ``str``: one character per byte, so every
    byte string decodes and re-encodes to itself.  Builds from ``str`` (each
    character < 256) or bytes-like."""

    def _decode(self, obj, context, path):
        return obj.decode("latin-1")

    def _encode(self, obj, context, path):
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        if isinstance(obj, str):
            try:
                return obj.encode("latin-1")
            except UnicodeEncodeError as exc:
                raise StringError(f"not a latin-1 string: {obj!r} ({exc})",
                                  path=path) from None
        raise StringError(f"expected str or bytes, got {type(obj).__name__}",
                          path=path)


#: Whole remaining (bounded) stream as latin-1 text.
Text = Latin1(GreedyBytes)


class ToEnd(Subconstruct):
    """Repeat ``subcon`` until the end of the enclosing bounded stream (a
    ``FixedSized`` body).  Unlike ``GreedyRange`` it does not stop silently
    at the first element that fails: the element's error propagates with its
    index in the path, so a malformed last element is reported, never
    dropped."""

    def _parse(self, stream, context, path):
        here = stream_tell(stream, path)
        stream_seek(stream, 0, io.SEEK_END, path)
        end = stream_tell(stream, path)
        stream_seek(stream, here, io.SEEK_SET, path)
        items = ListContainer()
        index = 0
        while stream_tell(stream, path) < end:
            context._index = index
            items.append(self._element(stream, context, f"{path} -> [{index}]"))
            index += 1
        return items

    def _element(self, stream, context, path):
        return self.subcon._parsereport(stream, context, path)

    def _build(self, obj, stream, context, path):
        built = ListContainer()
        for index, element in enumerate(obj):
            context._index = index
            built.append(self.subcon._build(element, stream, context,
                                            f"{path} -> [{index}]"))
        return built

    def _sizeof(self, context, path):
        raise SizeofError("ToEnd has no fixed size", path=path)


class ByType(Construct):
    """Dispatch on the first byte (a type code) to the declaration
    registered for it; ``default`` for unknown codes.  Parsing peeks the
    byte; building reads ``obj[key]``."""

    def __init__(self, cases: dict[int, Construct], default: Construct,
                 key: str = "item_type") -> None:
        super().__init__()
        self.cases = cases
        self.default = default
        self.key = key

    def _parse(self, stream, context, path):
        here = stream_tell(stream, path)
        kind = stream_read(stream, 1, path)[0]
        stream_seek(stream, here, io.SEEK_SET, path)
        return self.cases.get(kind, self.default)._parsereport(stream, context, path)

    def _build(self, obj, stream, context, path):
        kind = obj.get(self.key) if hasattr(obj, "get") else None
        if kind is None:
            raise ExplicitError(f"cannot build without {self.key!r}", path=path)
        return self.cases.get(kind, self.default)._build(obj, stream, context, path)

    def _sizeof(self, context, path):
        raise SizeofError("size depends on the content", path=path)


class Fail(Construct):
    """Raise a Construct error naming the offending value (a Switch default
    for unknown codes): ``message(ctx)`` is its text."""

    def __init__(self, message: Callable[[Any], str]) -> None:
        super().__init__()
        self.message = message
        self.flagbuildnone = True

    def _parse(self, stream, context, path):
        raise ExplicitError(self.message(context), path=path)

    def _build(self, obj, stream, context, path):
        raise ExplicitError(self.message(context), path=path)

    def _sizeof(self, context, path):
        raise SizeofError(path=path)


class Require(Construct):
    """A Check with a message: ``func(ctx)`` must be true, else CheckError
    with ``message.format(**ctx)``."""

    def __init__(self, func: Callable[[Any], bool], message: str) -> None:
        super().__init__()
        self.func = func
        self.message = message
        self.flagbuildnone = True

    def _parse(self, stream, context, path):
        if not self.func(context):
            raise CheckError(self.message.format(**context), path=path)

    def _build(self, obj, stream, context, path):
        self._parse(stream, context, path)

    def _sizeof(self, context, path):
        return 0


def built_size(subcon: Construct, name: str) -> Callable[[Any], int]:
    """Context function: the size of ``subcon`` built from ``ctx[name]``,
    for a length field declared before the value it measures."""

    def size(ctx) -> int:
        out = io.BytesIO()
        subcon._build(ctx.get(name), out, ctx, f"(length of {name})")
        return len(out.getvalue())

    return size


def sized(length_name: str, length_field: Construct, name: str,
          subcon: Construct) -> tuple[Construct, Construct]:
    """Two fields: a length (parsed and kept, recomputed on build) and a value
    parsed from exactly that many bytes (``FixedSized``: it can never read
    past them, and a length beyond its parent's end is a StreamError)."""
    return (
        length_name / Rebuild(length_field, built_size(subcon, name)),
        name / FixedSized(this[length_name], subcon),
    )


# ===========================================================================
# References and enumerations as data
# ===========================================================================


@dataclass(frozen=True)
class Doc:
    """What a standard says about a field: ``ref`` (the section that defines
    it, e.g. a clause number), ``enum`` (value -> meaning, or the name of a
    table), ``text`` (a short description)."""
    ref: str | None = None
    enum: Mapping | str | None = None
    text: str | None = None


def doc(field: Construct, ref: str | None = None, enum: Mapping | str | None = None,
        text: str | None = None) -> Construct:
    """Attach a :class:`Doc` to a named field (``"name" / Int8ub``); the
    field parses and builds as before.  Construct's own ``docs`` string
    gets the reference too, so ``repr``-style tools show it."""
    if not isinstance(field, Renamed):
        raise TypeError("doc() documents a named field: 'name' / subcon")
    field.spec_doc = Doc(ref, enum, text)
    field.docs = field.docs or " ".join(x for x in (ref, text) if x)
    return field


def _walk(spec: Construct):
    """(path, declaration) of every named field reachable from ``spec``, in
    declaration order; list elements and dispatch cases add nothing to a
    path."""
    active: set[int] = set()

    def visit(con, path):
        if id(con) in active:          # a declaration that contains itself
            return
        active.add(id(con))
        if isinstance(con, Renamed):
            path = path + (con.name,)
            yield path, con
        for sub in _children(con):
            yield from visit(sub, path)
        active.discard(id(con))

    yield from visit(spec, ())


def named_fields(spec: Construct) -> dict[tuple, Renamed]:
    """Every named field declaration reachable from ``spec``, by path of
    field names (where two dispatch cases name the same path, the first
    reached wins: use the case's own declaration to be exact)."""
    out: dict[tuple, Renamed] = {}
    for path, con in _walk(spec):
        out.setdefault(path, con)
    return out


def field_docs(spec: Construct) -> dict[tuple, Doc]:
    """Every documented field reachable from ``spec``: path -> :class:`Doc`
    (the first documented declaration of each path)."""
    out: dict[tuple, Doc] = {}
    for path, con in _walk(spec):
        d = getattr(con, "spec_doc", None)
        if d is not None:
            out.setdefault(path, d)
    return out


def _children(con: Construct) -> list:
    subs = []
    for attr in ("subcon", "default"):
        sub = getattr(con, attr, None)
        if isinstance(sub, Construct):
            subs.append(sub)
    if isinstance(getattr(con, "subcons", None), list):
        subs.extend(con.subcons)
    if isinstance(getattr(con, "cases", None), dict):
        subs.extend(con.cases.values())
    return subs


# ===========================================================================
# Struct fast paths derived from declarations
# ===========================================================================


def _unwrap(sc: Construct) -> Construct:
    """Through the wrappers that do not change the bytes: names, defaults,
    rebuilt values, docs."""
    while isinstance(sc, (Renamed, Rebuild)) or type(sc).__name__ == "Default":
        sc = sc.subcon
    return sc


def _field_format(sc: Construct) -> tuple[str, str | None, bool]:
    """(struct code, byte order or None, unpacked) of one fixed field."""
    sc = _unwrap(sc)
    if isinstance(sc, Const):
        inner = _unwrap(sc.subcon)
        if isinstance(inner, Bytes):
            # A constant byte string: skipped by the fast path (the slow
            # path checks it).
            return f"{_fixed_length(inner)}x", None, False
        code, order, _ = _field_format(inner)
        return code, order, True
    if isinstance(sc, FormatField):
        order, code = sc.fmtstr[0], sc.fmtstr[1:]
        if order not in "<>":
            raise TypeError(f"no explicit byte order: {sc.fmtstr}")
        size = struct.calcsize("<" + code)
        return code, (order if size > 1 else None), True
    if isinstance(sc, Bytes):
        return f"{_fixed_length(sc)}s", None, True
    raise TypeError(f"no struct format for {type(sc).__name__}")


def _fixed_length(sc: Bytes) -> int:
    if not isinstance(sc.length, int):
        raise TypeError("a Bytes field of variable length has no struct format")
    return sc.length


def struct_format(spec: Construct) -> str:
    """The ``struct`` format of a Struct made only of fixed-size fields:
    integers of one byte order, fixed ``Bytes`` (``"Ns"``), constant bytes
    (skipped: ``"Nx"``).  Raises TypeError for anything else."""
    if not isinstance(_unwrap(spec), Struct):
        raise TypeError("struct_format derives from a Struct")
    codes, orders = [], set()
    for sc in _unwrap(spec).subcons:
        code, order, _ = _field_format(sc)
        codes.append(code)
        if order:
            orders.add(order)
    if len(orders) > 1:
        raise TypeError("fields of both byte orders")
    return (orders.pop() if orders else ">") + "".join(codes)


def header_of(spec: Construct, *names: str) -> Struct:
    """The named leading fields of a Struct declaration as a Struct of their
    own: the same field declarations (declared once), a recomputed length
    (``Rebuild``) becoming a plain field given on build.  For the fixed
    header a fast path reads before the whole thing is there."""
    fields = {sc.name: sc for sc in _unwrap(spec).subcons if isinstance(sc, Renamed)}
    picked = []
    for name in names:
        sc = fields[name]
        inner = sc.subcon
        if isinstance(inner, Rebuild):
            plain = Renamed(inner.subcon, newname=name, newdocs=sc.docs)
            if hasattr(sc, "spec_doc"):
                plain.spec_doc = sc.spec_doc
            sc = plain
        picked.append(sc)
    return Struct(*picked)


def struct_of(spec: Construct) -> struct.Struct:
    """The ``struct.Struct`` fast path of a fixed-layout declaration:
    ``struct_of(s).unpack(data)`` gives the values of
    :func:`struct_names` ``(s)`` as ``s.parse(data)`` does (constant bytes
    excepted: the fast path skips them)."""
    return struct.Struct(struct_format(spec))


def struct_names(spec: Construct) -> tuple[str, ...]:
    """The names of the values :func:`struct_of` unpacks, in order."""
    return tuple(sc.name for sc in _unwrap(spec).subcons if _field_format(sc)[2])


# ===========================================================================
# Located parse
# ===========================================================================


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


__all__ = [
    "SpecError", "parse", "build",
    "Latin1", "Text", "ToEnd", "ByType", "Fail", "Require", "built_size", "sized",
    "Doc", "doc", "field_docs", "named_fields",
    "struct_format", "struct_of", "struct_names", "header_of",
    "Located", "parse_located", "located_spec",
]
