"""Status, Event Type and Action Type tables chosen by SOP Class (PS3.4), the
Storage Commitment Failure Reasons (PS3.3 C.14.1.1), the deflated transfer
syntaxes (PS3.5 A.5), and their use in the text renderers."""

import pytest

from dicomwire.plugins.dicom import render
from dicomwire.plugins.dicom.model import Message
from dicomwire.specs.dicom import tables
from dicomwire.specs.dicom.command import encode_command
from dicomwire.specs.dicom.tables import (
    action_type_name,
    event_type_name,
    failure_reason,
    status_category,
    status_info,
    status_tables,
)
from dicomwire.specs.dicom.uids import UID_NAMES

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_WATCH = "1.2.840.10008.5.1.4.34.6.2"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
GRAYSCALE_PRINT_META = "1.2.840.10008.5.1.1.9"
MPPS = "1.2.840.10008.3.1.2.3.3"
MPPS_NOTIFICATION = "1.2.840.10008.3.1.2.3.5"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
IAN = "1.2.840.10008.5.1.4.33"
ROOT_RETRIEVE_MOVE = "1.2.840.10008.5.1.4.1.2.4.2"
ROOT_RETRIEVE_GET = "1.2.840.10008.5.1.4.1.2.4.3"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"

C_STORE_RSP, C_GET_RSP, C_FIND_RSP, C_MOVE_RSP = 0x8001, 0x8010, 0x8020, 0x8021
N_EVENT_REPORT_RSP, N_GET_RSP, N_SET_RSP = 0x8100, 0x8110, 0x8120
N_ACTION_RSP, N_CREATE_RSP, N_DELETE_RSP = 0x8130, 0x8140, 0x8150

CATEGORIES = {"Success", "Warning", "Failure", "Cancel", "Pending"}


# --- Unified Procedure Step, PS3.4 Annex CC ---

@pytest.mark.parametrize("code, command, sop, category, meaning", [
    # N-ACTION: Change UPS State (CC.2.1-2), Request Cancel (CC.2.2-2),
    # Subscribe (CC.2.3-3)
    (0xC300, N_ACTION_RSP, UPS_PUSH, "Failure", "The UPS may no longer be updated"),
    (0xC301, N_ACTION_RSP, UPS_PULL, "Failure", "The correct Transaction UID was not provided"),
    (0xC302, N_ACTION_RSP, UPS_PUSH, "Failure", "The UPS is already IN PROGRESS"),
    (0xC303, N_ACTION_RSP, UPS_PUSH, "Failure", "only become SCHEDULED via N-CREATE"),
    (0xC304, N_ACTION_RSP, UPS_PUSH, "Failure", "final state requirements"),
    (0xC307, N_ACTION_RSP, UPS_WATCH, "Failure", "not a UPS Instance managed by this SCP"),
    (0xC308, N_ACTION_RSP, UPS_WATCH, "Failure", "Receiving AE-TITLE is Unknown"),
    (0xC310, N_ACTION_RSP, UPS_PUSH, "Failure", 'not yet in the "IN PROGRESS" state'),
    (0xC311, N_ACTION_RSP, UPS_PUSH, "Failure", "The UPS is already COMPLETED"),
    (0xC312, N_ACTION_RSP, UPS_PUSH, "Failure", "The performer cannot be contacted"),
    (0xC313, N_ACTION_RSP, UPS_PUSH, "Failure", "Performer chooses not to cancel"),
    (0xC314, N_ACTION_RSP, UPS_WATCH, "Failure", "action not appropriate"),
    (0xC315, N_ACTION_RSP, UPS_WATCH, "Failure", "SCP does not support Event Reports"),
    (0xB301, N_ACTION_RSP, UPS_WATCH, "Warning", "Deletion Lock not granted"),
    (0xB304, N_ACTION_RSP, UPS_PUSH, "Warning", "already in the requested state of CANCELED"),
    (0xB306, N_ACTION_RSP, UPS_PUSH, "Warning", "already in the requested state of COMPLETED"),
    # N-CREATE (CC.2.5-4)
    (0xB300, N_CREATE_RSP, UPS_PUSH, "Warning", "The UPS was created with modifications"),
    (0xC309, N_CREATE_RSP, UPS_PUSH, "Failure", 'UPS State was not "SCHEDULED"'),
    # N-SET (CC.2.6-1): C310 has its own wording there
    (0xB305, N_SET_RSP, UPS_PULL, "Warning", "Coerced invalid values to valid values"),
    (0xC310, N_SET_RSP, UPS_PULL, "Failure", 'The UPS is not in the "IN PROGRESS" state'),
    (0xC300, N_SET_RSP, UPS_PULL, "Failure", "The UPS may no longer be updated"),
    (0x0001, N_SET_RSP, UPS_PULL, "Warning", "Requested optional Attributes are not supported"),
    # N-GET (CC.2.7-1)
    (0xC307, N_GET_RSP, UPS_PULL, "Failure", "not a UPS Instance managed by this SCP"),
    # The request's Command Field selects the same tables as the response's.
    (0xC300, 0x0130, UPS_PUSH, "Failure", "The UPS may no longer be updated"),
])
def test_ups_status(code, command, sop, category, meaning):
    got = status_info(code, command, sop_class=sop)
    assert got[0] == category and meaning in got[1]


def test_ups_codes_belong_to_their_operation():
    # B300/C309 are N-CREATE codes: in an N-ACTION response they are unknown.
    assert status_info(0xB300, N_ACTION_RSP, sop_class=UPS_PUSH) == (
        "Warning", "unknown status 0xB300")
    assert status_info(0xC309, N_SET_RSP, sop_class=UPS_PULL)[1] == \
        "Cannot understand / unable to process"
    # UPS C-FIND (CC.2.8.4) uses the C-FIND table: Cxxx "Unable to process".
    assert status_info(0xC300, C_FIND_RSP, sop_class=UPS_QUERY) == (
        "Failure", "Failed: Unable to process")
    assert status_info(0xFF01, C_FIND_RSP, sop_class=UPS_PULL) == \
        status_info(0xFF01, C_FIND_RSP)
    # Every UPS SOP Class of PS3.4 CC.3.1 selects the UPS tables.
    for sop in (UPS_PUSH, UPS_WATCH, UPS_PULL, UPS_EVENT, UPS_QUERY):
        assert tables.SOP_CLASS_SERVICES[sop] == tables.UPS
        assert status_info(0xC312, N_ACTION_RSP, sop_class=sop)[1] == \
            "The performer cannot be contacted"


# --- Print Management, PS3.4 Annex H ---

@pytest.mark.parametrize("code, command, sop, category, meaning", [
    (0xB600, N_CREATE_RSP, FILM_SESSION, "Warning", "Memory allocation not supported"),
    (0xB601, N_ACTION_RSP, FILM_SESSION, "Warning", "collation"),
    (0xB602, N_ACTION_RSP, FILM_SESSION, "Warning", "Film Session SOP Instance hierarchy"),
    (0xC600, N_ACTION_RSP, FILM_SESSION, "Failure", "does not contain Film Box SOP Instances"),
    (0xC601, N_ACTION_RSP, FILM_SESSION, "Failure", "print queue is full"),
    (0xB603, N_ACTION_RSP, FILM_BOX, "Warning", "(empty page)"),
    (0xB604, N_ACTION_RSP, FILM_BOX, "Warning", "demagnified"),
    (0xB605, N_CREATE_RSP, FILM_BOX, "Warning", "Min Density or Max Density"),
    (0xB609, N_ACTION_RSP, FILM_BOX, "Warning", "cropped to fit"),
    (0xB60A, N_ACTION_RSP, FILM_BOX, "Warning", "decimated to fit"),
    (0xC602, N_ACTION_RSP, FILM_BOX, "Failure", "print queue is full"),
    (0xC603, N_SET_RSP, GRAYSCALE_IMAGE_BOX, "Failure", "larger than image box size"),
    (0xC616, N_CREATE_RSP, FILM_BOX, "Failure", "existing Film Box that has not been printed"),
    # The Meta SOP Classes select the same table.
    (0xB600, N_CREATE_RSP, GRAYSCALE_PRINT_META, "Warning", "Memory allocation not supported"),
    # General codes stay general.
    (0x0106, N_CREATE_RSP, FILM_SESSION, "Failure", "Invalid attribute value"),
    (0x0213, N_CREATE_RSP, FILM_SESSION, "Failure", "Resource limitation"),
])
def test_print_status(code, command, sop, category, meaning):
    got = status_info(code, command, sop_class=sop)
    assert got[0] == category and meaning in got[1]


def test_print_codes_need_a_print_sop_class():
    # Without the SOP Class (or with another) B600 is just a warning code.
    assert status_info(0xB600, N_CREATE_RSP) == ("Warning", "unknown status 0xB600")
    assert status_info(0xB600, N_CREATE_RSP, sop_class=MPPS) == \
        ("Warning", "unknown status 0xB600")


# --- Modality Performed Procedure Step, PS3.4 F.7 ---

def test_mpps_status():
    # F.7.2.2.4: 0110 with Error ID A710 on N-SET; no MPPS-specific codes.
    cat, meaning = status_info(0x0110, N_SET_RSP, sop_class=MPPS)
    assert cat == "Failure" and "A710" in meaning and "may no longer be updated" in meaning
    assert status_info(0x0110, N_CREATE_RSP, sop_class=MPPS) == ("Failure", "Processing failure")
    assert status_info(0x0116, N_SET_RSP, sop_class=MPPS) == \
        ("Warning", "Attribute value out of range")
    # A710 is an Error ID, not a Status: as a Status it is the A7xx range.
    assert status_info(0xA710, N_SET_RSP, sop_class=MPPS)[1] == "Refused: Out of resources"


# --- Storage Commitment, PS3.4 J.3 / PS3.3 C.14.1.1 ---

def test_storage_commitment_status_is_general():
    for code in (0x0000, 0x0110, 0x0112, 0x0119, 0x0123, 0x0213):
        for command in (N_ACTION_RSP, N_EVENT_REPORT_RSP):
            assert status_info(code, command, sop_class=STORAGE_COMMITMENT) == \
                tables.GENERAL_STATUS[code]


@pytest.mark.parametrize("value, term", [
    (0x0110, "Processing failure"),
    (0x0112, "No such object instance"),
    (0x0213, "Resource limitation"),
    (0x0122, "Referenced SOP Class not supported"),
    (0x0119, "Class / Instance conflict"),
    (0x0131, "Duplicate transaction UID"),
])
def test_failure_reasons(value, term):
    assert failure_reason(value) == term
    assert tables.FAILURE_REASONS[value][0] == term
    assert tables.FAILURE_REASONS[value][1]          # the explanation of C.14.1.1


def test_failure_reason_unknown():
    assert set(tables.FAILURE_REASONS) == {0x0110, 0x0112, 0x0213, 0x0122, 0x0119, 0x0131}
    assert failure_reason(0x0111) == "unknown failure reason 0x0111"
    assert failure_reason(0xA700) == "unknown failure reason 0xA700"


# --- Instance Availability Notification, PS3.4 R ---

def test_instance_availability_status_is_general():
    for code in (0x0000, 0x0107, 0x0110, 0x0213):
        assert status_info(code, N_CREATE_RSP, sop_class=IAN) == tables.GENERAL_STATUS[code]
    assert event_type_name(IAN, 1) is None and action_type_name(IAN, 1) is None


# --- Frame-level retrieve, PS3.4 Y.4 ---

@pytest.mark.parametrize("code, meaning", [
    (0xAA00, "None of the frames requested were found in the SOP Instance"),
    (0xAA01, "Unable to create new object for this SOP class"),
    (0xAA02, "Unable to extract frames"),
    (0xAA03, "Time-based request received for a non-time-based original SOP Instance"),
    (0xAA04, "Invalid request"),
])
def test_frame_level_retrieve_status(code, meaning):
    assert status_info(code, C_MOVE_RSP, sop_class=ROOT_RETRIEVE_MOVE) == ("Failure", meaning)
    assert status_info(code, C_GET_RSP, sop_class=ROOT_RETRIEVE_GET) == ("Failure", meaning)
    # Other retrieve SOP Classes, or none, answer as before.
    assert status_info(code, C_MOVE_RSP, sop_class=STUDY_ROOT_MOVE) == \
        ("Failure", f"unknown status 0x{code:04X}")
    assert status_info(code, C_MOVE_RSP) == ("Failure", f"unknown status 0x{code:04X}")


def test_frame_level_retrieve_keeps_the_move_table():
    assert status_info(0xA801, C_MOVE_RSP, sop_class=ROOT_RETRIEVE_MOVE) == \
        ("Failure", "Refused: Move destination unknown")
    assert status_info(0xC123, C_GET_RSP, sop_class=ROOT_RETRIEVE_GET) == \
        ("Failure", "Failed: Unable to process")
    assert status_info(0xB000, C_MOVE_RSP, sop_class=ROOT_RETRIEVE_MOVE)[0] == "Warning"


# --- lookup order ---

def test_status_tables_order():
    # SOP Class table first, then the command's table.
    exact, ranges = status_tables(C_MOVE_RSP, ROOT_RETRIEVE_MOVE)
    assert exact == (tables.FRAME_RETRIEVE_STATUS, tables.MOVE_STATUS)
    assert ranges == tables.MOVE_STATUS_RANGES
    assert status_tables(N_ACTION_RSP, UPS_PUSH) == ((tables.UPS_ACTION_STATUS,), ())
    assert status_tables(N_SET_RSP, FILM_BOX) == ((tables.PRINT_STATUS,), ())
    assert status_tables(C_STORE_RSP, CT_STORAGE) == status_tables(C_STORE_RSP)
    assert status_tables(None, UPS_PUSH) == ((), ())        # UPS tables are per command
    assert status_tables(None, FILM_BOX) == ((tables.PRINT_STATUS,), ())
    assert status_tables() == ((), ())


def test_fallback_order():
    # 1. the service's exact code (by SOP Class) before the general code
    assert status_info(0x0110, N_SET_RSP, sop_class=MPPS)[1] != "Processing failure"
    # ... and (by command) before the general one: C-FIND FF01
    assert status_info(0xFF01, C_FIND_RSP)[1] != tables.GENERAL_STATUS[0xFF01][1]
    # 2. the general codes of PS3.7 Annex C when the service has none
    assert status_info(0x0124, N_ACTION_RSP, sop_class=UPS_PUSH) == \
        ("Failure", "Refused: not authorized")
    # 3. the service's ranges before the shared ones
    assert status_info(0xC123, C_STORE_RSP)[1] == "Error: Cannot understand"
    assert status_info(0xC123, N_ACTION_RSP, sop_class=UPS_PUSH)[1] == \
        "Cannot understand / unable to process"
    # 4. the shared ranges, then the category by convention
    assert status_info(0xA7FF, N_SET_RSP, sop_class=FILM_BOX) == \
        ("Failure", "Refused: Out of resources")
    assert status_info(0xB3FF, N_ACTION_RSP, sop_class=UPS_PUSH) == \
        ("Warning", "unknown status 0xB3FF")
    # Unknown SOP Classes and empty values change nothing.
    for sop in ("", None, "1.2.3.4", CT_STORAGE):
        assert status_info(0xC300, N_ACTION_RSP, sop_class=sop) == status_info(0xC300, N_ACTION_RSP)


# --- the old two-argument calls ---

# Values of the table module on main before the SOP Class tables were added.
MAIN_VALUES = [
    (0x0000, C_STORE_RSP, ("Success", "Success")),
    (0xB000, C_STORE_RSP, ("Warning", "Coercion of data elements")),
    (0xB006, 0x0001, ("Warning", "Elements discarded")),
    (0xA7AB, C_STORE_RSP, ("Failure", "Refused: Out of resources")),
    (0xA923, C_STORE_RSP, ("Failure", "Error: Data set does not match SOP Class")),
    (0xC001, C_STORE_RSP, ("Failure", "Error: Cannot understand")),
    (0xA801, C_STORE_RSP, ("Failure", "unknown status 0xA801")),
    (0x0000, C_FIND_RSP, ("Success", "Matching is complete - no final identifier is supplied")),
    (0xFE00, C_FIND_RSP, ("Cancel", "Matching terminated due to Cancel request")),
    (0xC123, C_FIND_RSP, ("Failure", "Failed: Unable to process")),
    (0x0122, C_FIND_RSP, ("Failure", "Refused: SOP Class not supported")),
    (0xA801, C_MOVE_RSP, ("Failure", "Refused: Move destination unknown")),
    (0xA702, C_MOVE_RSP, ("Failure", "Refused: Out of resources - unable to perform "
                                     "sub-operations")),
    (0xB000, C_MOVE_RSP, ("Warning", "Sub-operations complete - one or more failures")),
    (0xAA00, C_MOVE_RSP, ("Failure", "unknown status 0xAA00")),
    (0xB000, C_GET_RSP, ("Warning", "Sub-operations complete - one or more failures or warnings")),
    (0xFF00, C_GET_RSP, ("Pending", "Sub-operations are continuing")),
    (0xAA04, C_GET_RSP, ("Failure", "unknown status 0xAA04")),
    (0xC300, N_ACTION_RSP, ("Failure", "Cannot understand / unable to process")),
    (0xB600, N_CREATE_RSP, ("Warning", "unknown status 0xB600")),
    (0x0110, N_SET_RSP, ("Failure", "Processing failure")),
]


@pytest.mark.parametrize("code, command, expected", MAIN_VALUES)
def test_two_argument_calls_answer_as_on_main(code, command, expected):
    assert status_info(code, command) == expected
    assert status_info(code, command, sop_class=None) == expected


def test_two_argument_calls_unchanged_for_c_services():
    for command, (table, _ranges) in tables.SERVICE_STATUS.items():
        for code, value in table.items():
            assert status_info(code, command) == value
            assert status_info(code, command | 0x8000) == value
    # A SOP Class without tables of its own answers as the command alone.
    for code in range(0x10000):
        assert status_info(code, C_STORE_RSP, sop_class=CT_STORAGE) == \
            status_info(code, C_STORE_RSP)
        assert status_info(code, C_MOVE_RSP, sop_class=STUDY_ROOT_MOVE) == \
            status_info(code, C_MOVE_RSP)


# --- categories: PS3.7 Annex C ---

def annex_c_category(code: int) -> str:
    """The Status class of a code by the ranges of PS3.7 Annex C: 0000
    Success (C.1); FF00/FF01 Pending (C.2); FE00 Cancel (C.3); 0001, Bxxx,
    0107, 0116 Warning (C.4); Axxx, Cxxx and the other 01xx/02xx Failure
    (C.5)."""
    if code == 0x0000:
        return "Success"
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return "Warning"
    if 0xFE00 <= code <= 0xFEFF:
        return "Cancel"
    if 0xFF00 <= code <= 0xFFFF:
        return "Pending"
    if 0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF or 0x0100 <= code <= 0x02FF:
        return "Failure"
    raise AssertionError(f"0x{code:04X} is in no range of PS3.7 Annex C")


#: Entries whose category departs from the ranges of Annex C, with the reason.
#: None do today.  (0116 "Attribute Value Out of Range" is kept a Warning, as in
#: PS3.7 C.4.3, although the PS3.2 Annex N templates also list it as a Failure
#: for N-CREATE of MPPS and Instance Availability Notification.)
CATEGORY_EXCEPTIONS: dict[tuple[str, int], str] = {}


def all_status_tables():
    yield "GENERAL_STATUS", tables.GENERAL_STATUS, tables.GENERAL_STATUS_RANGES
    for command, (table, ranges) in tables.SERVICE_STATUS.items():
        yield f"SERVICE_STATUS[0x{command:04X}]", table, ranges
    for (service, command), (table, ranges) in tables.SOP_CLASS_STATUS.items():
        yield f"SOP_CLASS_STATUS[{service}, {command}]", table, ranges


def test_every_entry_has_a_category_consistent_with_annex_c():
    checked = 0
    for name, table, ranges in all_status_tables():
        for code, (category, meaning) in table.items():
            assert category in CATEGORIES, (name, hex(code))
            assert meaning and isinstance(meaning, str), (name, hex(code))
            if (name, code) in CATEGORY_EXCEPTIONS:
                continue
            assert category == annex_c_category(code), (name, hex(code), category)
            assert category == status_category(code), (name, hex(code))
            checked += 1
        for lo, hi, category, meaning in ranges:
            assert lo <= hi and category in CATEGORIES and meaning
            for code in (lo, hi):
                assert category == annex_c_category(code), (name, hex(lo), hex(hi))
    assert checked > 80


def test_categories_follow_annex_c_with_any_sop_class():
    sops = (None, UPS_PUSH, FILM_BOX, MPPS, STORAGE_COMMITMENT, ROOT_RETRIEVE_MOVE)
    for code in list(range(0x0000, 0x0300)) + list(range(0xA000, 0xD000, 7)) + \
            list(range(0xFE00, 0x10000, 3)):
        for sop in sops:
            for command in (None, C_MOVE_RSP, N_ACTION_RSP, N_CREATE_RSP, N_SET_RSP):
                assert status_info(code, command, sop_class=sop)[0] == status_category(code)


def test_sop_classes_are_registered_uids():
    for uid in list(tables.SOP_CLASS_SERVICES) + list(tables.EVENT_TYPE_NAMES) + \
            list(tables.ACTION_TYPE_NAMES):
        assert uid in UID_NAMES, uid
    assert {service for (service, _c) in tables.SOP_CLASS_STATUS} <= \
        set(tables.SOP_CLASS_SERVICES.values())


# --- Event Type ID (0000,1002) and Action Type ID (0000,1008) ---

@pytest.mark.parametrize("sop, event, name", [
    (STORAGE_COMMITMENT, 1, "Storage Commitment Request Successful"),
    (STORAGE_COMMITMENT, 2, "Storage Commitment Request Complete - Failures Exist"),
    (UPS_EVENT, 1, "UPS State Report"),
    (UPS_PUSH, 2, "UPS Cancel Requested"),
    (UPS_EVENT, 3, "UPS Progress Report"),
    (UPS_EVENT, 4, "SCP Status Change"),
    (PRINTER, 1, "Normal"),
    (PRINTER, 2, "Warning"),
    (PRINTER, 3, "Failure"),
    (PRINT_JOB, 1, "Pending"),
    (PRINT_JOB, 2, "Printing"),
    (PRINT_JOB, 3, "Done"),
    (PRINT_JOB, 4, "Failure"),
    (MPPS_NOTIFICATION, 1, "Performed Procedure Step In Progress"),
    (MPPS_NOTIFICATION, 2, "Performed Procedure Step Completed"),
    (MPPS_NOTIFICATION, 3, "Performed Procedure Step Discontinued"),
    (MPPS_NOTIFICATION, 4, "Performed Procedure Step Updated"),
])
def test_event_type_names(sop, event, name):
    assert event_type_name(sop, event) == name


@pytest.mark.parametrize("sop, action, name", [
    (STORAGE_COMMITMENT, 1, "Request Storage Commitment"),
    (FILM_SESSION, 1, "Print"),
    (FILM_BOX, 1, "Print"),
    (UPS_PULL, 1, "Change UPS State"),
    (UPS_PUSH, 2, "Request UPS Cancel"),
    (UPS_WATCH, 3, "Subscribe to Receive UPS Event Reports"),
    (UPS_WATCH, 4, "Unsubscribe from Receiving UPS Event Reports"),
    (UPS_WATCH, 5, "Suspend Global Subscription"),
])
def test_action_type_names(sop, action, name):
    assert action_type_name(sop, action) == name


def test_unassigned_event_and_action_types():
    assert event_type_name(STORAGE_COMMITMENT, 3) is None
    assert event_type_name(MPPS, 1) is None               # MPPS (F.7) has no events
    assert event_type_name(FILM_BOX, 1) is None
    assert event_type_name(CT_STORAGE, 1) is None
    assert event_type_name(None, 1) is None and event_type_name(UPS_EVENT, None) is None
    assert action_type_name(STORAGE_COMMITMENT, 2) is None
    assert action_type_name(PRINTER, 1) is None
    assert action_type_name(MPPS, 1) is None
    assert action_type_name("", 1) is None and action_type_name(UPS_PUSH, 0) is None


# --- deflated transfer syntaxes, PS3.5 A.5 / Table A-1 ---

def test_deflated_transfer_syntaxes():
    assert tables.DEFLATED_TRANSFER_SYNTAXES == {
        "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"}
    assert isinstance(tables.DEFLATED_TRANSFER_SYNTAXES, frozenset)
    for uid in tables.DEFLATED_TRANSFER_SYNTAXES:
        assert "Deflate" in UID_NAMES[uid]
    assert UID_NAMES["1.2.840.10008.1.2.4.205"] == "JPIP HTJ2K Referenced Deflate"
    for uid in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.94",
                "1.2.840.10008.1.2.4.204"):
        assert uid not in tables.DEFLATED_TRANSFER_SYNTAXES
    assert "DEFLATED_TRANSFER_SYNTAXES" in tables.__all__


def test_exports():
    for name in ("status_info", "status_tables", "event_type_name", "action_type_name",
                 "failure_reason", "FAILURE_REASONS", "SOP_CLASS_SERVICES",
                 "SOP_CLASS_STATUS", "EVENT_TYPE_NAMES", "ACTION_TYPE_NAMES"):
        assert name in tables.__all__ and hasattr(tables, name)


# --- the renderers ---

def message(fields, request=None):
    msg = Message(None, 0, 1, 1, 0)
    msg.add_command(encode_command(fields))
    msg.finish_command()
    msg.request = request
    return msg


def test_summary_uses_the_sop_class_of_the_response():
    rsp = message({"AffectedSOPClassUID": UPS_PUSH, "CommandField": N_ACTION_RSP,
                   "MessageIDBeingRespondedTo": 7, "CommandDataSetType": 0x0101,
                   "Status": 0xC300, "AffectedSOPInstanceUID": "1.2.3"})
    assert render.message_summary(rsp) == \
        "N-ACTION-RSP ID=7 (The UPS may no longer be updated)"


def test_summary_uses_the_sop_class_of_the_request():
    rq = message({"RequestedSOPClassUID": UPS_PUSH, "CommandField": 0x0130,
                  "MessageID": 7, "CommandDataSetType": 0x0101,
                  "RequestedSOPInstanceUID": "1.2.3", "ActionTypeID": 1})
    rsp = message({"CommandField": N_ACTION_RSP, "MessageIDBeingRespondedTo": 7,
                   "CommandDataSetType": 0x0101, "Status": 0xC302}, request=rq)
    assert render.message_summary(rsp) == "N-ACTION-RSP ID=7 (The UPS is already IN PROGRESS)"
    alone = message({"CommandField": N_ACTION_RSP, "MessageIDBeingRespondedTo": 7,
                     "CommandDataSetType": 0x0101, "Status": 0xC302})
    assert render.message_summary(alone) == \
        "N-ACTION-RSP ID=7 (Cannot understand / unable to process)"


def test_summary_of_c_services_unchanged():
    rsp = message({"AffectedSOPClassUID": CT_STORAGE, "CommandField": C_STORE_RSP,
                   "MessageIDBeingRespondedTo": 3, "CommandDataSetType": 0x0101,
                   "Status": 0xB000, "AffectedSOPInstanceUID": "1.2.3"})
    assert render.message_summary(rsp) == "C-STORE-RSP ID=3 (Coercion of data elements)"


def test_command_elements_explain_action_and_event_types():
    rq = message({"RequestedSOPClassUID": STORAGE_COMMITMENT, "CommandField": 0x0130,
                  "MessageID": 1, "CommandDataSetType": 0x0001,
                  "RequestedSOPInstanceUID": "1.2.840.10008.1.20.1.1", "ActionTypeID": 1})
    lines = list(render._command_elements(rq))
    assert "(0000,1008) US ActionTypeID: 1 (Request Storage Commitment)" in lines
    rsp = message({"AffectedSOPClassUID": STORAGE_COMMITMENT, "CommandField": N_ACTION_RSP,
                   "MessageIDBeingRespondedTo": 1, "CommandDataSetType": 0x0101,
                   "Status": 0x0000, "ActionTypeID": 1})
    assert "(0000,1008) US ActionTypeID: 1 (Request Storage Commitment)" in \
        list(render._command_elements(rsp))
    ev = message({"AffectedSOPClassUID": STORAGE_COMMITMENT, "CommandField": 0x0100,
                  "MessageID": 2, "CommandDataSetType": 0x0001,
                  "AffectedSOPInstanceUID": "1.2.840.10008.1.20.1.1", "EventTypeID": 2})
    assert ("(0000,1002) US EventTypeID: 2 (Storage Commitment Request Complete - "
            "Failures Exist)") in list(render._command_elements(ev))
    # The response carries no SOP Class: its request's is used.
    ev_rsp = message({"CommandField": N_EVENT_REPORT_RSP, "MessageIDBeingRespondedTo": 2,
                      "CommandDataSetType": 0x0101, "Status": 0x0000, "EventTypeID": 2},
                     request=ev)
    assert ("(0000,1002) US EventTypeID: 2 (Storage Commitment Request Complete - "
            "Failures Exist)") in list(render._command_elements(ev_rsp))
    # Unassigned IDs get no explanation.
    odd = message({"AffectedSOPClassUID": STORAGE_COMMITMENT, "CommandField": 0x0100,
                   "MessageID": 3, "CommandDataSetType": 0x0101,
                   "AffectedSOPInstanceUID": "1.2.3", "EventTypeID": 9})
    assert "(0000,1002) US EventTypeID: 9" in list(render._command_elements(odd))


def test_command_elements_explain_status_by_sop_class():
    rsp = message({"AffectedSOPClassUID": FILM_SESSION, "CommandField": N_CREATE_RSP,
                   "MessageIDBeingRespondedTo": 1, "CommandDataSetType": 0x0101,
                   "Status": 0xB600, "AffectedSOPInstanceUID": "1.2.3"})
    assert "(0000,0900) US Status: 0xB600 (Memory allocation not supported)" in \
        list(render._command_elements(rsp))
