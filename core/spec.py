"""The spec runtime: generic Construct machinery the protocol packs declare
their wire layouts with.  It names no protocol; a pack's declarations (in
``specs/<proto>/``) import it, always as ``dicomwire.spec``: this module is
the runtime's one public face, its parts living in ``spec_*`` modules.

- :class:`SpecError`: the one exception of a pack's parse and build, with
  the Construct path (``"body -> items -> [2] -> length"``) and an offset;
  :func:`parse` / :func:`build`: Construct's, with errors as SpecError
  (``spec_errors.py``).
- Building blocks: :class:`Latin1` / :data:`Text` (bytes as one character
  per byte), :class:`ToEnd` (repeat to the end of a bounded body, errors
  kept), :class:`ByType` (dispatch on a leading type byte), :class:`Fail`,
  :class:`Require`, :func:`sized` (a length field and a value parsed from
  exactly that many bytes, the length recomputed on build)
  (``spec_blocks.py``).
- :func:`struct_of`: the ``struct.Struct`` fast path of a fixed-layout
  declaration, derived from it (:func:`struct_names` names what it
  unpacks); :func:`header_of` (``spec_struct.py``).
- :func:`parse_located`: a parse that also returns where every field was:
  :class:`Located` records (path, offset, size, value, declaration)
  (``spec_located.py``).
- :func:`doc`: standard references and enumerations as data on a field
  (:func:`field_docs` reads them back) (``spec_docs.py``).
"""

from __future__ import annotations

from dicomwire.spec_blocks import (
    ByType,
    Fail,
    Latin1,
    Require,
    Text,
    ToEnd,
    built_size,
    sized,
)
from dicomwire.spec_docs import Doc, doc, field_docs, named_fields
from dicomwire.spec_errors import SpecError, build, parse
from dicomwire.spec_located import Located, located_spec, parse_located
from dicomwire.spec_struct import header_of, struct_format, struct_names, struct_of

__all__ = [
    "SpecError", "parse", "build",
    "Latin1", "Text", "ToEnd", "ByType", "Fail", "Require", "built_size", "sized",
    "Doc", "doc", "field_docs", "named_fields",
    "struct_format", "struct_of", "struct_names", "header_of",
    "Located", "parse_located", "located_spec",
]
