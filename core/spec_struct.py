"""Struct fast paths derived from declarations: :func:`struct_of` gives the
``struct.Struct`` of a fixed-layout declaration (:func:`struct_names` names
what it unpacks, :func:`struct_format` is its format), :func:`header_of`
the leading fields of a declaration as a declaration of their own.

Apart because a hot path unpacks with these instead of parsing, and they
must agree with the declarations they come from: deriving them in one
place keeps each layout declared once. Import these from
:mod:`dicomwire.spec`.
"""

from __future__ import annotations

import struct

from construct import Bytes, Const, Construct, FormatField, Rebuild, Renamed, Struct


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


def _flat(spec: Construct, prefix: str = ""):
    """(dotted name or None, field) of a Struct's fields, nested Structs
    flattened (``"ip.protocol"``)."""
    for sc in _unwrap(spec).subcons:
        name = f"{prefix}{sc.name}" if isinstance(sc, Renamed) else None
        if name is not None and isinstance(_unwrap(sc), Struct):
            yield from _flat(sc, name + ".")
        else:
            yield name, sc


def struct_format(spec: Construct, only=None) -> str:
    """The ``struct`` format of a Struct made only of fixed-size fields:
    integers of one byte order, fixed ``Bytes`` (``"Ns"``), constant bytes
    (skipped: ``"Nx"``), nested Structs of such fields.  ``only``: the
    dotted names to unpack; every other field is skipped (``"Nx"``) and
    skips at the end are left out, so a fast path reads just what it needs
    of a layout declared whole.  Raises TypeError for anything else."""
    if not isinstance(_unwrap(spec), Struct):
        raise TypeError("struct_format derives from a Struct")
    codes, orders = [], set()
    for name, sc in _flat(spec):
        code, order, unpacked = _field_format(sc)
        if only is not None and unpacked and name not in only:
            code, unpacked = f"{struct.calcsize('<' + code)}x", False
        codes.append(code)
        if order and unpacked:
            orders.add(order)
    if only is not None:
        missing = set(only) - {n for n, _ in _flat(spec)}
        if missing:
            raise KeyError(f"no such fields: {sorted(missing)}")
        while codes and codes[-1].endswith("x"):
            codes.pop()
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


def struct_of(spec: Construct, only=None) -> struct.Struct:
    """The ``struct.Struct`` fast path of a fixed-layout declaration:
    ``struct_of(s).unpack(data)`` gives the values of
    :func:`struct_names` ``(s)`` as ``s.parse(data)`` does (constant bytes
    excepted: the fast path skips them); ``only`` as for
    :func:`struct_format`."""
    return struct.Struct(struct_format(spec, only))


def struct_names(spec: Construct, only=None) -> tuple[str, ...]:
    """The (dotted) names of the values :func:`struct_of` unpacks, in order."""
    return tuple(name for name, sc in _flat(spec) if _field_format(sc)[2]
                 and (only is None or name in only))
