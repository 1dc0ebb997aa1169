"""The spec runtime's error boundary: :class:`SpecError`, the one exception
of a pack's parse and build, with the Construct path (``"body -> items ->
[2] -> length"``) and an offset; :func:`parse` and :func:`build`,
Construct's with its errors turned into SpecError.

Apart because every other part of the runtime, and every pack, raises or
converts through it. Import these from :mod:`dicomwire.spec`.
"""

from __future__ import annotations

from typing import Any

from construct import Construct, ConstructError


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
