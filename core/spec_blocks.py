"""Building blocks of the spec runtime, the generic pieces a pack's
declarations are made of: :class:`Latin1` / :data:`Text` (bytes as one
character per byte), :class:`ToEnd` (repeat to the end of a bounded body,
errors kept), :class:`ByType` (dispatch on a leading type byte),
:class:`Fail`, :class:`Require`, :func:`sized` (a length field and a value
parsed from exactly that many bytes, the length recomputed on build).

Apart because these are Construct classes that parse and build; what is
derived from declarations (struct fast paths, the located parse, the
documentation) lives in the other ``spec_*`` modules. Import these from
:mod:`dicomwire.spec`.
"""

from __future__ import annotations

import io
from typing import Any, Callable

from construct import (
    Adapter,
    CheckError,
    Construct,
    ExplicitError,
    FixedSized,
    GreedyBytes,
    ListContainer,
    Rebuild,
    SizeofError,
    StringError,
    Subconstruct,
    this,
)
from construct.core import stream_read, stream_seek, stream_tell


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
