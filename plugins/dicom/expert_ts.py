"""Expert info: a data set whose transfer syntax nothing proves.

Registered as the built-in ``dicom-expert-ts`` (``-p no:dicom-expert-ts``
blocks it). When the A-ASSOCIATE exchange was not captured, the dissector
proves each presentation context's transfer syntax from the data set bytes
(``plugins.dicom.tsinfer.infer_transfer_syntax``); when a data set leaves it
unproven, this says so, once per presentation context: that data set is not
decoded, and export writes it marked (``NAME.dcm.unknown-ts``).
"""

from __future__ import annotations

from dicomwire.expert import ExpertField
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.model import unknown_syntax_text

FIELDS = (
    ExpertField("dicom.ts.unproven", "note", "reassemble",
                "The transfer syntax of a presentation context is unknown: its negotiation "
                "was not captured and the data set bytes prove none (PS3.5 7.1, A.1-A.5); "
                "the data set is not decoded, export marks it .unknown-ts"),
)


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


@hookimpl
def dicomwire_message(message, expert):
    m = message
    if not m.has_dataset or m.assoc is None:
        return
    pc = m.assoc.contexts.get(m.context_id)
    if pc is None or pc.transfer_syntax is not None or pc.inference is None \
            or pc.inference.proven:
        return
    a = m.assoc
    key = (a.stream.id, a.id, m.context_id)
    seen = expert.state.setdefault("dicom.ts.unproven", set())
    if key in seen:
        return
    seen.add(key)
    partial = " (its command was not captured: the data set may have begun before the " \
              "capture did)" if m.command is None else ""
    name = m.name if m.command is not None else "data set"
    decoded = ("its elements are decoded (explicit VR little endian), its pixels are not"
               if m.encoding is not None else "it is not decoded")
    expert.report("dicom.ts.unproven",
                  f"{name} on presentation context {m.context_id}{partial}: "
                  f"{unknown_syntax_text(m)}; {decoded}, and export writes it as "
                  f".dcm.unknown-ts. Check the capture start (the A-ASSOCIATE-AC holds the "
                  f"accepted syntax).",
                  [m.dataset_frame or m.last_frame], a.stream.id, a.id)
