"""hypothesis strategies over the generators and mutators: the same code as
:mod:`.generate` and :mod:`.mutate`, its decisions drawn through
:class:`~.choices.DrawChoices`, so what they produce shrinks.

hypothesis is optional: it is imported when a strategy is asked for, never
when this module is.  Apart because it is the one place that knows about
hypothesis (besides :class:`~.choices.DrawChoices`).
"""

from __future__ import annotations

from typing import Sequence

from .choices import DrawChoices, hypothesis_strategies
from .generate import ae_title, associate_rq, association, uid, valid_pdu
from .mutate import MUTATORS


def _composite(build):
    st = hypothesis_strategies()

    @st.composite
    def strategy(draw):
        return build(DrawChoices(draw))
    return strategy()


def ae_titles():
    """Strategy: valid AE titles (str)."""
    return _composite(ae_title)


def uids():
    """Strategy: valid UIDs (str)."""
    return _composite(uid)


def associate_rqs():
    """Strategy: valid A-ASSOCIATE-RQ PDUs (bytes)."""
    return _composite(associate_rq)


def pdata_pdus():
    """Strategy: valid P-DATA-TF PDUs (bytes) carrying a C-ECHO-RQ or a
    C-STORE-RQ with its data set."""
    def build(c):
        pdu = valid_pdu(c)
        while pdu[0] != 4:
            pdu = valid_pdu(c)
        return pdu
    return _composite(build)


def associations():
    """Strategy: a requestor's whole valid association, as a list of PDUs
    (see :func:`association`)."""
    return _composite(association)


def valid_pdus():
    """Strategy: any valid PDU (bytes)."""
    return _composite(valid_pdu)


def mutated_pdus(kinds: Sequence[str] | None = None):
    """Strategy: ``(original, Mutation)`` pairs: a valid PDU and one mutation
    of a kind from ``kinds`` (default: every kind of :data:`MUTATORS`)."""
    names = list(kinds) if kinds else sorted(MUTATORS)

    def build(c):
        kind = c.choice(names)
        while True:
            pdu = valid_pdu(c)
            m = MUTATORS[kind](c, pdu)
            if m is not None and m.data != pdu:
                return pdu, m
    return _composite(build)
