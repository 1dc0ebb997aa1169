"""DICOM data tables: names and meanings of the values the wire carries.

Plain dicts (dpkt style: dispatch and display go through tables, not code),
each citing the section of the standard it comes from.  Nothing here parses;
:mod:`dicomwire.specs.dicom.pdu` holds the layouts.

UID names are in :mod:`dicomwire.specs.dicom.uids`, generated from pydicom's
UID dictionary (``tests/make_uids.py``).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Upper Layer PDUs and items (PS3.8)
# ---------------------------------------------------------------------------

#: PDU types, PS3.8 9.3.1 (and 9.3.2 .. 9.3.8 for each PDU).
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

#: PDU type -> short name as the standard writes it (PS3.8 9.3).
PDU_TYPES: dict[int, str] = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",   # PS3.8 9.3.2
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",   # PS3.8 9.3.3
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",   # PS3.8 9.3.4
    P_DATA_TF: "P-DATA-TF",             # PS3.8 9.3.5
    A_RELEASE_RQ: "A-RELEASE-RQ",       # PS3.8 9.3.6
    A_RELEASE_RP: "A-RELEASE-RP",       # PS3.8 9.3.7
    A_ABORT: "A-ABORT",                 # PS3.8 9.3.8
}

#: PDU type -> long name, as Wireshark's DICOM dissector shows it in the
#: info column.
PDU_LONG_NAMES: dict[int, str] = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE request",
    A_ASSOCIATE_AC: "A-ASSOCIATE accept",
    A_ASSOCIATE_RJ: "A-ASSOCIATE reject",
    P_DATA_TF: "P-DATA",
    A_RELEASE_RQ: "A-RELEASE request",
    A_RELEASE_RP: "A-RELEASE response",
    A_ABORT: "A-ABORT",
}

#: Short name -> PDU type (for ``build_pdu("A-ABORT", ...)``).
PDU_TYPE_BY_NAME: dict[str, int] = {name: t for t, name in PDU_TYPES.items()}

#: The request/answer pairs of the Upper Layer, as data (scapy's ``answers``):
#: PDU type -> the PDU types that may answer it (PS3.8 9.3, state machine 9.2).
PDU_ANSWERS: dict[int, tuple[int, ...]] = {
    A_ASSOCIATE_RQ: (A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ABORT),
    A_RELEASE_RQ: (A_RELEASE_RP, A_ABORT),
}

#: Item type -> name.  PS3.8 9.3.2.x (RQ), 9.3.3.x (AC), Annex D; PS3.7 D.3.3.x
#: for the user information sub-items from 0x52 on.
ITEM_TYPES: dict[int, str] = {
    0x10: "Application Context",                     # PS3.8 9.3.2.1 / 9.3.3.1
    0x20: "Presentation Context (RQ)",               # PS3.8 9.3.2.2
    0x21: "Presentation Context (AC)",               # PS3.8 9.3.3.2
    0x30: "Abstract Syntax",                         # PS3.8 9.3.2.2.1
    0x40: "Transfer Syntax",                         # PS3.8 9.3.2.2.2 / 9.3.3.2.1
    0x50: "User Information",                        # PS3.8 9.3.2.3 / 9.3.3.3
    0x51: "Maximum Length",                          # PS3.8 D.1
    0x52: "Implementation Class UID",                # PS3.7 D.3.3.2
    0x53: "Asynchronous Operations Window",          # PS3.7 D.3.3.3
    0x54: "SCP/SCU Role Selection",                  # PS3.7 D.3.3.4
    0x55: "Implementation Version Name",             # PS3.7 D.3.3.2
    0x56: "SOP Class Extended Negotiation",          # PS3.7 D.3.3.5
    0x57: "SOP Class Common Extended Negotiation",   # PS3.7 D.3.3.6
    0x58: "User Identity (RQ)",                      # PS3.7 D.3.3.7.1
    0x59: "User Identity (AC)",                      # PS3.7 D.3.3.7.2
}

#: A-ASSOCIATE-RJ Result, PS3.8 9.3.4 (Table 9-21).
REJECT_RESULTS: dict[int, str] = {
    1: "rejected-permanent",
    2: "rejected-transient",
}

#: A-ASSOCIATE-RJ Source, PS3.8 9.3.4 (Table 9-21).
REJECT_SOURCES: dict[int, str] = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE related function)",
    3: "DICOM UL service-provider (Presentation related function)",
}

#: A-ASSOCIATE-RJ Reason/Diag., which depends on the Source: source ->
#: {reason -> meaning}, PS3.8 9.3.4 (Table 9-21).  Values not listed are
#: "reserved".
REJECT_REASONS: dict[int, dict[int, str]] = {
    1: {
        1: "no-reason-given",
        2: "application-context-name-not-supported",
        3: "calling-AE-title-not-recognized",
        # 4-6 reserved
        7: "called-AE-title-not-recognized",
        # 8-10 reserved
    },
    2: {
        1: "no-reason-given",
        2: "protocol-version-not-supported",
    },
    3: {
        # 0 reserved
        1: "temporary-congestion",
        2: "local-limit-exceeded",
        # 3-7 reserved
    },
}


def reject_reason(source: int, reason: int) -> str:
    """Meaning of an A-ASSOCIATE-RJ Reason/Diag. for its Source (PS3.8 9.3.4);
    "reserved" for values the standard does not assign."""
    return REJECT_REASONS.get(source, {}).get(reason, "reserved")


def readable(term: str) -> str:
    """The standard's hyphenated term as words: 'called-AE-title-not-recognized'
    -> 'Called AE title not recognized'."""
    words = term.replace("-", " ")
    return words[:1].upper() + words[1:]


def reject_text(result: int, source: int, reason: int) -> str:
    """One line for an A-ASSOCIATE-RJ (PS3.8 9.3.4), e.g.
    ``"Rejected permanent, DICOM UL service-user: Called AE title not
    recognized"``."""
    return (f"{readable(REJECT_RESULTS.get(result, f'result {result}'))}, "
            f"{REJECT_SOURCES.get(source, f'source {source}')}: "
            f"{readable(reject_reason(source, reason))}")


#: A-ABORT Source, PS3.8 9.3.8 (Table 9-26).
ABORT_SOURCES: dict[int, str] = {
    0: "DICOM UL service-user (initiated abort)",
    1: "reserved",
    2: "DICOM UL service-provider (initiated abort)",
}

#: A-ABORT Reason/Diag., PS3.8 9.3.8 (Table 9-26); significant only when the
#: Source is 2 (service-provider), otherwise it should be 0.
ABORT_REASONS: dict[int, str] = {
    0: "reason-not-specified",
    1: "unrecognized-PDU",
    2: "unexpected-PDU",
    3: "reserved",
    4: "unrecognized-PDU parameter",
    5: "unexpected-PDU parameter",
    6: "invalid-PDU-parameter value",
}

def abort_text(source: int, reason: int) -> str:
    """One line for an A-ABORT (PS3.8 9.3.8); the reason is shown only when
    it is significant (source 2, service-provider) or non-zero."""
    text = ABORT_SOURCES.get(source, f"source {source}")
    if source == 2 or reason:
        text += ": " + readable(ABORT_REASONS.get(reason, f"reason {reason}"))
    return text


#: Presentation context (AC) Result/Reason, PS3.8 9.3.3.2 (Table 9-18).
PRESENTATION_CONTEXT_RESULTS: dict[int, str] = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported (provider rejection)",
    4: "transfer-syntaxes-not-supported (provider rejection)",
}

PCTX_RESULTS = PRESENTATION_CONTEXT_RESULTS   # short alias

#: User Identity Type of the 0x58 sub-item, PS3.7 D.3.3.7.1 (Table D.3-14).
USER_IDENTITY_TYPES: dict[int, str] = {
    1: "Username",
    2: "Username and passcode",
    3: "Kerberos Service ticket",
    4: "SAML Assertion",
    5: "JSON Web Token (JWT)",
}

#: Positive-response-requested of the 0x58 sub-item, PS3.7 D.3.3.7.1.
USER_IDENTITY_RESPONSE_REQUESTED: dict[int, str] = {
    0: "no response requested",
    1: "positive response requested",
}

#: SCU-role and SCP-role values of the 0x54 sub-item, PS3.7 D.3.3.4
#: (Table D.3-9 for the RQ, D.3-10 for the AC).
SCU_ROLES: dict[int, str] = {
    0: "non-support of the SCU role",
    1: "support of the SCU role",
}
SCP_ROLES: dict[int, str] = {
    0: "non-support of the SCP role",
    1: "support of the SCP role",
}

#: Message Control Header bits of a PDV, PS3.8 E.2.
PDV_COMMAND = 0x01        # bit 0: 1 = command, 0 = data set
PDV_LAST = 0x02           # bit 1: 1 = last fragment, 0 = not last
PDV_RESERVED_BITS = 0xFC  # bits 2-7: reserved, shall be 0

# ---------------------------------------------------------------------------
# DIMSE (PS3.7)
# ---------------------------------------------------------------------------

#: Command Field (0000,0100), PS3.7 E.1 (Table E.1-1).  Every response is
#: its request with bit 15 set (``rq | 0x8000``); C-CANCEL-RQ has no response.
COMMAND_FIELDS: dict[int, str] = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
    0x0FFF: "C-CANCEL-RQ",
}

#: Command field by name (``COMMAND_FIELD_BY_NAME["C-ECHO-RQ"] == 0x0030``).
COMMAND_FIELD_BY_NAME: dict[str, int] = {n: f for f, n in COMMAND_FIELDS.items()}

#: Bit 15 of the Command Field marks a response (PS3.7 E.1-1).
COMMAND_RESPONSE_BIT = 0x8000
C_CANCEL_RQ = 0x0FFF

#: Request -> its response, as data (scapy's ``answers``), PS3.7 E.1-1.
COMMAND_RESPONSES: dict[int, int] = {
    f: f | COMMAND_RESPONSE_BIT
    for f in COMMAND_FIELDS
    if not f & COMMAND_RESPONSE_BIT and f != C_CANCEL_RQ
}


def command_name(field: int) -> str:
    """Name of a Command Field value, or ``"unknown command 0xNNNN"``."""
    return COMMAND_FIELDS.get(field, f"unknown command 0x{field:04X}")


def is_response(field: int) -> bool:
    """True when the Command Field is a response (bit 15 set, PS3.7 E.1-1)."""
    return bool(field & COMMAND_RESPONSE_BIT)


#: Priority (0000,0700): PS3.7 9.1.1.1 (service parameters of C-STORE, the
#: same values for C-FIND/C-MOVE/C-GET) and Table E.1-1.
PRIORITIES: dict[int, str] = {
    0x0000: "MEDIUM",
    0x0001: "HIGH",
    0x0002: "LOW",
}

#: Command Data Set Type (0000,0800), PS3.7 E.1-1: 0x0101 means no data set
#: follows; any other value means one does.
COMMAND_DATA_SET_TYPE_NONE = 0x0101


def has_data_set(command_data_set_type: int) -> bool:
    """True when a Command Data Set Type (0000,0800) announces a data set."""
    return command_data_set_type != COMMAND_DATA_SET_TYPE_NONE


# ---------------------------------------------------------------------------
# Status (0000,0900): PS3.7 Annex C and the service classes of PS3.4
# ---------------------------------------------------------------------------

SUCCESS = "Success"
WARNING = "Warning"
FAILURE = "Failure"
CANCEL = "Cancel"
PENDING = "Pending"

#: Status -> (category, meaning) that hold for every DIMSE service,
#: PS3.7 Annex C (C.1 success, C.2 pending, C.3 cancel, C.4 warning,
#: C.5 failure; the 01xx/02xx meanings are fixed by the standard).
GENERAL_STATUS: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Success"),
    # 0001 is the Warning assigned to "Requested optional Attributes are not
    # supported" (N-CREATE / N-SET of PS3.4, e.g. F.7, and PS3.7 10.1).
    0x0001: (WARNING, "Requested optional Attributes are not supported"),
    0x0105: (FAILURE, "No such attribute"),
    0x0106: (FAILURE, "Invalid attribute value"),
    0x0107: (WARNING, "Attribute list error"),
    0x0110: (FAILURE, "Processing failure"),
    0x0111: (FAILURE, "Duplicate SOP Instance"),
    0x0112: (FAILURE, "No such SOP Instance"),
    0x0113: (FAILURE, "No such event type"),
    0x0114: (FAILURE, "No such argument"),
    0x0115: (FAILURE, "Invalid argument value"),
    0x0116: (WARNING, "Attribute value out of range"),
    0x0117: (FAILURE, "Invalid object instance"),
    0x0118: (FAILURE, "No such SOP Class"),
    0x0119: (FAILURE, "Class-Instance conflict"),
    0x0120: (FAILURE, "Missing attribute"),
    0x0121: (FAILURE, "Missing attribute value"),
    0x0122: (FAILURE, "Refused: SOP Class not supported"),
    0x0123: (FAILURE, "No such action"),
    0x0124: (FAILURE, "Refused: not authorized"),
    0x0210: (FAILURE, "Duplicate invocation"),
    0x0211: (FAILURE, "Unrecognized operation"),
    0x0212: (FAILURE, "Mistyped argument"),
    0x0213: (FAILURE, "Resource limitation"),
    0xFE00: (CANCEL, "Cancel"),
    0xFF00: (PENDING, "Pending"),
    0xFF01: (PENDING, "Pending (warning)"),
}

#: Storage service class (C-STORE), PS3.4 B.2.3 (Table B.2-1).
STORAGE_STATUS: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Success"),
    0xB000: (WARNING, "Coercion of data elements"),
    0xB007: (WARNING, "Data set does not match SOP Class"),
    0xB006: (WARNING, "Elements discarded"),
}
STORAGE_STATUS_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0xA700, 0xA7FF, FAILURE, "Refused: Out of resources"),
    (0xA900, 0xA9FF, FAILURE, "Error: Data set does not match SOP Class"),
    (0xC000, 0xCFFF, FAILURE, "Error: Cannot understand"),
)

#: Query/Retrieve C-FIND, PS3.4 C.4.1.1.4 (Table C.4-1).
FIND_STATUS: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Matching is complete - no final identifier is supplied"),
    0xA700: (FAILURE, "Refused: Out of resources"),
    0xA900: (FAILURE, "Failed: Identifier does not match SOP Class"),
    0xFE00: (CANCEL, "Matching terminated due to Cancel request"),
    0xFF00: (PENDING, "Matches are continuing - current match is supplied "
                      "and any Optional Keys were supported in the same "
                      "manner as Required Keys"),
    0xFF01: (PENDING, "Matches are continuing - warning that one or more "
                      "Optional Keys were not supported for existence "
                      "and/or matching for this Identifier"),
}
FIND_STATUS_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0xC000, 0xCFFF, FAILURE, "Failed: Unable to process"),
)

#: Query/Retrieve C-MOVE, PS3.4 C.4.2.1.5 (Table C.4-2).
MOVE_STATUS: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Sub-operations complete - no failures"),
    0xA701: (FAILURE, "Refused: Out of resources - unable to calculate "
                      "number of matches"),
    0xA702: (FAILURE, "Refused: Out of resources - unable to perform "
                      "sub-operations"),
    0xA801: (FAILURE, "Refused: Move destination unknown"),
    0xA900: (FAILURE, "Failed: Identifier does not match SOP Class"),
    0xB000: (WARNING, "Sub-operations complete - one or more failures"),
    0xFE00: (CANCEL, "Sub-operations terminated due to Cancel indication"),
    0xFF00: (PENDING, "Sub-operations are continuing"),
}
MOVE_STATUS_RANGES = FIND_STATUS_RANGES

#: Query/Retrieve C-GET, PS3.4 C.4.3.1.4 (Table C.4-3).
GET_STATUS: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Sub-operations complete - no failures or warnings"),
    0xA701: (FAILURE, "Refused: Out of resources - unable to calculate "
                      "number of matches"),
    0xA702: (FAILURE, "Refused: Out of resources - unable to perform "
                      "sub-operations"),
    0xA900: (FAILURE, "Failed: Identifier does not match SOP Class"),
    0xB000: (WARNING, "Sub-operations complete - one or more failures "
                      "or warnings"),
    0xFE00: (CANCEL, "Sub-operations terminated due to Cancel indication"),
    0xFF00: (PENDING, "Sub-operations are continuing"),
}
GET_STATUS_RANGES = FIND_STATUS_RANGES

#: Command Field of the request (bit 15 cleared) -> (exact table, ranges)
#: of its service class (PS3.4).  Services not listed use GENERAL_STATUS.
SERVICE_STATUS: dict[int, tuple[dict[int, tuple[str, str]],
                                tuple[tuple[int, int, str, str], ...]]] = {
    0x0001: (STORAGE_STATUS, STORAGE_STATUS_RANGES),   # C-STORE
    0x0020: (FIND_STATUS, FIND_STATUS_RANGES),         # C-FIND
    0x0021: (MOVE_STATUS, MOVE_STATUS_RANGES),         # C-MOVE
    0x0010: (GET_STATUS, GET_STATUS_RANGES),           # C-GET
}

#: Range rules applied when neither an exact code nor the service's own ranges
#: match (meanings shared by the PS3.4 service classes).
GENERAL_STATUS_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0xA700, 0xA7FF, FAILURE, "Refused: Out of resources"),
    (0xA900, 0xA9FF, FAILURE, "Data set or identifier does not match SOP Class"),
    (0xC000, 0xCFFF, FAILURE, "Cannot understand / unable to process"),
    (0xFF00, 0xFFFF, PENDING, "Pending"),
)


def status_category(code: int) -> str:
    """Status class of a Status code by the convention of PS3.7 Annex C:
    Success 0000; Warning 0001, Bxxx, 0107, 0116; Cancel FE00; Pending FF00,
    FF01; Failure Axxx, Cxxx, 01xx, 02xx.

    Codes the convention leaves out (the standard forbids them) are placed by
    their high byte: FExx Cancel, FFxx Pending, anything else Failure.
    """
    if code == 0x0000:
        return SUCCESS
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return WARNING
    if 0xFE00 <= code <= 0xFEFF:
        return CANCEL
    if 0xFF00 <= code <= 0xFFFF:
        return PENDING
    return FAILURE


def status_info(code: int, command_field: int | None = None) -> tuple[str, str]:
    """(category, meaning) of a DIMSE Status (0000,0900).

    ``category`` is one of "Success", "Warning", "Failure", "Cancel",
    "Pending".  ``command_field`` (request or response value; bit 15 is
    ignored) selects the service class tables of PS3.4 for C-STORE, C-FIND,
    C-MOVE and C-GET.  Lookup order: the service's exact codes, the general
    codes of PS3.7 Annex C, the service's ranges (A7xx, A9xx, Cxxx), the
    shared ranges (A7xx, A9xx, Cxxx, FFxx); otherwise the category comes from
    :func:`status_category` and the meaning is ``"unknown status 0xNNNN"``.
    """
    code &= 0xFFFF
    service = None
    if command_field is not None:
        service = SERVICE_STATUS.get(command_field & ~COMMAND_RESPONSE_BIT)
    if service is not None and code in service[0]:
        return service[0][code]
    if code in GENERAL_STATUS:
        return GENERAL_STATUS[code]
    ranges = (service[1] if service is not None else ()) + GENERAL_STATUS_RANGES
    for lo, hi, category, meaning in ranges:
        if lo <= code <= hi:
            return category, meaning
    return status_category(code), f"unknown status 0x{code:04X}"


__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")] + [
    "reject_reason", "reject_text", "abort_text", "command_name", "is_response", "has_data_set",
    "status_category", "status_info",
]
