"""Spec-driven fuzzing material: valid DICOM Upper Layer traffic generated from
the Construct declarations of :mod:`..pdu` and :mod:`..command`, and
field-aware mutations of it.

Nothing here touches a network; :mod:`dicomwire.plugins.dicom.fuzzpeer`
runs campaigns against peers with it.  One concern a module; every name is
importable from this package (``from dicomwire.specs.dicom.fuzz import X``):

:mod:`.choices`
    :class:`Choices`, the source of every decision: :class:`RandomChoices`
    (a seeded ``random.Random``: reproducible campaigns) or
    :class:`DrawChoices` (a hypothesis ``draw``: the same code becomes a
    hypothesis strategy, with shrinking).

:mod:`.fieldmap`
    :func:`field_map` reads the located parse of the spec runtime
    (:func:`dicomwire.spec.parse_located`) and returns every named field
    (:class:`Field`) with its offset, size, value, kind and bound;
    :func:`patch` sets one to a deliberately wrong value, :func:`resize`
    gives it new content with every enclosing length recomputed.

:mod:`.generate`
    Valid traffic: AE titles, UIDs, A-ASSOCIATE-RQ/AC, C-ECHO and C-STORE
    command sets, data sets, P-DATA-TF within a maximum length, whole
    associations (:func:`association`), :func:`valid_pdu`.

:mod:`.mutate`
    :data:`MUTATORS` maps a kind name to a function ``f(choices, pdu_bytes)
    -> Mutation | None`` (None: the PDU has no field of that kind), and
    :func:`mutate` applies one; a :class:`Mutation` says what it broke, e.g.
    ``"length of body -> variable_items -> [2] 77 -> 78 (off by one)"``.

:mod:`.mutate_message`
    Kinds that need more than one PDU or a command set:
    :func:`fragments_out_of_order`, :func:`oversize_pdata`,
    :func:`command_set`.

:mod:`.strategies`
    hypothesis strategies (:func:`ae_titles`, :func:`uids`,
    :func:`associate_rqs`, :func:`associations`, :func:`pdata_pdus`,
    :func:`valid_pdus`, :func:`mutated_pdus`); hypothesis is optional and
    imported when a strategy is called.
"""

from ..tables import APPLICATION_CONTEXT, DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from .choices import Choices, DrawChoices, RandomChoices
from .fieldmap import Field, field_map, patch, resize, room
from .generate import (
    C_ECHO_RQ,
    C_STORE_RQ,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    NO_DATA_SET,
    STORAGE_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION,
    abort,
    ae_title,
    associate_ac,
    associate_rq,
    associate_rq_fields,
    association,
    dataset,
    echo_rq,
    fragment_sizes,
    message,
    negotiated,
    pdata,
    pdvs,
    presentation_contexts,
    release_rq,
    store_rq,
    uid,
    user_information,
    valid_pdu,
)
from .mutate import (
    MUTATORS,
    Mutation,
    ae_title_value,
    int_boundary,
    item_structure,
    length_off_by_one,
    length_overrun,
    length_underrun,
    mutate,
    pdv_flags,
    reserved_nonzero,
    truncated,
    uid_value,
    unknown_item,
    unknown_pdu_type,
)
from .mutate_message import command_set, fragments_out_of_order, oversize_pdata
from .strategies import (
    ae_titles,
    associate_rqs,
    associations,
    mutated_pdus,
    pdata_pdus,
    uids,
    valid_pdus,
)

__all__ = [
    "Choices", "RandomChoices", "DrawChoices",
    "Field", "field_map", "patch", "resize", "room",
    "ae_title", "uid", "presentation_contexts", "user_information",
    "associate_rq_fields", "associate_rq", "associate_ac", "echo_rq", "store_rq",
    "dataset", "pdvs", "pdata", "message", "release_rq", "abort", "valid_pdu", "association",
    "negotiated", "Mutation", "MUTATORS", "mutate", "fragments_out_of_order",
    "oversize_pdata", "command_set",
    "ae_titles", "uids", "associate_rqs", "associations", "pdata_pdus", "valid_pdus",
    "mutated_pdus",
    "VERIFICATION", "APPLICATION_CONTEXT", "IMPLICIT_LE", "EXPLICIT_LE", "STORAGE_CLASSES",
    "IMPLEMENTATION_CLASS_UID",
]
