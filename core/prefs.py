"""Preferences: named settings with Wireshark's names where it has them.

Plugins declare theirs (``dicomwire_preferences`` returns
:class:`Preference` s); values come from, lowest first: the defaults, a config
file (``dicomwire.toml``, or ``[tool.dicomwire]`` of a ``pyproject.toml``, in
the current folder), ``-o NAME:VALUE`` (as tshark's), and the commands' own
flags (``--ports`` ...). ``dicomwire prefs`` shows each effective value and
where it came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable


class PrefError(ValueError):
    pass


@dataclass(frozen=True)
class Preference:
    name: str              # e.g. tcp.max_ooo (Wireshark's name where it has one)
    kind: str              # bool, int, str, range
    default: object
    help: str
    attr: str | None = None   # engine settings: the Config attribute it sets
    #                           (None: the value is config.pref(name))
    flag: str | None = None   # argparse dest of the command-line flag that sets it
    check: Callable | None = None   # value -> None, or raises ValueError (a usage error)

    def parse(self, text):
        if not isinstance(text, str):
            text = str(text).lower() if isinstance(text, bool) else str(text)
        t = text.strip()
        if self.kind == "bool":
            if t.lower() in ("true", "1", "yes", "on"):
                return True
            if t.lower() in ("false", "0", "no", "off"):
                return False
            raise PrefError(f"{self.name}: expected TRUE or FALSE, got {text!r}")
        if self.kind == "int":
            try:
                return int(t, 0)
            except ValueError:
                raise PrefError(f"{self.name}: expected a number, got {text!r}") from None
        if self.kind == "range":
            ok = all(p.strip().replace("-", "", 1).isdigit() for p in t.split(",") if p.strip())
            if not t or not ok:
                raise PrefError(f"{self.name}: expected ports like 104,3200,50000-51000, "
                                f"got {text!r}")
            return t.replace(" ", "")
        return t


def load_file(folder: str = ".") -> tuple[dict, str | None]:
    """Preferences from dicomwire.toml or pyproject.toml [tool.dicomwire]."""
    import tomllib
    for name, key in (("dicomwire.toml", None), ("pyproject.toml", "tool.dicomwire")):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PrefError(f"{path}: {e}") from None
        if key:
            for part in key.split("."):
                doc = doc.get(part, {}) if isinstance(doc, dict) else {}
            if not doc:
                continue
        return _flatten(doc), path
    return {}, None


def _flatten(doc: dict, prefix: str = "") -> dict:
    """{'tcp': {'max_flows': 9}} and {'tcp.max_flows': 9} alike."""
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def apply(config, prefs: list[Preference], file_values: dict, file_name: str | None,
          cli_values: dict, flags: dict) -> dict:
    """Set config from defaults < file < -o < flags (``flags``: preference
    name -> value, None when not given); then check each value. Returns
    name -> (value, source)."""
    known = {p.name: p for p in prefs}
    for source, values in (("file", file_values), ("-o", cli_values)):
        unknown = sorted(set(values) - set(known))
        if unknown:
            where = file_name if source == "file" else "-o"
            raise PrefError(f"{where}: unknown preference {unknown[0]!r} "
                            f"(dicomwire prefs lists them)")
    effective = {}
    for p in prefs:
        value, source = p.default, "default"
        if p.name in file_values:
            value, source = p.parse(file_values[p.name]), f"file {file_name}"
        if p.name in cli_values:
            value, source = p.parse(cli_values[p.name]), "-o"
        if flags.get(p.name) is not None:
            value, source = flags[p.name], "flag"
        if p.attr:
            setattr(config, p.attr, value)
        else:
            config.preferences[p.name] = value
        effective[p.name] = (value, source)
    for p in prefs:
        if p.check is not None:
            p.check(effective[p.name][0])
    return effective


def _readable_file(path) -> None:
    if path and not os.path.isfile(path):
        raise ValueError(f"tls.keylog_file: no such file: {path}")


def _capture_tool(value) -> None:
    if value not in ("auto", "dumpcap", "tcpdump"):
        raise ValueError(f"capture.tool: expected auto, dumpcap or tcpdump, got {value!r}")


ENGINE_PREFS = (
    Preference("tcp.max_ooo", "int", 64 << 20,
               "Out-of-order bytes held per stream direction before a hole counts as a gap",
               "max_ooo"),
    Preference("tcp.max_flows", "int", 20_000,
               "TCP flows tracked at once; beyond it the half-open and idlest are evicted "
               "(bounds memory under a SYN flood or scan)", "max_flows"),
    Preference("tcp.retire_after", "int", 60,
               "Live captures (-i): seconds of capture time a closed TCP stream stays listed; "
               "then only its counts are kept (and findings past the latest 20,000), so days "
               "of monitoring stay in bounded memory. 0: keep everything. Files keep every "
               "stream"),
    Preference("tls.keylog_file", "str", "",
               "NSS key log (SSLKEYLOGFILE format) with the secrets of TLS sessions to "
               "decrypt (Wireshark's name)", check=_readable_file),
    Preference("capture.tool", "str", "auto",
               "Live capture (-i) runs this tool: dumpcap, tcpdump, or auto (dumpcap if "
               "installed)", check=_capture_tool),
)
