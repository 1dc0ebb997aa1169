"""Patient data out of the report's finding messages, unless ``--phi``.

The checks write their messages for the person at the console, who holds
the capture anyway; a report is sent on (to a vendor, another team), so by
default it says which keys and objects, never whose. Two things are hidden:

- the values some checks quote from data sets (C-FIND keys as sent or as
  returned, a malformed UID as it stood): every quoted string of those
  findings becomes ``'…'``;
- UIDs that are not registered DICOM UIDs (SOP classes, transfer syntaxes)
  nor an implementation's class UID seen in the negotiation: SOP Instance,
  Study and Series UIDs, transaction UIDs, become ``<UID>``.
"""

from __future__ import annotations

import re

from dicomwire.specs.dicom.uids import UID_NAMES

# Findings whose messages quote data set values (plugins/dicom/qr.py,
# expert_dimse.py): their quoted strings go.
QUOTES_VALUES = frozenset({
    "dicom.find.trailing_space", "dicom.find.pn_components", "dicom.find.altered_key",
    "dicom.find.no_match", "dicom.find.over_defined", "dicom.uid.invalid",
})
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
UID = re.compile(r"(?<![\w.])[0-2](?:\.\d+){3,}(?![\w.])")
HIDDEN_VALUE, HIDDEN_UID = "'…'", "<UID>"


class Redactor:
    """``redactor(name, message)`` -> the message as the report shows it."""

    def __init__(self, phi: bool, known=frozenset()):
        self.phi = phi
        self.known = known          # implementation class UIDs: software, not people

    def __call__(self, name: str, message: str) -> str:
        if self.phi:
            return message
        if name in QUOTES_VALUES:
            message = QUOTED.sub(HIDDEN_VALUE, message)
        return UID.sub(self._uid, message)

    def _uid(self, m) -> str:
        uid = m.group(0)
        return uid if uid in UID_NAMES or uid in self.known else HIDDEN_UID


def hide_uids(text: str, known=frozenset()) -> str:
    """Unregistered UIDs of any text (PDU and message problems) hidden."""
    return UID.sub(lambda m: m.group(0) if m.group(0) in UID_NAMES or m.group(0) in known
                   else HIDDEN_UID, text)
