"""The data element dictionary (PS3.6 section 6): tag -> VR and keyword.

Read from the table pydicom ships (``pydicom/_dicom_dict.py``), loaded as a
plain module so that pydicom itself, with numpy behind it (about 0.3 s), is
not imported: checks on the summary path (C-FIND identifiers in implicit VR)
need only the VRs and keywords. Loaded on first use.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache


@lru_cache(maxsize=None)
def _table() -> dict:
    """{tag: (VR, VM, name, retired, keyword)}, pydicom's DicomDictionary."""
    try:
        spec = importlib.util.find_spec("pydicom")
        path = os.path.join(spec.submodule_search_locations[0], "_dicom_dict.py")
        mspec = importlib.util.spec_from_file_location("_dicomwire_element_dictionary", path)
        mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(mod)          # its cached .pyc, when pydicom has one
        return mod.DicomDictionary
    except Exception:                          # a pydicom laid out differently
        from pydicom.datadict import DicomDictionary
        return DicomDictionary


def vr(tag: int) -> str | None:
    """The VR of a tag (the first, where PS3.6 gives several), or None."""
    entry = _table().get(tag)
    return entry[0].split(" ")[0] if entry else None


def keyword(tag: int) -> str:
    """The keyword of a tag, or its (gggg,eeee) form."""
    entry = _table().get(tag)
    return entry[4] if entry and entry[4] else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
