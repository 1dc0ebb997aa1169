"""References and enumerations as data on a declaration's fields:
:func:`doc` attaches a :class:`Doc` (the standard's section, the values'
meanings, a description) to a named field; :func:`field_docs` and
:func:`named_fields` read a declaration tree back by field path.

Apart because it describes declarations without taking part in parsing or
building (renderers, the field registry and the fuzzer read it). Import
these from :mod:`dicomwire.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from construct import Construct, Renamed


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
