"""The DICOM spec pack: declarations of the DICOM Upper Layer wire format.

This package is grammar only (DESIGN.md: specs/ kept apart from what reacts
to it): it describes bytes and names values; it holds no state and makes no
decisions.  Plugins use it to decode; tests and fuzzers use it to generate
traffic, since every declaration builds as well as parses.

Modules:

:mod:`.pdu`
    Construct declarations of the seven PDUs of PS3.8 9.3, every item and
    sub-item (PS3.8 9.3.2.x / 9.3.3.x, Annex D; PS3.7 D.3.3.x) and the PDV
    items of P-DATA-TF (PS3.8 9.3.5.1, Annex E).  Lossless (reserved fields,
    padding, unknown items and surplus bytes are kept, so
    ``build(parse(x)) == x``), bounded (nothing reads past a declared
    length), lengths recomputed on build.  Fast paths: ``PDU_HEADER`` and
    ``PDV_HEADER`` struct formats derived from the Construct headers.  One
    exception, :class:`SpecError` (a ValueError).

:mod:`.pdu_codec`
    The code that reads and writes with those declarations (re-exported by
    :mod:`.pdu`): :func:`parse_pdu`, :func:`salvage_associate`,
    :func:`iter_pdvs` (the struct fast path over a P-DATA-TF body),
    :func:`build_pdu`, :func:`item` and helpers on parsed values.

:mod:`.dataset`
    Data set element headers (PS3.5 7.1) in Construct with struct fast
    paths, and :func:`~.dataset.walk`: an iterative, bounded walk of the
    element structure (sequences, items, delimiters, fragments) that reads
    headers only; :func:`~.dataset.check` names the first break.

:mod:`.tables`
    Data tables: PDU and item type names, reject / abort / presentation
    context result codes, user identity types, roles, DIMSE command fields,
    priorities, command data set type, and :func:`status_info` for DIMSE
    status codes (PS3.7 Annex C, PS3.4 service classes).

Typical use::

    from dicomwire.specs.dicom import parse_pdu, build_pdu, item, strip_ae, SpecError

    pdu = parse_pdu(data)                    # one whole PDU, header included
    if pdu.pdu_type == 0x01:
        called = strip_ae(pdu.body.called_ae_title)
        for it in pdu.body.variable_items:  # it.item_type, it.length, it.body
            ...

    data = build_pdu("A-ABORT", source=2, reason=1)
"""

from .pdu import (
    AbortBody,
    AbstractSyntaxItem,
    AETitle,
    ApplicationContextItem,
    AssociateBody,
    AssociateRJBody,
    AsynchronousOperationsWindowItem,
    ImplementationClassUIDItem,
    ImplementationVersionNameItem,
    Item,
    ITEMS,
    MaximumLengthItem,
    PDataBody,
    PDU,
    PDU_BODIES,
    PDU_HEADER,
    PDU_HEADER_SIZE,
    PDUHeader,
    PDV,
    PDV_HEADER,
    PDV_HEADER_SIZE,
    PDVHeader,
    PRESENTATION_SUB_ITEMS,
    PresentationContextACItem,
    PresentationContextRQItem,
    PresentationSubItem,
    RelatedGeneralSOPClass,
    ReleaseBody,
    RoleSelectionItem,
    SOPClassCommonExtendedNegotiationItem,
    SOPClassExtendedNegotiationItem,
    SpecError,
    Text,
    ToEnd,
    TransferSyntaxItem,
    UnknownItem,
    USER_SUB_ITEMS,
    UserIdentityACItem,
    UserIdentityRQItem,
    UserInformationItem,
    UserSubItem,
    VARIABLE_ITEMS,
    VariableItem,
    build,
    build_pdu,
    find_items,
    is_command,
    is_last,
    item,
    iter_pdvs,
    parse,
    parse_pdu,
    strip_ae,
    strip_uid,
    ae_title,
    uid,
)
from .tables import (
    ABORT_REASONS,
    ABORT_SOURCES,
    COMMAND_DATA_SET_TYPE_NONE,
    COMMAND_FIELD_BY_NAME,
    COMMAND_FIELDS,
    COMMAND_RESPONSES,
    ITEM_TYPES,
    PDU_ANSWERS,
    PDU_LONG_NAMES,
    PDU_TYPE_BY_NAME,
    PDU_TYPES,
    PDV_COMMAND,
    PDV_LAST,
    PDV_RESERVED_BITS,
    PCTX_RESULTS,
    PRESENTATION_CONTEXT_RESULTS,
    PRIORITIES,
    REJECT_REASONS,
    REJECT_RESULTS,
    REJECT_SOURCES,
    SCP_ROLES,
    SCU_ROLES,
    USER_IDENTITY_RESPONSE_REQUESTED,
    USER_IDENTITY_TYPES,
    command_name,
    has_data_set,
    is_response,
    reject_reason,
    reject_text,
    abort_text,
    status_category,
    status_info,
)

from . import pdu, tables  # noqa: E402  (submodules by name)

__all__ = [n for n in dir() if not n.startswith("_") and n not in ("pdu", "tables")]
