"""What each capture of the corpus shows, and what dicomwire must say about it.

One entry per ``captures/NAME.pcap`` (made by ``make_corpus.py``; the
goldens by ``make_golden.py``).  ``tests/test_corpus.py`` turns every entry
into tests:

- ``clean``: the traffic has no fault, so dicomwire must report no finding
  of severity warn or error ("clean traffic raises no warning", issue 13).
  On every capture, clean or not, warn/error findings other than ``expect``
  and ``tolerate`` fail the suite.
- ``expect``: expert names that must be reported (the fault the capture
  holds); ``tolerate``: warn/error names that are true but secondary (a
  failure status named twice) and may appear.
- ``defects``: the issue-13 defect numbers whose scenario the capture holds.

What dicomwire gets wrong today is listed, each item with the defect number
(or, for what the issue's "Missing meaning" asks, a few words), so the suite passes now and each
test turns into a failure (strict xfail: XPASS) the day the fix lands: whoever
fixes defect N deletes the lines that name N (a defect seen on many captures
has one shared line: ``MPPS_FILE``, ``SCOMMIT_FILE``;
empty it), and regenerates the goldens.

- ``known_false``: name -> defect: a false finding reported today above chat
  (a false finding may stay, at most, as chat-level context).
- ``missing``: name -> defect: an ``expect`` name not reported today.  Names
  of findings that do not exist yet are proposals: the fix that adds the
  finding renames them here if it chooses another name.
- ``wrong_text`` / ``missing_text``: (output, text) -> defect: text that is in
  today's output and must go, or that must be in it and is not; output is
  ``show``, ``show-V``, ``expert`` or ``export-list`` (the golden files).
- ``unpaired``: defect: some response has no ``dicom.rsp.time`` today.
- ``frame_time``: defect: some line of ``show`` gives a frame number with the
  time of another frame today.

``ports``: the TCP ports of the DICOM servers in the capture (dicomwire's
defaults, 104 and 11112, except where the heuristic is what is tested);
``options``: extra dicomwire options for every output of the capture (none
needs any today: no ``--ports``, so the default ports and the heuristic are
what finds the traffic).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capture:
    describe: str
    clean: bool
    defects: tuple = ()
    ports: tuple = (11112,)
    options: tuple = ()
    expect: tuple = ()
    tolerate: tuple = ()
    known_false: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    wrong_text: dict = field(default_factory=dict)
    missing_text: dict = field(default_factory=dict)
    unpaired: int | None = None
    frame_time: int | None = None


# Export named non-storage objects after their command's SOP Instance UID (defect 6,
# fixed: emptied)
MPPS_FILE: dict = {}
SCOMMIT_FILE: dict = {}

MANIFEST: dict[str, Capture] = {
    # ------------------------------------------------------------------ clean
    "echo": Capture(
        "DCMTK echoscu -> pynetdicom SCP: C-ECHO, release",
        clean=True, defects=(8, 11),
    ),
    "store_dcmtk_multi_ts": Capture(
        "DCMTK storescu -R -xy (JPEG Baseline and uncompressed contexts for each SOP class) -> "
        "DCMTK storescp accepting the uncompressed one per class; CT and SC stores succeed",
        clean=True, defects=(4, 8, 11),
    ),
    "store_jpeg": Capture(
        "DCMTK storescu -> storescp +xa: one SC image in JPEG Baseline (made by dcmcjpeg)",
        clean=True, defects=(8, 11),
    ),
    "store_dcmtk_default_proposals": Capture(
        "DCMTK storescu with its default proposals (128 contexts) -> pynetdicom SCP supporting "
        "CT Image Storage only: the rest rejected (a note, not a warning: the association went "
        "on), the CT store succeeds",
        clean=True, defects=(4,),
    ),
    "store_rle": Capture(
        "pynetdicom SCU -> DCMTK storescp +xa: one single-frame SC image in RLE Lossless "
        "(made by dcmcrle)",
        clean=True, defects=(8, 10),
    ),
    "store_j2k": Capture(
        "DCMTK storescu -xv -> storescp +xa: one SC image in JPEG 2000 Lossless "
        "(codestream by OpenJPEG opj_compress)",
        clean=True, defects=(8, 10, 11),
    ),
    "store_deflated": Capture(
        "DCMTK storescu -xd -> pynetdicom SCP: one CT image in Deflated Explicit VR Little "
        "Endian (made by dcmconv +td)",
        clean=True, defects=(8, 11),
    ),
    "store_deflated_large": Capture(
        "DCMTK storescu -xd -> pynetdicom SCP: a 256x256 CT of noise (~100 KB deflated, "
        "seven PDUs) and the small CT, both Deflated Explicit VR Little Endian, one "
        "association",
        clean=True,
    ),
    "find_study": Capture(
        "DCMTK findscu -S -> pynetdicom SCP: Study Root C-FIND, four Pending responses with "
        "identifiers, then Success",
        clean=True, defects=(5, 8, 11),
    ),
    "mwl_find": Capture(
        "DCMTK findscu -W -> pynetdicom Modality Worklist SCP: two scheduled procedure steps, "
        "then Success",
        clean=True, defects=(5, 8, 11),
    ),
    "find_cancel": Capture(
        "pynetdicom SCU -> pynetdicom SCP: Study Root C-FIND, C-CANCEL after the first Pending "
        "response, the SCP answers FE00 (Cancel)",
        clean=True, defects=(5, 7),
    ),
    "move_with_callback": Capture(
        "DCMTK movescu -> pynetdicom Q/R SCP (C-MOVE to DEST_SCP), which opens the callback "
        "association to DCMTK storescp on port 104 and C-STOREs two images; Pending, Success",
        clean=True, defects=(8, 11), ports=(11112, 104),
    ),
    "get_with_subops": Capture(
        "pynetdicom SCU -> DCMTK dcmqrscp: Study Root C-GET, two C-STORE sub-operations on the "
        "same association (CT and SC storage proposed with the SCP role, accepted), Pending, "
        "Success",
        clean=True, defects=(8,),
    ),
    "mpps": Capture(
        "pynetdicom modality -> pynetdicom RIS: MPPS N-CREATE (IN PROGRESS), N-SET to "
        "COMPLETED (data set starts with group 0040); both responses carry a data set",
        clean=True, defects=(5, 6),
        wrong_text={**MPPS_FILE},
    ),
    "storage_commitment": Capture(
        "pynetdicom modality -> pynetdicom archive: Storage Commitment N-ACTION for two "
        "instances, N-EVENT-REPORT type 1 (all committed) on the same association (SCP role "
        "for 1.2.840.10008.1.20.1 negotiated), release",
        clean=True, defects=(6,),
        wrong_text={**SCOMMIT_FILE},
    ),
    "split_header_other_port": Capture(
        "echo rewritten by make_corpus.py: server port 4242 (not in the default --ports) and "
        "the A-ASSOCIATE-RQ's 6-byte PDU header in a TCP segment of its own",
        clean=True, defects=(9,), ports=(4242,),
    ),
    "async_window": Capture(
        "pynetdicom SCU proposing an asynchronous operations window 4/4, pynetdicom SCP "
        "answering 1/1; two C-ECHOs one after the other",
        clean=True,
    ),
    # ------------------------------------------------------------ faulty
    "reject_called_ae": Capture(
        "DCMTK echoscu calling WRONG_AE -> pynetdicom SCP PACS: A-ASSOCIATE-RJ, called AE "
        "title not recognised",
        clean=False, defects=(11,),
        expect=("dicom.assoc.reject",),
    ),
    "abort": Capture(
        "pynetdicom SCU -> DCMTK storescp: C-ECHO, then A-ABORT instead of a release",
        clean=False, defects=(8,),
        expect=("dicom.assoc.abort",),
    ),
    "move_unknown_destination": Capture(
        "DCMTK movescu -> pynetdicom Q/R SCP, move destination NOWHERE unknown to the SCP: "
        "C-MOVE-RSP A801, no callback association",
        clean=False, defects=(8, 11),
        expect=("dicom.move.destination_unknown",), tolerate=("dicom.status_msg",),
    ),
    "mpps_refused": Capture(
        "pynetdicom modality -> pynetdicom RIS: MPPS N-CREATE answered 0110 (Processing "
        "failure, Error Comment 'RIS database unavailable'); no N-SET",
        clean=False, defects=(6,),
        expect=("dicom.mpps.refused",), tolerate=("dicom.status_msg",),
        wrong_text={**MPPS_FILE},
    ),
    "storage_commitment_failure": Capture(
        "pynetdicom modality -> pynetdicom archive: Storage Commitment N-ACTION, "
        "N-EVENT-REPORT type 2: one instance committed, one in the Failed SOP Sequence with "
        "Failure Reason 0112 (No such object instance)",
        clean=False, defects=(6,),
        expect=("dicom.stgcmt.failed",),
        wrong_text={**SCOMMIT_FILE},
    ),
    "storage_commitment_no_report": Capture(
        "pynetdicom modality -> pynetdicom archive: Storage Commitment N-ACTION answered, then "
        "release before any N-EVENT-REPORT (the report would come on a later association)",
        clean=False, defects=(6,),
        expect=("dicom.stgcmt.no_report",),
        wrong_text={**SCOMMIT_FILE},
    ),
    "async_window_exceeded": Capture(
        "pynetdicom SCU without asynchronous operations window negotiation (window 1) sends "
        "two C-ECHO-RQs before the first answer; pynetdicom SCP answers both",
        clean=False,
        expect=("dicom.dimse.async_exceeded",),
    ),
    # ---------------------------------------------------- partial captures
    "cut_end_open": Capture(
        "find_study cut after the second Pending response's identifier: the capture ends "
        "while the association is open and the C-FIND is still running",
        clean=False, defects=(2, 8, 11),
        expect=("dicom.capture.partial",),
    ),
    "cut_start_mpps": Capture(
        "mpps from the N-SET-RQ on (no handshake, no A-ASSOCIATE, no N-CREATE): the transfer "
        "syntax of the N-SET data set (explicit VR LE, first group 0040) must be inferred",
        clean=False, defects=(1, 5, 6),
        wrong_text={**MPPS_FILE},
    ),
}
