"""The Part 10 exporter in a ``--dask`` run: each worker wrote its objects
into a scratch folder inside the output (``.dicomwire-RUN/PART``, see
:meth:`dicomwire.exporters.part10.Part10Exporter.cluster_start`); here, in
the client, the objects of the streams the merge keeps are put in the
one-process order and their files moved into the output under the names
one pass gives them (a rename: same file system, no copy)."""

from __future__ import annotations

import os

from dicomwire.merge import Mismatch


def merge_objects(exp, values, keep, remap):
    """``values``: per part, what ``cluster_result`` returned."""
    rows = []
    for part, value in enumerate(values):
        if value is None:
            continue
        objects, stamps, scratch = value
        for ex, (key, sid) in zip(objects, stamps):
            if keep(part, sid):
                rows.append((key, part, ex, scratch))
    rows.sort(key=lambda r: (r[0], r[1]))
    names = set()
    moves = []
    for _key, _part, ex, scratch in rows:
        ex.hosts = remap(ex.hosts)
        if ex.path is None:
            continue
        if ex.name in names or exp.outdir is None \
                or os.path.lexists(os.path.join(exp.outdir, ex.name)):
            raise Mismatch(f"{ex.name}: a name one pass would have given another file")
        names.add(ex.name)
        moves.append((os.path.join(scratch, ex.name), ex))
    for src, ex in moves:
        dst = os.path.join(exp.outdir, ex.name)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        os.replace(src, dst)
        ex.path = dst
    exp.objects = [r[2] for r in rows]
