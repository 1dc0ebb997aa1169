"""The real-peer capture corpus (issue 13, "the rule that keeps it true").

Captures in ``tests/corpus/captures`` (made by ``tests/corpus/make_corpus.py``
from pynetdicom and DCMTK on loopback), what each one shows in
``tests/corpus/manifest.py``, reviewed outputs in ``tests/corpus/golden``
(``python tests/corpus/make_golden.py``).  Here:

- every golden equals what dicomwire prints today;
- a clean capture raises no warn/error finding, and no capture raises a
  warn/error finding its manifest entry does not name;
- every faulty capture raises the findings it is made for;
- what is wrong today (false findings, missing findings, wrong or missing
  text, unpaired responses, time column from another frame) is a strict
  xfail per capture and per item, so each fix shows up as an XPASS failure
  until its line in the manifest is deleted.

Each capture is decoded once per output kind (cached), from the captures
folder, in-process.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import struct
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "corpus"
if str(CORPUS) not in sys.path:
    sys.path.insert(0, str(CORPUS))

import make_golden  # noqa: E402
from manifest import MANIFEST  # noqa: E402

SEVERITIES = ("chat", "note", "warn", "error")
WARN = {"warn", "error"}
MAX_CORPUS_BYTES = 3_000_000


def reason(defect) -> str:
    return f"issue 13 defect {defect}" if isinstance(defect, int) else f"issue 13: {defect}"


def xfail_if(defect):
    return [pytest.mark.xfail(strict=True, reason=reason(defect))] if defect is not None else []


# --------------------------------------------------------------------------
# Decoding, once per capture and output kind
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def output(name: str, kind: str) -> str:
    return make_golden.output(name, kind)


@functools.lru_cache(maxsize=None)
def findings(name: str) -> tuple:
    """(name, severity, message) of every finding (``expert -T json``)."""
    args = ["expert", "-q", "-T", "json", *MANIFEST[name].options]
    rc, out = make_golden.run_cli([*args, f"{name}.pcap"])
    assert rc == 0
    return tuple((i["name"], i["severity"], i["message"]) for i in json.loads(out)["infos"])


@functools.lru_cache(maxsize=None)
def response_times(name: str) -> tuple:
    """(frame, command name, dicom.rsp.time) per message of ``show -T fields``."""
    args = ["show", "-q", "-T", "fields", "-e", "frame.number", "-e", "dicom.cmd.name",
            "-e", "dicom.rsp.time", *MANIFEST[name].options]
    rc, out = make_golden.run_cli([*args, f"{name}.pcap"])
    assert rc == 0
    rows = []
    for line in out.splitlines():
        frame, cmds, times = (line.split("\t") + ["", "", ""])[:3]
        cmds, times = cmds.split(",") if cmds else [], times.split(",") if times else []
        for i, cmd in enumerate(cmds):
            rows.append((frame, cmd, times[i] if i < len(times) else ""))
    return tuple(rows)


@functools.lru_cache(maxsize=None)
def registered() -> dict:
    """Expert name -> severity, from ``dicomwire fields``."""
    rc, out = make_golden.run_cli(["fields"])
    assert rc == 0
    return {cols[1]: cols[2] for cols in (line.split("\t") for line in out.splitlines())
            if cols[0] == "E"}


def pcap_times(path: Path) -> list[float]:
    """Each record's time, seconds since the first record (classic pcap)."""
    data = path.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1e-9 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    times, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl = struct.unpack_from(endian + "III", data, pos)
        times.append(sec + frac * scale)
        pos += 16 + incl
    return [t - times[0] for t in times]


def above_chat(severity: str) -> bool:
    return SEVERITIES.index(severity) > 0


# --------------------------------------------------------------------------
# The corpus and its manifest agree
# --------------------------------------------------------------------------

def test_every_capture_has_an_entry_and_goldens():
    captures = {p.stem for p in (CORPUS / "captures").glob("*.pcap")}
    assert captures == set(MANIFEST), "captures/ and manifest.py disagree"
    for name in MANIFEST:
        for kind in make_golden.KINDS:
            assert make_golden.golden_path(name, kind).exists(), \
                f"no golden {name}.{kind}.txt: run python tests/corpus/make_golden.py"
    size = sum(p.stat().st_size for p in (CORPUS / "captures").glob("*.pcap"))
    assert size < MAX_CORPUS_BYTES


def test_manifest_names_are_registered_or_proposed():
    known = registered()
    for name, c in MANIFEST.items():
        assert not (set(c.missing) - set(c.expect)), f"{name}: missing names not in expect"
        for finding in (*c.expect, *c.tolerate, *c.known_false):
            if finding not in c.missing:
                assert finding in known, f"{name}: {finding} is not an expert name"
        for finding in c.tolerate:
            assert known[finding] in WARN, f"{name}: tolerate lists warn/error names only"
        assert c.clean or c.expect or c.defects, f"{name}: a faulty capture with nothing to check"
        assert not (c.clean and c.expect), f"{name}: a clean capture expects findings"


# --------------------------------------------------------------------------
# (a) goldens
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind", [(n, k) for n in MANIFEST for k in make_golden.KINDS])
def test_golden(name, kind):
    path = make_golden.golden_path(name, kind)
    expected = path.read_text()
    actual = output(name, kind)
    if actual != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True),
            f"golden/{path.name}", f"dicomwire {kind} {name}.pcap (now)", n=2))
        pytest.fail(f"{path.name} differs from the current output:\n{diff[:8000]}\n"
                    f"If the change is intended: python tests/corpus/make_golden.py, "
                    f"review `git diff tests/corpus/golden`, commit.", pytrace=False)


# --------------------------------------------------------------------------
# (b) clean traffic raises no warning; nothing unexpected anywhere
# --------------------------------------------------------------------------

def _clean_marks(c):
    severities = registered()
    false_warn = sorted({d for n, d in c.known_false.items() if severities.get(n) in WARN},
                        key=str)
    if not false_warn:
        return []
    return [pytest.mark.xfail(strict=True,
                              reason="; ".join(reason(d) for d in false_warn))]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_clean_marks(c))
                                  for n, c in MANIFEST.items() if c.clean])
def test_clean_capture_raises_no_warning(name):
    bad = [f"{n} ({s}): {m[:200]}" for n, s, m in findings(name) if s in WARN]
    assert not bad, f"{name} is clean traffic, yet:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", list(MANIFEST))
def test_no_warning_the_manifest_does_not_name(name):
    c = MANIFEST[name]
    allowed = {*c.expect, *c.tolerate, *c.known_false}
    bad = [f"{n} ({s}): {m[:200]}" for n, s, m in findings(name)
           if s in WARN and n not in allowed]
    assert not bad, (f"{name}: warn/error findings not in its manifest entry "
                     f"(a false warning? or add it to expect/tolerate):\n" + "\n".join(bad))


# --------------------------------------------------------------------------
# (c) faulty captures raise their findings
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,finding", [
    pytest.param(n, f, marks=xfail_if(c.missing.get(f)))
    for n, c in MANIFEST.items() for f in c.expect])
def test_expected_finding(name, finding):
    names = {n for n, _, _ in findings(name)}
    assert finding in names, f"{name}: {finding} not reported; reported: {sorted(names)}"


# --------------------------------------------------------------------------
# What is wrong today, one strict xfail per item
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name,finding", [
    pytest.param(n, f, marks=xfail_if(d))
    for n, c in MANIFEST.items() for f, d in c.known_false.items()])
def test_false_finding_is_at_most_chat(name, finding):
    bad = [f"{s}: {m[:200]}" for n, s, m in findings(name) if n == finding and above_chat(s)]
    assert not bad, f"{name}: false {finding}:\n" + "\n".join(bad)


@pytest.mark.parametrize("name,kind,text", [
    pytest.param(n, k, t, marks=xfail_if(d))
    for n, c in MANIFEST.items() for (k, t), d in c.wrong_text.items()])
def test_wrong_text_is_gone(name, kind, text):
    assert text not in output(name, kind), f"{name} {kind}: still says {text!r}"


@pytest.mark.parametrize("name,kind,text", [
    pytest.param(n, k, t, marks=xfail_if(d))
    for n, c in MANIFEST.items() for (k, t), d in c.missing_text.items()])
def test_missing_text_is_there(name, kind, text):
    assert text in output(name, kind), f"{name} {kind}: does not say {text!r}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=xfail_if(c.unpaired))
                                  for n, c in MANIFEST.items()])
def test_every_response_is_paired(name):
    unpaired = [f"frame {f}: {cmd}" for f, cmd, t in response_times(name)
                if cmd.endswith("-RSP") and not t]
    assert not unpaired, f"{name}: responses without dicom.rsp.time: {unpaired}"


LINE = re.compile(r"^\s*(\d+)\s+(\d+\.\d+)\s")


@pytest.mark.parametrize("name", [pytest.param(n, marks=xfail_if(c.frame_time))
                                  for n, c in MANIFEST.items()])
def test_time_column_is_the_time_of_the_frame_shown(name):
    times = pcap_times(CORPUS / "captures" / f"{name}.pcap")
    bad = []
    for line in output(name, "show").splitlines():
        m = LINE.match(line)
        if m and abs(times[int(m.group(1)) - 1] - float(m.group(2))) > 1.5e-6:
            bad.append(f"{line[:60]}... (frame {m.group(1)} is at "
                       f"{times[int(m.group(1)) - 1]:.6f})")
    assert not bad, f"{name}:\n" + "\n".join(bad[:10])
