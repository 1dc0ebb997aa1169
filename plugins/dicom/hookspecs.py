"""The DICOM pack's hooks, each docstring its contract.

Added to the host through ``dicomwire_addhooks`` when the ``dicom`` plugin
is registered. Called per association, per PDU and per DIMSE message; the
objects are those of :mod:`dicomwire.plugins.dicom.model`. Every hook also
offers ``expert``, the run's :class:`dicomwire.expert.ExpertLog`: a check
reports a finding with ``expert.report(name, message, frames, stream, assoc)``
(fields come from ``dicomwire_expert_fields``).
"""

from dicomwire.hookspecs import hookspec


@hookspec
def dicomwire_association_start(assoc, expert):
    """A new association: on its A-ASSOCIATE-RQ, or on the first PDU of a
    stream whose negotiation was not captured (``assoc.negotiated`` false:
    AE titles unknown, transfer syntaxes inferred from the data)."""


@hookspec
def dicomwire_pdu(pdu, expert):
    """A PDU was read to its end (or to where the capture broke it:
    ``pdu.problems`` says). For P-DATA-TF, ``pdu.pdvs`` describes each PDV
    and the messages it completed; the PDV data itself is not kept. Called
    in capture order across all streams."""


@hookspec
def dicomwire_message(message, expert):
    """A DIMSE message is complete: its command set, and its data set if one
    followed, or it was cut short (``message.complete`` false, with the
    reason in ``message.problems``). The data set bytes are readable only
    during this call (``message.dataset_bytes()``, ``message.dataset()``):
    they are released afterwards so memory stays bounded. ``dataset()``
    raises ValueError when the transfer syntax is unknown (negotiation not
    captured and not proven by the data: ``message.encoding`` is None) or a
    deflated data set inflates past its bounds; it never decodes in a guessed
    syntax. Requests and responses are paired (``message.request``) as soon
    as the command set completes, before its PDU reaches ``dicomwire_pdu``."""


@hookspec
def dicomwire_association_end(assoc, expert):
    """The association ended (``assoc.end`` says how): "released",
    "aborted", "rejected", "closed" (its TCP stream closed without a release,
    or after an A-RELEASE-RQ without its RP: ``assoc.released``), or not
    seen to its end: ``association.CAPTURE_ENDED`` (the capture stopped with
    it open) or ``association.EVICTED`` (dropped from the flow table,
    tcp.max_flows). Its requests still waiting for a response are in
    ``assoc.pending``: a fault only when the association really ended."""
