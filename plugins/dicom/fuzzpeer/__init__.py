"""The DICOM peer fuzzer (``dicomwire fuzz``): association-level fuzzing of
a DICOM SCP, and the spec-driven fuzzing library (re-exported from
:mod:`dicomwire.specs.dicom.fuzz`: generators, field-aware mutators,
hypothesis strategies). Import it as
``from dicomwire.plugins.dicom import fuzzpeer as fuzz``.

A campaign runs numbered cases against one peer.  Each case opens a TCP
connection, sends its PDUs (an A-ASSOCIATE-RQ, possibly mutated, then
P-DATA-TF / release PDUs, possibly mutated or out of order), reads what comes
back with timeouts and closes.  Then a *probe* (a valid association for
Verification, a C-ECHO, a release, built with the spec pack) tells whether
the peer still serves.  Each case gets a verdict:

=========  ==============================================================
ok         answered as valid traffic is answered; probe passed
rejected   refused the case: A-ASSOCIATE-RJ, A-ABORT or close; probe passed
silent     no answer within the timeout, connection kept open (a peer
           waiting for bytes a broken length promised); probe passed
reset      the peer reset the connection (RST) during the case; probe passed
malformed  the peer answered with a PDU that does not parse (PS3.8 9.3)
hang       the probe got no answer in time: the peer stopped serving
dead       the probe was refused: nothing listens any more (crash)
unhealthy  the probe failed otherwise (rejected, aborted, C-ECHO failed)
=========  ==============================================================

:data:`FAILING` verdicts are written as pcapng files (the case's exchange and
the probe's, TCP/IP frames synthesised on the real addresses and ports),
which ``dicomwire show`` and Wireshark decode and ``--replay`` resends.

Safety: only loopback targets unless ``allow_remote``; every socket
operation has a timeout; campaigns are bounded in cases and time.

Modules: :mod:`.peer` (targets, connections, what the peer said),
:mod:`.cases` (the case kinds), :mod:`.probe` (running a case, the probe,
the verdict), :mod:`.files` (case files as pcapng, replay),
:mod:`.campaign` (the campaign, its report and summary).
"""

from dicomwire.pcapng_writer import internet_checksum  # noqa: F401  (the library API)
from dicomwire.plugins.dicom.fuzzpeer.campaign import (  # noqa: F401
    format_report,
    progress_printer,
    Report,
    run_campaign,
    save_case,
    write_summary,
)
from dicomwire.plugins.dicom.fuzzpeer.cases import (  # noqa: F401
    KINDS,
    Case,
    fixed,
    kind_order,
    make_case,
    Session,
    Step,
)
from dicomwire.plugins.dicom.fuzzpeer.files import (  # noqa: F401
    MSS,
    client_script,
    exchange_frames,
    replay,
    write_pcapng,
)
from dicomwire.plugins.dicom.fuzzpeer.peer import (  # noqa: F401
    FAILING,
    VERDICT_MEANING,
    VERDICTS,
    Conn,
    describe,
    Event,
    Exchange,
    is_loopback,
    Options,
    PeerDown,
    resolve_target,
    Target,
    TargetError,
)
from dicomwire.plugins.dicom.fuzzpeer.probe import (  # noqa: F401
    CaseResult,
    probe,
    Probe,
    probe_with_retry,
    run_steps,
    verdict,
    wait_recovery,
)
from dicomwire.specs.dicom.fuzz import (  # noqa: F401  (the library API, re-exported)
    MUTATORS,
    Choices,
    DrawChoices,
    Field,
    Mutation,
    RandomChoices,
    ae_titles,
    associate_rqs,
    associations,
    command_set,
    field_map,
    fragments_out_of_order,
    mutate,
    mutated_pdus,
    oversize_pdata,
    patch,
    pdata_pdus,
    resize,
    uids,
    valid_pdus,
)
