"""Fuzz cases: numbered, reproducible from the seed; each a list of steps
building valid or mutated PDUs from the spec pack (:data:`KINDS`)."""

from __future__ import annotations

import dataclasses
import random
from typing import Callable

from dicomwire.specs.dicom import fuzz as sf
from dicomwire.specs.dicom import pdu as P
from dicomwire.specs.dicom.fuzz import MUTATORS, Choices, Mutation, RandomChoices
from dicomwire.plugins.dicom.fuzzpeer.peer import Options

# Cases
# ===========================================================================


@dataclasses.dataclass
class Session:
    """What a case knows while it runs: the contexts it proposed and what
    the peer accepted, the peer's maximum PDU length."""
    proposed: dict = dataclasses.field(default_factory=dict)       # id -> abstract syntax
    accepted: dict = dataclasses.field(default_factory=dict)       # id -> transfer syntax
    max_pdu: int = 16384
    associated: bool = False
    message_id: int = 0

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id

    def context(self, abstract: str | None = None) -> int:
        for cid, sop in self.proposed.items():
            if cid in self.accepted and (abstract is None or sop == abstract):
                return cid
        return 1


@dataclasses.dataclass
class Step:
    label: str
    build: Callable                  # Session -> (list of PDU bytes, note)
    expect: bool = True              # wait for an answer
    needs_association: bool = False  # only once the peer accepted
    chunk: int = 0                   # >0: send in pieces of this many bytes


@dataclasses.dataclass
class Case:
    index: int
    kind: str
    steps: list


def fixed(pdus, note=""):
    return lambda s: (list(pdus), note)


def _one(c: Choices, mutator, pdu: bytes):
    """A one-PDU step's output: the PDU, or its mutation and what changed."""
    if mutator is None:
        return [pdu], ""
    m = mutator(c, pdu)
    return [m.data], m.note


def _named(name: str, mutator) -> str:
    return name + (" (mutated)" if mutator else "")


def _rq_step(c: Choices, opts, mutator=None, chunk=0) -> Step:
    contexts = sf.presentation_contexts(c)
    fields = sf.associate_rq_fields(c, called=opts.called, calling=opts.calling,
                                    contexts=contexts)
    rq = P.build_pdu("A-ASSOCIATE-RQ", **fields)

    def build(s: Session):
        s.proposed = {cid: sop for cid, sop, _ts in contexts}
        return _one(c, mutator, rq)
    return Step(_named("A-ASSOCIATE-RQ", mutator), build, chunk=chunk)


def _echo_step(c: Choices, mutator=None, chunk=0) -> Step:
    def build(s: Session):
        return _one(c, mutator, sf.pdata((s.context(sf.VERIFICATION), 3,
                                          sf.echo_rq(s.next_id()))))
    return Step(_named("C-ECHO-RQ", mutator), build, needs_association=True, chunk=chunk)


def _store_step(c: Choices, mutator=None) -> Step:
    def build(s: Session):
        cid = next((k for k in s.accepted if s.accepted[k] == sf.IMPLICIT_LE
                    and s.proposed.get(k) in sf.STORAGE_CLASSES), None)
        if cid is None:          # no storage context in Implicit VR LE: echo instead
            return [sf.pdata((s.context(sf.VERIFICATION), 3, sf.echo_rq(s.next_id())))], \
                "no storage context accepted in Implicit VR LE: C-ECHO instead"
        inst = sf.uid(c)
        pdus = sf.message(cid, sf.store_rq(s.next_id(), s.proposed[cid], inst),
                          sf.dataset(c, s.proposed[cid], inst), s.max_pdu or 16384)
        if mutator is None:
            return pdus, ""
        k = c.integer(0, len(pdus) - 1)
        m = mutator(c, pdus[k])
        pdus[k] = m.data
        return pdus, f"PDU {k + 1} of {len(pdus)}: {m.note}"
    return Step(_named("C-STORE-RQ", mutator), build, needs_association=True)


def _release_step(c: Choices, mutator=None, chunk=0) -> Step:
    def build(s: Session):
        return _one(c, mutator, sf.release_rq())
    return Step(_named("A-RELEASE-RQ", mutator), build, needs_association=True, chunk=chunk)


def _only(kind):
    def apply(c, data):
        m = MUTATORS[kind](c, data)
        # A PDU without a field of this kind goes out unchanged, and says so.
        return m if m is not None else Mutation(kind, data, "nothing to mutate: sent as is")
    return apply


#: Kinds that find a field in an A-RELEASE-RQ (no integers, no PDVs there).
_RELEASE_KINDS = ("length_off_by_one", "length_overrun", "length_underrun",
                  "unknown_pdu_type", "reserved_nonzero", "truncated")


def _generic(kind: str, c: Choices, opts) -> list[Step]:
    """A mutation of one PDU of an otherwise valid association: the
    A-ASSOCIATE-RQ, a P-DATA-TF (C-ECHO or C-STORE) or the A-RELEASE-RQ."""
    mut = _only(kind)
    assoc_only = kind in ("uid_value", "ae_title_value", "unknown_item", "item_structure")
    where = "rq" if assoc_only else c.choice(
        ("data",) if kind == "pdv_flags" else
        ("rq", "rq", "data", "data", "release") if kind in _RELEASE_KINDS else
        ("rq", "data"))
    steps = [_rq_step(c, opts, mut if where == "rq" else None)]
    if where == "data":
        steps.append(_store_step(c, mut) if c.boolean() else _echo_step(c, mut))
    steps.append(_echo_step(c))
    steps.append(_release_step(c, mut if where == "release" else None))
    return steps


def _valid(c, opts):
    steps = [_rq_step(c, opts), _echo_step(c)]
    if c.boolean():
        steps.append(_store_step(c))
    return steps + [_release_step(c)]


def _dribble(c, opts):
    n = c.integer(1, 7)
    return [_rq_step(c, opts, chunk=n), _echo_step(c, chunk=n), _release_step(c, chunk=n)]


def _out_of_order(c, opts):
    def build(s: Session):
        cid = s.context()
        data = None
        if c.boolean():
            inst = sf.uid(c)
            sop = s.proposed.get(cid, sf.STORAGE_CLASSES[0])
            data = sf.dataset(c, sop, inst, pixels=c.integer(0, 512))
            cmd = sf.store_rq(s.next_id(), sop, inst)
        else:
            cmd = sf.echo_rq(s.next_id())
        return sf.fragments_out_of_order(c, cid, cmd, data)
    return [_rq_step(c, opts), Step("P-DATA-TF (fragments out of order)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _oversize(c, opts):
    def build(s: Session):
        cid = next((k for k, sop in s.proposed.items()
                    if k in s.accepted and sop in sf.STORAGE_CLASSES), s.context())
        return sf.oversize_pdata(c, cid, s.max_pdu, s.next_id())
    return [_rq_step(c, opts), Step("P-DATA-TF (beyond the maximum length)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _command(c, opts):
    def build(s: Session):
        cmd, note = sf.command_set(c, sf.echo_rq(s.next_id()))
        return [sf.pdata((s.context(sf.VERIFICATION), 3, cmd))], note
    return [_rq_step(c, opts), Step("C-ECHO-RQ (command set mutated)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _pdu_order(c, opts):
    """PDUs the state machine of PS3.8 9.2 does not expect where they come."""
    variant = c.choice(("pdata_first", "release_first", "rp_first", "ac_from_client",
                        "rj_from_client", "rq_twice", "pdata_after_release",
                        "abort_odd", "rp_instead_of_rq", "abort_then_data"))
    note = variant.replace("_", " ")
    echo = sf.pdata((1, 3, sf.echo_rq(1)))
    first = {"pdata_first": echo, "release_first": sf.release_rq(),
             "rp_first": P.build_pdu("A-RELEASE-RP"),
             "ac_from_client": sf.associate_ac(c),
             "rj_from_client": P.build_pdu("A-ASSOCIATE-RJ", result=1, source=1, reason=1)}
    if variant in first:
        return [Step("first PDU", fixed([first[variant]], note))]
    steps = [_rq_step(c, opts)]
    if variant == "rq_twice":
        steps.append(Step("A-ASSOCIATE-RQ again", fixed(
            [sf.associate_rq(c, called=opts.called, calling=opts.calling)], note),
            needs_association=True))
    elif variant == "pdata_after_release":
        steps += [_release_step(c), Step("C-ECHO-RQ after release", fixed([echo], note))]
    elif variant == "abort_odd":
        steps.append(Step("A-ABORT (odd source/reason)", fixed(
            [sf.abort(c.choice((1, 3, 0xFF)), c.choice((3, 7, 0xFF)))], note),
            needs_association=True))
    elif variant == "rp_instead_of_rq":
        steps += [_echo_step(c), Step("A-RELEASE-RP from the requestor", fixed(
            [P.build_pdu("A-RELEASE-RP")], note), needs_association=True)]
    else:
        steps.append(Step("A-ABORT then C-ECHO-RQ", fixed([sf.abort(), echo], note),
                          needs_association=True))
    return steps


def _garbage(c, opts):
    variant = c.choice(("random", "random_after_rq", "http", "tls", "zeros"))
    blob = {"random": c.binary(c.integer(1, 2000)),
            "random_after_rq": c.binary(c.integer(1, 2000)),
            "http": b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n",
            "tls": bytes.fromhex("16030100a5010000a10303") + c.binary(64),
            "zeros": bytes(c.integer(6, 4096))}[variant]
    note = f"{variant.replace('_', ' ')} ({len(blob)} bytes)"
    step = Step("non-DICOM bytes", fixed([blob], note),
                needs_association=variant == "random_after_rq")
    return ([_rq_step(c, opts)] if variant == "random_after_rq" else []) + [step]


def _short_send(c, opts):
    """A PDU whose header promises more than is sent; the connection is then
    left open for the timeout, then closed (the peer must cope with EOF)."""
    def build(s: Session):
        pdu = sf.pdata((s.context(), 3, sf.echo_rq(s.next_id())))
        k = c.integer(1, len(pdu) - 1)
        return [pdu[:k]], f"{k} of {len(pdu)} bytes of a P-DATA-TF"
    if c.boolean():
        rq = sf.associate_rq(c, called=opts.called, calling=opts.calling)
        k = c.integer(1, len(rq) - 1)
        return [Step("A-ASSOCIATE-RQ (cut short)",
                     fixed([rq[:k]], f"{k} of {len(rq)} bytes of an A-ASSOCIATE-RQ"))]
    return [_rq_step(c, opts), Step("P-DATA-TF (cut short)", build, needs_association=True)]


#: Campaign kinds: name -> (builder of the case's steps, description).
KINDS: dict[str, tuple[Callable, str]] = {
    "valid": (_valid, "A valid association: C-ECHO, sometimes a C-STORE, release."),
    "dribble": (_dribble, "A valid association sent 1 to 7 bytes per TCP segment."),
    **{k: ((lambda k: lambda c, o: _generic(k, c, o))(k),
           (f.__doc__ or k).strip().split("\n\n")[0].replace("\n    ", " "))
       for k, f in MUTATORS.items()},
    "fragments_out_of_order": (_out_of_order, "PDV fragments of a message out of order, "
                                              "missing or duplicated (PS3.8 E.2)."),
    "oversize_pdu": (_oversize, "A P-DATA-TF longer than the peer's negotiated maximum "
                                "(PS3.8 D.1)."),
    "command_set": (_command, "A C-ECHO-RQ command set with broken elements (PS3.7 E.1)."),
    "pdu_order": (_pdu_order, "PDUs where the state machine does not expect them "
                              "(PS3.8 9.2)."),
    "garbage": (_garbage, "Bytes that are not DICOM (random, HTTP, TLS, zeros)."),
    "short_send": (_short_send, "A PDU cut short, the connection held open until "
                                "the timeout."),
}


def make_case(index: int, kind: str, seed: int, opts: "Options") -> Case:
    """Case ``index`` of a campaign: its decisions depend only on the seed,
    the index (and what the peer answers), so one case can be rerun alone
    (``--case``)."""
    return Case(index, kind, KINDS[kind][0](RandomChoices(f"{seed}:{index}"), opts))


def kind_order(seed: int, kinds: list[str], count: int) -> list[str]:
    """Every kind in turn, each round shuffled: any count covers the kinds
    evenly."""
    rng = random.Random(f"{seed}:kinds")
    out = []
    while len(out) < count:
        out += rng.sample(kinds, len(kinds))
    return out[:count]


# ===========================================================================
