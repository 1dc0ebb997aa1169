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


# ---------------------------------------------------------------------------
# Status tables selected by SOP Class (the N-services and frame-level retrieve)
# ---------------------------------------------------------------------------
#
# The Status meanings below are the standard's "Further Meaning" texts without
# their "Refused:"/"Failed:" prefix (the category says as much, and the prefix
# changed between editions of PS3.4).  Every code of these service classes is
# also a code of PS3.7 Annex C's convention (Bxxx Warning, Cxxx/Axxx Failure),
# so the category agrees with :func:`status_category`.

#: Service class keys of :data:`SOP_CLASS_SERVICES`.
UPS = "Unified Procedure Step"
PRINT = "Print Management"
MPPS = "Modality Performed Procedure Step"
STORAGE_COMMITMENT = "Storage Commitment"
INSTANCE_AVAILABILITY = "Instance Availability Notification"
COMPOSITE_INSTANCE_ROOT_RETRIEVE = "Composite Instance Root Retrieve"

#: SOP Class UIDs the checks name (PS3.4 F.7.1, J.3; PS3.6 Annex A).
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
STORAGE_COMMITMENT_SOP_CLASS = "1.2.840.10008.1.20.1"     # Push Model

#: Request Command Fields of the services below (PS3.7 E.1-1).
C_STORE_RQ = 0x0001
N_EVENT_REPORT_RQ = 0x0100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_CREATE_RQ = 0x0140
C_GET_RQ = 0x0010
C_MOVE_RQ = 0x0021

#: UPS N-ACTION, the union of the three N-ACTION tables of PS3.4 Annex CC
#: (their codes do not collide; B304 and C307 mean the same in each):
#: Change UPS State, CC.2.1.4 (Table CC.2.1-2); Request UPS Cancel, CC.2.2.4
#: (Table CC.2.2-2); Subscribe/Unsubscribe, CC.2.3.4 (Table CC.2.3-3).
UPS_ACTION_STATUS: dict[int, tuple[str, str]] = {
    0xB301: (WARNING, "Deletion Lock not granted"),                        # CC.2.3-3
    0xB304: (WARNING, "The UPS is already in the requested state of CANCELED"),
    0xB306: (WARNING, "The UPS is already in the requested state of COMPLETED"),
    0xC300: (FAILURE, "The UPS may no longer be updated"),                 # CC.2.1-2
    0xC301: (FAILURE, "The correct Transaction UID was not provided"),     # CC.2.1-2
    0xC302: (FAILURE, "The UPS is already IN PROGRESS"),                   # CC.2.1-2
    0xC303: (FAILURE, "The UPS may only become SCHEDULED via N-CREATE, "
                      "not N-SET or N-ACTION"),                            # CC.2.1-2
    0xC304: (FAILURE, "The UPS has not met final state requirements for "
                      "the requested state change"),                       # CC.2.1-2
    0xC307: (FAILURE, "Specified SOP Instance UID does not exist or is not "
                      "a UPS Instance managed by this SCP"),
    0xC308: (FAILURE, "Receiving AE-TITLE is Unknown to this SCP"),        # CC.2.3-3
    0xC310: (FAILURE, 'The UPS is not yet in the "IN PROGRESS" state'),    # CC.2.1-2
    0xC311: (FAILURE, "The UPS is already COMPLETED"),                     # CC.2.2-2
    0xC312: (FAILURE, "The performer cannot be contacted"),                # CC.2.2-2
    0xC313: (FAILURE, "Performer chooses not to cancel"),                  # CC.2.2-2
    0xC314: (FAILURE, "Specified action not appropriate for specified "
                      "instance"),                                         # CC.2.3-3
    0xC315: (FAILURE, "SCP does not support Event Reports"),               # CC.2.3-3
}

#: UPS N-CREATE (Create a UPS), PS3.4 CC.2.5.4 (Table CC.2.5-4).
UPS_CREATE_STATUS: dict[int, tuple[str, str]] = {
    0xB300: (WARNING, "The UPS was created with modifications"),
    0xC309: (FAILURE, 'The provided value of UPS State was not "SCHEDULED"'),
}

#: UPS N-SET (Set UPS Information), PS3.4 CC.2.6.4 (Table CC.2.6-1).
UPS_SET_STATUS: dict[int, tuple[str, str]] = {
    0xB305: (WARNING, "Coerced invalid values to valid values"),
    0xC300: (FAILURE, "The UPS may no longer be updated"),
    0xC301: (FAILURE, "The correct Transaction UID was not provided"),
    0xC307: UPS_ACTION_STATUS[0xC307],
    0xC310: (FAILURE, 'The UPS is not in the "IN PROGRESS" state'),
}

#: UPS N-GET (Get UPS Information), PS3.4 CC.2.7.4 (Table CC.2.7-1).
UPS_GET_STATUS: dict[int, tuple[str, str]] = {
    0xC307: UPS_ACTION_STATUS[0xC307],
}

#: Print Management, PS3.4 Annex H: the Status values of the Print Management
#: SOP Classes.  Each code has one meaning across the Annex, so one table serves
#: every SOP Class and operation.  H.4.1.2.1.2 (Film Session N-CREATE),
#: H.4.1.2.4.2 (Film Session N-ACTION), H.4.2.2.1.2 (Film Box N-CREATE/N-SET,
#: Table H.4.2.2.1.2-1), H.4.2.2.4.2 (Film Box N-ACTION, Table H.4-9).
PRINT_STATUS: dict[int, tuple[str, str]] = {
    0xB600: (WARNING, "Memory allocation not supported"),                  # H.4.1.2.1.2
    0xB601: (WARNING, "Film session printing (collation) is not supported"),  # H.4.1.2.4.2
    0xB602: (WARNING, "Film Session SOP Instance hierarchy does not contain "
                      "Image Box SOP Instances (empty page)"),             # H.4.1.2.4.2
    0xB603: (WARNING, "Film Box SOP Instance hierarchy does not contain "
                      "Image Box SOP Instances (empty page)"),             # H.4-9
    0xB604: (WARNING, "Image size is larger than image box size, the image "
                      "has been demagnified"),                             # H.4-9
    0xB605: (WARNING, "Requested Min Density or Max Density outside of "
                      "printer's operating range. The printer will use its "
                      "respective minimum or maximum density value "
                      "instead"),                                          # H.4.2.2.1.2
    0xB609: (WARNING, "Image size is larger than the Image Box size. The "
                      "Image has been cropped to fit"),                    # H.4-9
    0xB60A: (WARNING, "Image size or Combined Print Image size is larger "
                      "than the Image Box size. Image or Combined Print "
                      "Image has been decimated to fit"),                  # H.4-9
    0xC600: (FAILURE, "Film Session SOP Instance hierarchy does not contain "
                      "Film Box SOP Instances"),                           # H.4.1.2.4.2
    0xC601: (FAILURE, "Unable to create Print Job SOP Instance; print queue "
                      "is full"),                                          # H.4.1.2.4.2
    0xC602: (FAILURE, "Unable to create Print Job SOP Instance; print queue "
                      "is full"),                                          # H.4-9
    0xC603: (FAILURE, "Image size is larger than image box size"),         # H.4-9
    0xC616: (FAILURE, "There is an existing Film Box that has not been "
                      "printed and N-ACTION at the Film Session level is not "
                      "supported. A new Film Box will not be created when a "
                      "previous Film Box has not been printed"),           # H.4.2.2.1.2
}

#: Modality Performed Procedure Step N-SET, PS3.4 F.7.2.2.4 (Table F.7.2-2).
#: The standard defines no MPPS-specific Status code: it assigns the general
#: 0110 (Processing failure, PS3.7 C.5.21) with Error ID (0000,0903) A710 and
#: the Error Comment below.  A710 is an Error ID, not a Status.  N-CREATE
#: (F.7.2.1) has no specific codes; the general ones of PS3.7 apply.
MPPS_SET_STATUS: dict[int, tuple[str, str]] = {
    0x0110: (FAILURE, "Processing failure (MPPS: Error ID A710 means "
                      "\"Performed Procedure Step Object may no longer be "
                      "updated\")"),
}

#: Frame-level retrieve of the Composite Instance Root Retrieve Service,
#: PS3.4 Y.4.1.3 (C-MOVE) and Y.4.2.3 (C-GET); the codes AA00-AA04 of the
#: Retrieve Level FRAME (AA02 is also cited in PS3.17 MM.2.4).
FRAME_RETRIEVE_STATUS: dict[int, tuple[str, str]] = {
    0xAA00: (FAILURE, "None of the frames requested were found in the SOP "
                      "Instance"),
    0xAA01: (FAILURE, "Unable to create new object for this SOP class"),
    0xAA02: (FAILURE, "Unable to extract frames"),
    0xAA03: (FAILURE, "Time-based request received for a non-time-based "
                      "original SOP Instance"),
    0xAA04: (FAILURE, "Invalid request"),
}

#: SOP Class UID (Affected/Requested SOP Class UID of a message, or of its
#: request) -> service class key.  Storage Commitment (PS3.4 J.3) and Instance
#: Availability Notification (PS3.4 R) define no Status codes of their own:
#: their messages use the general codes of PS3.7 (see PS3.4 J.3.2.1.3,
#: J.3.3.1.3, R.3.2); they are listed for the event and action names.
SOP_CLASS_SERVICES: dict[str, str] = {
    # Unified Procedure Step, PS3.4 CC.3.1 (Table CC.3.1-1)
    "1.2.840.10008.5.1.4.34.6.1": UPS,     # UPS Push
    "1.2.840.10008.5.1.4.34.6.2": UPS,     # UPS Watch
    "1.2.840.10008.5.1.4.34.6.3": UPS,     # UPS Pull
    "1.2.840.10008.5.1.4.34.6.4": UPS,     # UPS Event
    "1.2.840.10008.5.1.4.34.6.5": UPS,     # UPS Query
    # Print Management, PS3.4 H.4 (SOP Classes) and H.3 (Meta SOP Classes)
    "1.2.840.10008.5.1.1.1": PRINT,        # Basic Film Session
    "1.2.840.10008.5.1.1.2": PRINT,        # Basic Film Box
    "1.2.840.10008.5.1.1.4": PRINT,        # Basic Grayscale Image Box
    "1.2.840.10008.5.1.1.4.1": PRINT,      # Basic Color Image Box
    "1.2.840.10008.5.1.1.4.2": PRINT,      # Referenced Image Box (retired)
    "1.2.840.10008.5.1.1.14": PRINT,       # Print Job
    "1.2.840.10008.5.1.1.15": PRINT,       # Basic Annotation Box
    "1.2.840.10008.5.1.1.16": PRINT,       # Printer
    "1.2.840.10008.5.1.1.16.376": PRINT,   # Printer Configuration Retrieval
    "1.2.840.10008.5.1.1.23": PRINT,       # Presentation LUT
    "1.2.840.10008.5.1.1.9": PRINT,        # Basic Grayscale Print Management Meta
    "1.2.840.10008.5.1.1.9.1": PRINT,      # Referenced Grayscale Print Management Meta (retired)
    "1.2.840.10008.5.1.1.18": PRINT,       # Basic Color Print Management Meta
    "1.2.840.10008.5.1.1.18.1": PRINT,     # Referenced Color Print Management Meta (retired)
    # Modality Performed Procedure Step, PS3.4 F.7 / F.8 / F.9
    MPPS_SOP_CLASS: MPPS,
    "1.2.840.10008.3.1.2.3.4": MPPS,       # MPPS Retrieve
    "1.2.840.10008.3.1.2.3.5": MPPS,       # MPPS Notification
    # Storage Commitment Push Model, PS3.4 J.3
    STORAGE_COMMITMENT_SOP_CLASS: STORAGE_COMMITMENT,
    # Instance Availability Notification, PS3.4 R.3
    "1.2.840.10008.5.1.4.33": INSTANCE_AVAILABILITY,
    # Composite Instance Root Retrieve, PS3.4 Y.6
    "1.2.840.10008.5.1.4.1.2.4.2": COMPOSITE_INSTANCE_ROOT_RETRIEVE,   # MOVE
    "1.2.840.10008.5.1.4.1.2.4.3": COMPOSITE_INSTANCE_ROOT_RETRIEVE,   # GET
}

_NO_RANGES: tuple[tuple[int, int, str, str], ...] = ()

#: (service class, Command Field of the request or None for every command) ->
#: (exact table, ranges): the Status tables chosen by SOP Class.
SOP_CLASS_STATUS: dict[tuple[str, int | None],
                       tuple[dict[int, tuple[str, str]],
                             tuple[tuple[int, int, str, str], ...]]] = {
    (UPS, N_ACTION_RQ): (UPS_ACTION_STATUS, _NO_RANGES),
    (UPS, N_CREATE_RQ): (UPS_CREATE_STATUS, _NO_RANGES),
    (UPS, N_SET_RQ): (UPS_SET_STATUS, _NO_RANGES),
    (UPS, N_GET_RQ): (UPS_GET_STATUS, _NO_RANGES),
    (PRINT, None): (PRINT_STATUS, _NO_RANGES),
    (MPPS, N_SET_RQ): (MPPS_SET_STATUS, _NO_RANGES),
    (COMPOSITE_INSTANCE_ROOT_RETRIEVE, C_MOVE_RQ): (FRAME_RETRIEVE_STATUS, _NO_RANGES),
    (COMPOSITE_INSTANCE_ROOT_RETRIEVE, C_GET_RQ): (FRAME_RETRIEVE_STATUS, _NO_RANGES),
}


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


def status_tables(command_field: int | None = None, sop_class: str | None = None
                  ) -> tuple[tuple[dict[int, tuple[str, str]], ...],
                             tuple[tuple[int, int, str, str], ...]]:
    """The Status tables that apply to a message: (exact tables, ranges), most
    specific first.  The SOP Class tables (:data:`SOP_CLASS_STATUS`, chosen by
    the service class of ``sop_class`` and the command) come before the tables
    of the C-services chosen by the command alone (:data:`SERVICE_STATUS`);
    the general codes and ranges are not included."""
    command = None if command_field is None else command_field & ~COMMAND_RESPONSE_BIT
    exact: list = []
    ranges: tuple = ()
    service = SOP_CLASS_SERVICES.get(sop_class) if sop_class else None
    if service is not None:
        keys = ((service, None),) if command is None else ((service, command), (service, None))
        for key in keys:
            found = SOP_CLASS_STATUS.get(key)
            if found is not None:
                exact.append(found[0])
                ranges += found[1]
    if command is not None:
        found = SERVICE_STATUS.get(command)
        if found is not None:
            exact.append(found[0])
            ranges += found[1]
    return tuple(exact), ranges


def status_info(code: int, command_field: int | None = None, *,
                sop_class: str | None = None) -> tuple[str, str]:
    """(category, meaning) of a DIMSE Status (0000,0900).

    ``category`` is one of "Success", "Warning", "Failure", "Cancel",
    "Pending".  ``command_field`` (request or response value; bit 15 is
    ignored) selects the service class tables of PS3.4 for C-STORE, C-FIND,
    C-MOVE and C-GET.  ``sop_class``, the Affected/Requested SOP Class UID of
    the message (or of its request), selects the tables of the service
    classes whose codes depend on the SOP Class: Unified Procedure Step,
    Print Management, MPPS, and frame-level retrieve (see
    :data:`SOP_CLASS_SERVICES`).

    Lookup order: the exact codes of the service (by SOP Class and command,
    then by command), the general codes of PS3.7 Annex C, the service's
    ranges (A7xx, A9xx, Cxxx), the shared ranges (A7xx, A9xx, Cxxx, FFxx);
    otherwise the category comes from :func:`status_category` and the meaning
    is ``"unknown status 0xNNNN"``.
    """
    code &= 0xFFFF
    exact, ranges = status_tables(command_field, sop_class)
    for table in exact:
        found = table.get(code)
        if found is not None:
            return found
    found = GENERAL_STATUS.get(code)
    if found is not None:
        return found
    for lo, hi, category, meaning in ranges + GENERAL_STATUS_RANGES:
        if lo <= code <= hi:
            return category, meaning
    return status_category(code), f"unknown status 0x{code:04X}"


# ---------------------------------------------------------------------------
# Event Type ID (0000,1002) and Action Type ID (0000,1008), per SOP Class
# ---------------------------------------------------------------------------

_UPS_SOP_CLASSES = tuple(uid for uid, svc in SOP_CLASS_SERVICES.items() if svc == UPS)

#: UPS N-ACTION Action Type IDs.  Names: PS3.4 CC.2.1 (Change UPS State),
#: CC.2.2.1 (Table CC.2.2-1, Request UPS Cancel = 2), CC.2.3.2 (Subscribe to
#: Receive UPS Event Reports = 3, Unsubscribe from Receiving UPS Event
#: Reports = 4) and CC.2.3 (the third Subscription action, Suspend Global
#: Subscription).
UPS_ACTION_TYPES: dict[int, str] = {
    1: "Change UPS State",
    2: "Request UPS Cancel",
    3: "Subscribe to Receive UPS Event Reports",
    4: "Unsubscribe from Receiving UPS Event Reports",
    5: "Suspend Global Subscription",
}

#: UPS N-EVENT-REPORT Event Type IDs, PS3.4 CC.2.4.1 (Table CC.2.4-1); only
#: the types checked against the standard are listed.
UPS_EVENT_TYPES: dict[int, str] = {
    1: "UPS State Report",
    2: "UPS Cancel Requested",
    3: "UPS Progress Report",
    4: "SCP Status Change",
}

#: SOP Class UID -> {Event Type ID -> Event Type Name} of N-EVENT-REPORT.
#: MPPS: only the MPPS Notification SOP Class reports events (PS3.4 F.9.2,
#: Table F.9.2-1); the MPPS SOP Class itself (F.7) has N-CREATE and N-SET only.
#: Instance Availability Notification (PS3.4 R) has no events (N-CREATE only).
EVENT_TYPE_NAMES: dict[str, dict[int, str]] = {
    # Storage Commitment Push Model, PS3.4 J.3.3.1 (Table J.3-2)
    "1.2.840.10008.1.20.1": {
        1: "Storage Commitment Request Successful",
        2: "Storage Commitment Request Complete - Failures Exist",
    },
    # Modality Performed Procedure Step Notification, PS3.4 F.9.2 (Table F.9.2-1)
    "1.2.840.10008.3.1.2.3.5": {
        1: "Performed Procedure Step In Progress",
        2: "Performed Procedure Step Completed",
        3: "Performed Procedure Step Discontinued",
        4: "Performed Procedure Step Updated",
    },
    # Printer, PS3.4 H.4.6.2.1 (Event Type Name Normal/Warning/Failure)
    "1.2.840.10008.5.1.1.16": {1: "Normal", 2: "Warning", 3: "Failure"},
    # Print Job, PS3.4 H.4.5.2.1 (Execution Status: Pending/Printing/Done/Failure)
    "1.2.840.10008.5.1.1.14": {1: "Pending", 2: "Printing", 3: "Done", 4: "Failure"},
    **{uid: UPS_EVENT_TYPES for uid in _UPS_SOP_CLASSES},
}

#: SOP Class UID -> {Action Type ID -> Action Type Name} of N-ACTION.
ACTION_TYPE_NAMES: dict[str, dict[int, str]] = {
    # Storage Commitment Push Model, PS3.4 J.3.2.1 (Table J.3-1; J.3.2.1.2:
    # "The Action Type ID shall be set to 1")
    "1.2.840.10008.1.20.1": {1: "Request Storage Commitment"},
    # Basic Film Session, PS3.4 H.4.1.2.4.1
    "1.2.840.10008.5.1.1.1": {1: "Print"},
    # Basic Film Box, PS3.4 H.4.2.2.4.1 (Table H.4-8)
    "1.2.840.10008.5.1.1.2": {1: "Print"},
    **{uid: UPS_ACTION_TYPES for uid in _UPS_SOP_CLASSES},
}


def event_type_name(sop_class: str | None, event_id: int | None) -> str | None:
    """Name of an Event Type ID (0000,1002) of ``sop_class``'s N-EVENT-REPORT
    (:data:`EVENT_TYPE_NAMES`), or None when the standard assigns none."""
    if not sop_class or event_id is None:
        return None
    return EVENT_TYPE_NAMES.get(sop_class, {}).get(event_id)


def action_type_name(sop_class: str | None, action_id: int | None) -> str | None:
    """Name of an Action Type ID (0000,1008) of ``sop_class``'s N-ACTION
    (:data:`ACTION_TYPE_NAMES`), or None when the standard assigns none."""
    if not sop_class or action_id is None:
        return None
    return ACTION_TYPE_NAMES.get(sop_class, {}).get(action_id)


# ---------------------------------------------------------------------------
# Failure Reason (0008,1197) of the Storage Commitment result
# ---------------------------------------------------------------------------

#: Failure Reason (0008,1197) in the Failed SOP Sequence (0008,1198) of a
#: Storage Commitment N-EVENT-REPORT (PS3.4 J.3.3.1.1.2): value -> (term,
#: explanation), PS3.3 C.14.1.1.  These values reuse Status codes of PS3.7
#: but are not Status values (0131 is no DIMSE Status at all).
FAILURE_REASONS: dict[int, tuple[str, str]] = {
    0x0110: ("Processing failure",
             "A general failure in processing the operation was encountered"),
    0x0112: ("No such object instance",
             "One or more of the elements in the Referenced SOP Instance "
             "Sequence was not available"),
    0x0213: ("Resource limitation",
             "The SCP does not currently have enough resources to store the "
             "requested SOP Instance(s)"),
    0x0122: ("Referenced SOP Class not supported",
             "Storage Commitment has been requested for a SOP Instance with a "
             "SOP Class that is not supported by the SCP"),
    0x0119: ("Class / Instance conflict",
             "The SOP Class of an element in the Referenced SOP Instance "
             "Sequence did not correspond to the SOP class registered for this "
             "SOP Instance at the SCP"),
    0x0131: ("Duplicate transaction UID",
             "The Transaction UID of the Storage Commitment Request is already "
             "in use"),
}


def failure_reason(value: int) -> str:
    """The term of a Failure Reason (0008,1197) value (PS3.3 C.14.1.1), or
    ``"unknown failure reason 0xNNNN"``."""
    found = FAILURE_REASONS.get(value)
    return found[0] if found else f"unknown failure reason 0x{value & 0xFFFF:04X}"


# ---------------------------------------------------------------------------
# Transfer Syntaxes (PS3.5 Annex A) and the application context
# ---------------------------------------------------------------------------

IMPLICIT_LE = "1.2.840.10008.1.2"           # Implicit VR Little Endian, PS3.5 A.1
EXPLICIT_LE = "1.2.840.10008.1.2.1"         # Explicit VR Little Endian, PS3.5 A.2
EXPLICIT_BE = "1.2.840.10008.1.2.2"         # Explicit VR Big Endian (retired), PS3.5 A.3
DEFLATED_LE = "1.2.840.10008.1.2.1.99"      # Deflated Explicit VR Little Endian, PS3.5 A.5
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"   # the DICOM application context, PS3.7 A.2.1

DEFLATED_TRANSFER_SYNTAXES: frozenset[str] = frozenset({
    "1.2.840.10008.1.2.1.99",     # Deflated Explicit VR Little Endian, PS3.5 A.5
    "1.2.840.10008.1.2.4.95",     # JPIP Referenced Deflate
    "1.2.840.10008.1.2.4.205",    # JPIP HTJ2K Referenced Deflate
})
"""Transfer Syntaxes whose whole data set is deflated: encoded Explicit VR
Little Endian, then the byte stream compressed with Deflate (RFC 1951) with no
zlib header (PS3.5 A.5, Deflated Explicit VR Little Endian; the JPIP
Referenced Deflate syntaxes add the same deflate step to their Explicit VR
encoding).  UIDs as listed in PS3.5 Table A-1 and PS3.6 Annex A.  Deflated
Image Frame Compression (1.2.840.10008.1.2.8.1, PS3.5 A.4.13) is not one of
them: it deflates each frame of Pixel Data, not the data set."""


__all__ = [name for name in dir() if name.isupper() and not name.startswith("_")] + [
    "reject_reason", "reject_text", "abort_text", "command_name", "is_response", "has_data_set",
    "status_category", "status_tables", "status_info", "event_type_name", "action_type_name",
    "failure_reason",
]
