"""The report page: one HTML file with everything inline.

The Jinja2 template (``templates/report.html.j2``) lays out the parts that
read without a script (the summary, the findings by kind); the script
(``static/report.js`` and the modules beside it) draws the rest as SVG from
the model, which rides in the page as JSON in a
``<script type="application/json">`` block. Nothing is fetched when the
page opens: it works offline and as a mail attachment.
"""

from __future__ import annotations

import json
from pathlib import Path

from dicomwire.exporters.report.build import paused_gc

HERE = Path(__file__).resolve().parent
# The page's scripts, in the order they run (each a plain script, no modules:
# file:// pages cannot import).
SCRIPTS = ("util.js", "timeline.js", "ladder.js", "charts.js", "report.js")


def pack(model: dict) -> dict:
    """The model made smaller for the page: every list of dicts becomes
    ``{"$s": N, "$rows": [[...], ...]}``, rows of values in the order of
    schema N, ``$schemas[N]``: the keys of every dict found at that place
    in the model (``associations.events``, ...), most used first, so a row
    ends where its dict's keys do (null where a key is absent). The page's
    script unpacks it (``DW.unpack``), leaving out null values: in the page
    null and absent are the same. A busy capture's page is half the size."""
    counts: dict[tuple, dict] = {}
    _count(model, (), counts)
    schemas = {path: sorted(c, key=lambda k: -c[k]) for path, c in counts.items()}
    index = {path: n for n, path in enumerate(schemas)}
    packed = _pack(model, (), schemas, index)
    packed["$schemas"] = list(schemas.values())
    return packed


def _table(value) -> bool:
    # The model's lists hold one kind of thing: the first item tells.
    return type(value) is list and bool(value) and type(value[0]) is dict


# Values that hold nothing to pack: most of the model, so tested first.
_PLAIN = (str, int, float, bool, type(None))


def _count(value, path, counts):
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(v, _PLAIN):
                _count(v, path + (k,), counts)
    elif _table(value):
        c = counts.setdefault(path, {})
        sub: dict = {}                  # key -> its path, made once per table
        for d in value:
            for k, v in d.items():
                if v is None:
                    c.setdefault(k, 0)
                    continue
                c[k] = c.get(k, 0) + 1
                if not isinstance(v, _PLAIN):
                    _count(v, sub.get(k) or sub.setdefault(k, path + (k,)), counts)
    elif isinstance(value, list):
        for v in value:
            if not isinstance(v, _PLAIN):
                _count(v, path, counts)


def _pack(value, path, schemas, index):
    if isinstance(value, dict):
        return {k: v if isinstance(v, _PLAIN) else _pack(v, path + (k,), schemas, index)
                for k, v in value.items()}
    if _table(value):
        keys, rows = schemas[path], []
        subs = [path + (k,) for k in keys]
        for d in value:
            row = [d.get(k) for k in keys]
            for i, v in enumerate(row):
                if not isinstance(v, _PLAIN):
                    row[i] = _pack(v, subs[i], schemas, index)
            while row and row[-1] is None:
                row.pop()
            rows.append(row)
        return {"$s": index[path], "$rows": rows}
    if isinstance(value, list):
        return [v if isinstance(v, _PLAIN) else _pack(v, path, schemas, index) for v in value]
    return value


def unpack(value, schemas=None):
    """:func:`pack` undone, null values left out (as the page reads it)."""
    if schemas is None and isinstance(value, dict) and "$schemas" in value:
        schemas = value["$schemas"]
        value = {k: v for k, v in value.items() if k != "$schemas"}
    if isinstance(value, list):
        return [unpack(v, schemas) for v in value]
    if isinstance(value, dict):
        if "$s" in value:
            keys = schemas[value["$s"]]
            return [{k: unpack(v, schemas) for k, v in zip(keys, row) if v is not None}
                    for row in value["$rows"]]
        return {k: unpack(v, schemas) for k, v in value.items() if v is not None}
    return value


def embed_json(model: dict) -> str:
    """The model (packed) as JSON that cannot end its <script> block early:
    '<', '>' and '&' escaped as JSON escapes (JSON.parse reads them back),
    and the two line separators JavaScript once refused in strings."""
    text = json.dumps(pack(model), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _static(name: str) -> str:
    text = (HERE / "static" / name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} would end its inline block early")
    return text


def page_html(model: dict) -> str:
    """The report page for ``model`` (see :mod:`.build`)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["seconds"] = seconds
    env.filters["count"] = lambda n: f"{n:,}"
    return env.get_template("report.html.j2").render(
        m=model, s=model["summary"], data=embed_json(model), css=_static("report.css"),
        scripts=[_static(name) for name in SCRIPTS], by_kind=findings_by_kind(model))


def write_report(model: dict, out) -> int:
    """Write the page to ``out`` (a path, or a binary file); returns its
    size in bytes."""
    with paused_gc(thaw=True):
        data = page_html(model).encode("utf-8")
    if hasattr(out, "write"):
        out.write(data)
    else:
        with open(out, "wb") as f:
            f.write(data)
    return len(data)


def seconds(value) -> str:
    """A duration for people: ms under a second, s with three decimals above."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:,.3f} s"


def findings_by_kind(model: dict) -> list[dict]:
    """The findings grouped by name, most severe first (the `expert`
    summary): name, severity, hint, count, the first few listed."""
    kinds: dict[str, dict] = {}
    for f in model["findings"]:
        k = kinds.setdefault(f["name"], {"name": f["name"], "severity": f["severity"],
                                         "hint": model["finding_kinds"][f["name"]]["hint"],
                                         "count": 0, "first": []})
        k["count"] += 1
        if len(k["first"]) < 3:
            k["first"].append(f)
    return list(kinds.values())
