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
    they are released afterwards so memory stays bounded."""


@hookspec
def dicomwire_association_end(assoc, expert):
    """The association ended: released, aborted, rejected, or its TCP stream
    closed (``assoc.end`` says which). Its requests still waiting for a
    response are in ``assoc.pending``."""
