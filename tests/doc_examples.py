"""The code blocks of README.md and docs/*.md as runnable examples (issue 19):
a block that breaks fails the tests.

What a block is decides how it runs:

- lines starting ``$ ``: commands, each followed by the output it must
  print (``...`` stands for any lines; the rest must match line for line);
- other plain blocks: command lines (``COMMAND   what it does``, split at
  two spaces), each must exit 0 without a traceback;
- ``python``: run as a script; a first line ``# NAME.py: COMMAND`` (or
  ``# NAME.py: ...`` with ``Run: COMMAND`` in the first two lines) makes it
  a plugin file that COMMAND loads;
- ``toml``: a configuration file (first line ``# NAME``) that ``dicomwire
  prefs`` must read;
- ``text``: output or a drawing, shown, not run.

Placeholders: ``CAPTURE`` and ``capture.pcap(ng)`` are the shipped sample,
``DIR`` an output folder. HTML comments right before a block direct it:
``<!-- example: skip REASON -->``, ``<!-- example: skip-line TEXT: REASON -->``,
``<!-- example: replace OLD => NEW -->``, ``<!-- example: peer -->`` (a
Verification/Storage SCP on a free port stands for 127.0.0.1:11112),
``<!-- example: append ARGS -->`` (added to each command),
``<!-- example: setup CODE -->`` / ``<!-- example: then CODE -->`` (Python
around a block). Commands run in a scratch folder where ``core`` and
``tests`` link to the project's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REL = "core/samples/sample.pcap"
_DIRECTIVE = re.compile(r"<!--\s*example:\s*(\S+)\s*(.*?)\s*-->")
_PLACEHOLDERS = ((re.compile(r"\bCAPTURE\b"), SAMPLE_REL),
                 (re.compile(r"(?<![\w/.])capture\.pcap(ng)?\b"), SAMPLE_REL),
                 (re.compile(r"\bDIR\b"), "out"))


@dataclass
class Block:
    path: Path
    line: int                     # of the opening fence
    lang: str
    text: str
    directives: list = field(default_factory=list)     # (name, argument)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def directive(self, name):
        return [arg for n, arg in self.directives if n == name]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        directives, k = [], start - 1
        while k >= 0 and (not lines[k].strip() or _DIRECTIVE.search(lines[k])):
            d = _DIRECTIVE.search(lines[k])
            if d:
                directives.insert(0, (d.group(1), d.group(2)))
            k -= 1
        out.append(Block(path, start + 1, lang, "\n".join(lines[start + 1:j]), directives))
        i = j + 1
    return out


def prepared(block: Block, text: str | None = None) -> str:
    """The block's text with its replacements and placeholders applied."""
    text = block.text if text is None else text
    for arg in block.directive("replace"):
        old, new = (s.strip() for s in arg.split("=>", 1))
        text = text.replace(old, new)
    for pattern, value in _PLACEHOLDERS:
        text = pattern.sub(value, text)
    return text


def shell_steps(block: Block) -> list[tuple[str, list[str] | None]]:
    """(command, expected output lines or None) of a shell block."""
    text = prepared(block)
    skips = [arg.split(": ", 1)[0] for arg in block.directive("skip-line")]
    steps: list = []
    if any(line.startswith("$ ") for line in text.splitlines()):
        for line in text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    else:
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                steps.append((re.split(r"\s{2,}", line.strip())[0], None))
    appended = " ".join(block.directive("append"))
    return [(f"{cmd} {appended}".strip(), want) for cmd, want in steps
            if not any(s and s in cmd for s in skips)]


def matches(want: list[str], got: list[str]) -> str | None:
    """None when ``got`` shows ``want`` (``...``: any lines), else why not."""
    want = [w.rstrip() for w in want]
    got = [g.rstrip() for g in got]
    pos = 0
    skipping = False
    for w in want:
        if w == "...":
            skipping = True
            continue
        if skipping:
            while pos < len(got) and got[pos] != w:
                pos += 1
            if pos == len(got):
                return f"expected line not found: {w!r}"
        elif pos >= len(got) or got[pos] != w:
            return f"line {pos + 1}: expected {w!r}, got {got[pos] if pos < len(got) else None!r}"
        pos += 1
        skipping = False
    if not skipping and pos != len(got):
        return f"{len(got) - pos} more lines than shown, from {got[pos]!r}"
    return None


def plugin_file(code: str) -> tuple[str, str] | None:
    """(file name, command) of a plugin block, else None."""
    head = code.splitlines()[:2]
    m = re.match(r"# (\w+\.py): (.*)", head[0]) if head else None
    if not m:
        return None
    run = re.search(r"Run: (.*)", " ".join(head))
    return m.group(1), (run.group(1) if run else m.group(2)).strip()


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
