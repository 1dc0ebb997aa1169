"""Export file names: the ``--name`` template, the values it may name, and
the sanitising that keeps every component of a name from the capture safe
(no separators, no '..', bounded).

Apart from the exporter because it is pure text work on a message's
values; which names a run has taken (never overwrite, ``_k`` suffixes) is
the exporter's state and stays there.
"""

from __future__ import annotations

import os
import re
import string

DEFAULT_NAME = "{frame:06d}-{n}-{what}"
MAX_NAME = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._^=-]+")
_SAFE = re.compile(r"[A-Za-z0-9^=-][A-Za-z0-9._^=-]*(?<![._])")   # what safe_component keeps


def safe_component(value, limit: int = 64) -> str:
    """A file name component from capture data: no separators, no '..', bounded."""
    s = str(value or "")
    if not _SAFE.fullmatch(s):             # the usual UID or AE title: as it is
        s = _UNSAFE.sub("_", s).strip("._")
    return (s or "unknown")[:limit]


def template_fields(template: str) -> set:
    """The field names a ``--name`` template uses."""
    return {name.split(".")[0].split("[")[0] for _t, name, _f, _c
            in string.Formatter().parse(template) if name}


def name_fields(m, used: set, frame, n, what, part, sop) -> dict:
    """The values of the template fields ``used``, for the ``part`` of
    message ``m``: only those are computed (per object, so it counts)."""
    a = m.assoc
    fields = {}
    for k in used:
        if k == "frame":
            fields[k] = frame
        elif k == "n":
            fields[k] = n
        elif k == "what":
            fields[k] = safe_component(what, 80)
        elif k == "calling":
            fields[k] = safe_component(a.calling_ae if a else None)
        elif k == "called":
            fields[k] = safe_component(a.called_ae if a else None)
        elif k == "sop":
            fields[k] = safe_component(sop)      # the Media Storage SOP Instance UID
        elif k == "command":
            fields[k] = safe_component(m.name)
        elif k == "part":
            fields[k] = part
        elif k in ("study", "series"):
            fields[k] = "unknown"
    if "study" in used or "series" in used:
        fields.update(_study_series(m) if part == "dataset" else {})
    return fields


def template_path(template: str, fields: dict) -> tuple[str, bool]:
    """(the relative ``.dcm`` path the template gives, whether it names
    folders). Raises ValueError for a template that does not format."""
    try:
        base = template.format(**fields)
    except (KeyError, ValueError, IndexError) as e:
        raise ValueError(f"bad --name template {template!r}: {e}") from None
    # Templates may make folders ('/'); each component stays safe.
    parts = [safe_component(p, MAX_NAME) for p in base.split("/") if p not in ("", ".", "..")]
    rel = os.path.join(*parts) if parts else "object"
    return rel[:MAX_NAME] + ".dcm", len(parts) > 1


def _study_series(m) -> dict:
    try:
        ds = m.dataset()
        return dict(study=safe_component(ds.get("StudyInstanceUID")),
                    series=safe_component(ds.get("SeriesInstanceUID")))
    except Exception:
        return {}
