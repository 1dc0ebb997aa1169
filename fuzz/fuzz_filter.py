"""Fuzz target: the display filter parser and evaluator (``-Y``). Input:
the filter text as UTF-8 (invalid bytes replaced). Checks: a filter either
compiles or raises FilterError (a usage error with a column), and a
compiled filter evaluates on any field values without raising."""

from __future__ import annotations

from dicomwire.plugins.dicom.show import known_field as _known_field
from dicomwire.filter import DisplayFilter, FilterError

SAMPLES = ({}, {"dicom.pdu.type": [4], "dicom.cmd.name": ["C-STORE-RQ"]},
           {"x": [0, -1, 2.5, "", "abc", "1.2.840.10008", "0x10"]})


def one_input(data: bytes) -> None:
    text = data[:400].decode("utf-8", "replace")
    for known in (None, _known_field):
        try:
            f = DisplayFilter(text, known)
        except FilterError as e:
            assert str(e)
            continue
        assert isinstance(f.fields, set)
        for values in SAMPLES:
            full = dict(values)
            for name in f.fields:
                full.setdefault(name, values.get("x", []))
            assert f(full) in (True, False)


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "filter", *sys.argv[1:]])
