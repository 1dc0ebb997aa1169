"""docs/ARCHITECTURE.md stays true: its example pack is the file it names and
works with today's engine, and every module, class, function, hook, file and
test it names exists."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import sys
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import pytest

import capgen as g
from dicomgen import valid_session
from dicomwire import hookspecs
from dicomwire.expert import ExpertLog
from dicomwire.plugins.dicom import hookspecs as dicom_hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE = EXAMPLES / "mllp.py"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def inline_names() -> set[str]:
    """What the doc puts in `backticks`, outside fenced code blocks."""
    prose = re.sub(r"^```.*?^```", "", doc_text(), flags=re.S | re.M)
    return {" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)}


# -- the example pack ------------------------------------------------------------


def test_the_doc_shows_the_example_file_verbatim():
    blocks = re.findall(r"^```python\n(.*?)^```", doc_text(), flags=re.S | re.M)
    shown = [b for b in blocks if b.startswith("# mllp.py")]
    assert len(shown) == 1, "the doc must show docs/examples/mllp.py once"
    assert shown[0] == EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
def mllp(monkeypatch):
    """The example importable as ``mllp`` (as ``PYTHONPATH=docs/examples``),
    for ``-p mllp``; forgotten again afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "mllp", raising=False)
    yield importlib.import_module("mllp")
    sys.modules.pop("mllp", None)


def mllp_frame(*segments: str) -> bytes:
    return b"\x0b" + "".join(s + "\r" for s in segments).encode() + b"\x1c\r"


MSH = "MSH|^~\\&|{}|HOSP|{}|HOSP|20260101120000||{}|{}|P|2.5"
ADT1 = mllp_frame(MSH.format("RIS", "PACS", "ADT^A01", "MSG00001"), "PID|1||123^^^HOSP||DOE^JOHN")
NACK = mllp_frame(MSH.format("PACS", "RIS", "ACK^A01", "ACK00001"), "MSA|AE|MSG00001|no patient")
ADT2 = mllp_frame(MSH.format("RIS", "PACS", "ADT^A08", "MSG00002"), "PID|1||123^^^HOSP||DOE^JANE")
ACK2 = mllp_frame(MSH.format("PACS", "RIS", "ACK^A08", "ACK00002"), "MSA|AA|MSG00002")
JUNK = b"hello?\r\n"
MLLP_STEPS = [(0, ADT1), (1, NACK), (0, ADT2[:25]), (0, ADT2[25:]), (1, ACK2), (0, JUNK + ADT1)]
# Frames of capgen.exchange: SYN 1, SYN/ACK 2, then each step and its ACK.
NACK_FRAME, JUNK_FRAME = 5, 13


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """HL7/MLLP on port 2575, then a whole DICOM association on 11112."""
    packets = g.exchange("10.0.0.1", "10.0.0.2", 40001, 2575, MLLP_STEPS)
    packets += g.exchange("10.0.0.1", "10.0.0.3", 40002, 11112, valid_session())
    path = tmp_path_factory.mktemp("arch") / "hl7_and_dicom.pcap"
    path.write_bytes(g.pcap([(1_700_000_000_000_000_000 + i * 1_000_000, g.ethernet(p))
                             for i, p in enumerate(packets)]))
    return path


def cli_json(cli, *args):
    return json.loads(cli(*args, ok=True).stdout)


def test_example_pack_reports_its_findings(mllp, capture, cli):
    doc = cli_json(cli, "expert", "-T", "json", "-p", "mllp", capture)
    names = [i["name"] for i in doc["infos"]]
    assert "plugin.failed" not in names
    nack = [i for i in doc["infos"] if i["name"] == "mllp.nack"]
    assert [(i["message"], i["frames"], i["stream"]) for i in nack] == \
        [("message MSG00001 refused (AE)", [NACK_FRAME], 0)]
    junk = [i for i in doc["infos"] if i["name"] == "mllp.junk"]
    assert [(i["message"], i["frames"]) for i in junk] == \
        [(f"{len(JUNK)} bytes outside a frame", [JUNK_FRAME])]
    assert {r["name"]: r["severity"] for r in doc["summary"]
            if r["name"].startswith("mllp.")} == {"mllp.nack": "warn", "mllp.junk": "error"}


def test_example_pack_and_dicom_pack_side_by_side(mllp, capture, cli):
    out = cli("show", "-p", "mllp", capture, ok=True).stdout
    assert "A-ASSOCIATE request MODALITY --> STORESCP" in out
    assert "C-ECHO-RQ" in out and "C-STORE-RSP" in out
    assert ":2575" not in out                          # not DICOM: the example's stream


def test_example_pack_runs_without_the_dicom_pack(mllp, capture, cli):
    doc = cli_json(cli, "expert", "-T", "json", "-p", "no:dicom", "-p", "mllp", capture)
    names = {i["name"] for i in doc["infos"]}
    assert {"mllp.nack", "mllp.junk"} <= names
    assert not any(n.startswith("dicom.") or n == "plugin.failed" for n in names)


def test_streams_without_the_dicom_pack(capture, cli):
    doc = cli_json(cli, "streams", "-T", "json", "-p", "no:dicom", capture)
    rows = {int(r["server"].rsplit(":", 1)[1]): r for r in doc["streams"]}
    assert sorted(rows) == [2575, 11112]
    hl7 = rows[2575]
    assert hl7["bytes_c2s"] == sum(len(p) for d, p in MLLP_STEPS if d == 0)
    assert hl7["bytes_s2c"] == sum(len(p) for d, p in MLLP_STEPS if d == 1)
    assert hl7["close"] == "fin" and hl7["gaps"] == 0
    assert rows[11112]["bytes_c2s"] == sum(len(p) for d, p in valid_session() if d == 0)


def test_example_pack_bounds_memory_and_never_glues_across_gaps(mllp):
    log = ExpertLog()
    log.register(mllp.dicomwire_expert_fields())
    dis = mllp.MllpStream(SimpleNamespace(id=3), log)
    dis.data(0, 0, memoryview(b"\x0b" + b"x" * mllp.MAX_FRAME), 1, 0)
    assert [(i.field.name, i.frames, i.stream) for i in log.infos] == [("mllp.junk", (1,), 3)]
    assert not dis.buf[0]
    # A hole in the capture: the frame it cut is dropped, neither glued to
    # what follows (that would make a NACK of it) nor reported as malformed.
    dis.data(1, 0, memoryview(b"\x0bMSH|^~\\&|PACS"), 2, 0)
    dis.gap(1, 15, 100, 3, 0)
    dis.data(1, 115, memoryview(b"\rMSA|AE|X\r\x1c\r" + NACK), 4, 0)
    assert not dis.buf[1]
    assert [(i.field.name, i.message) for i in log.infos[1:]] == \
        [("mllp.nack", "message MSG00001 refused (AE)")]
    dis.data(1, 200, memoryview(b"?" + ACK2), 5, 0)               # not after a hole
    assert [i.field.name for i in log.infos[2:]] == ["mllp.junk"]
    dis.close()


# -- the names the doc uses exist ------------------------------------------------------


@lru_cache(maxsize=None)
def project_modules() -> tuple:
    import dicomwire
    mods = [dicomwire]
    for pkg in ("dicomwire", "dicomwire.specs", "dicomwire.plugins", "dicomwire.exporters"):
        p = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(p.__path__, pkg + "."):
            if not info.name.endswith("__main__"):
                mods.append(importlib.import_module(info.name))
    return tuple(mods)


def resolve_dotted(name: str):
    """Import the longest module prefix of ``name``, then getattr the rest."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def has_attribute(cls, attr: str) -> bool:
    """A class attribute or method, or an instance attribute its code sets."""
    return hasattr(cls, attr) or re.search(rf"self\.{attr}\b\s*[:=,]",
                                           inspect.getsource(cls)) is not None


def test_dotted_names_import():
    names = sorted(n.split("(")[0] for n in inline_names()
                   if re.fullmatch(r"dicomwire(\.\w+)+(\(.*\))?", n))
    assert len(names) > 40
    bad = []
    for n in names:
        try:
            resolve_dotted(n)
        except (ImportError, AttributeError) as e:
            bad.append(f"{n}: {e}")
    assert not bad, bad


def test_class_attributes_and_bare_names_exist():
    """`Class.attr` (a class of the project) and bare `Name`, `_name`,
    `cmd_name`: defined in some module of the project."""
    mods = project_modules()
    bad = []
    for n in sorted(inline_names()):
        m = re.fullmatch(r"(_?[A-Z]\w*)\.(\w+)(?:\(\))?", n)
        if m:
            cls_name, attr = m.groups()
            classes = [getattr(mod, cls_name) for mod in mods
                       if inspect.isclass(getattr(mod, cls_name, None))]
            if not any(has_attribute(c, attr) for c in classes):
                bad.append(n)
        elif re.fullmatch(r"_?[A-Z][A-Za-z0-9_]*|_[a-z]\w*|cmd_[a-z_]+", n):
            if not any(hasattr(mod, n) for mod in mods):
                bad.append(n)
    assert not bad, bad


def test_test_helpers_exist():
    import capgen
    import dicomgen
    import peers
    helpers = {"capgen": capgen, "dicomgen": dicomgen, "peers": peers}
    named = [n.split(".") for n in inline_names()
             if re.fullmatch(r"(capgen|dicomgen|peers)\.\w+", n)]
    assert named and all(hasattr(helpers[m], a) for m, a in named), named


def test_engine_findings_and_preferences_named_exist():
    from dicomwire.expert import ENGINE_FIELDS
    from dicomwire.prefs import ENGINE_PREFS
    known = {f.name for f in ENGINE_FIELDS} | {p.name for p in ENGINE_PREFS}
    named = {n for n in inline_names() if re.fullmatch(r"(tcp|link|capture|plugin)\.[\w.]+", n)}
    assert len(named) >= 5 and named <= known, named - known


def test_hook_names_are_hookspecs():
    specs = {n for mod in (hookspecs, dicom_hookspecs) for n in dir(mod)
             if n.startswith("dicomwire_")}
    named = {n for n in inline_names() if re.fullmatch(r"dicomwire_\w+", n)}
    assert named == specs, "the hook tables cover every hook, and only hooks"


def test_files_and_tests_named_exist():
    bad = []
    for n in sorted(inline_names()):
        if "<" in n or " " in n:
            continue
        if "/" in n:
            if not (ROOT / n).exists():
                bad.append(n)
        elif re.fullmatch(r"[\w.-]+\.(py|md|toml)", n):
            if not [p for p in ROOT.rglob(n) if ".venv" not in p.parts]:
                bad.append(n)
        elif re.fullmatch(r"test_\w+", n):
            if not (ROOT / "tests" / f"{n}.py").exists():
                bad.append(n)
    assert not bad, bad


def test_readme_links_the_architecture_doc():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    dev = readme.split("## Development", 1)[1]
    assert "docs/ARCHITECTURE.md" in dev
