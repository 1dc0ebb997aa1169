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

HERE = Path(__file__).resolve().parent
# The page's scripts, in the order they run (each a plain script, no modules:
# file:// pages cannot import).
SCRIPTS = ("util.js", "timeline.js", "ladder.js", "charts.js", "report.js")


def embed_json(model: dict) -> str:
    """The model as JSON that cannot end its <script> block early: '<', '>'
    and '&' escaped as JSON escapes (JSON.parse reads them back), and the
    two line separators JavaScript once refused in strings."""
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
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
    summary): name, severity, group, hint, count, the first few listed."""
    kinds: dict[str, dict] = {}
    for f in model["findings"]:
        k = kinds.setdefault(f["name"], {"name": f["name"], "severity": f["severity"],
                                         "group": f["group"], "hint": f["hint"],
                                         "count": 0, "first": []})
        k["count"] += 1
        if len(k["first"]) < 3:
            k["first"].append(f)
    return list(kinds.values())
