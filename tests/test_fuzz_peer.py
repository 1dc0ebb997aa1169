"""Spec-driven fuzzing (issue 8): the mutators of ``dicomwire.specs.dicom.fuzz``
and the ``dicomwire fuzz`` campaign.

Unit part: every mutation kind produces bytes that our own parser
(``parse_pdu``) or dissector (the pipeline, fed the pcapng the fuzzer
writes) flags the way the kind says; the hypothesis strategies generate
PDUs that round-trip; field maps locate every field.

Peer part, on loopback only: campaigns of a few hundred cases against
pynetdicom's SCP (in-process) and DCMTK's storescp (restarted when it dies),
every failing case written as a pcapng that our pipeline and tshark decode,
``--replay`` of a case file, and the rule that a target outside loopback is
refused before any packet is sent.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings

import peers
from dicomwire.plugins.dicom import fuzzpeer as F
from dicomwire.specs.dicom import fuzz as sf
from dicomwire.specs.dicom import pdu as P
from dicomwire.specs.dicom.command import decode_command
from dicomwire.specs.dicom.tables import ITEM_TYPES, PDU_TYPES
from support import Recorder, dw, record

SEEDS = range(30)
HYP = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


# --------------------------------------------------------------------------
# Our own dissector on what the fuzzer writes
# --------------------------------------------------------------------------


Dissected = collections.namedtuple("Dissected", "experts pdu_problems messages pdus errors")


def dissect(exchanges, tmp_path, name="x.pcapng", ports="11112", allow_errors=False):
    """Write ``exchanges`` with the fuzzer's pcapng writer and decode the file
    with the pipeline."""
    path = tmp_path / name
    F.write_pcapng(str(path), exchanges)
    return decode_file(path, ports, allow_errors)


def decode_file(path, ports="11112", allow_errors=False):
    col = Recorder(pdu=lambda p: (p.direction, p.type, list(p.problems)),
                   message=lambda m: (m.name, m.complete, list(m.problems)))
    res = record(path, col, allow_errors=allow_errors,
                 preferences={"dicom.tcp.port": str(ports)})
    return Dissected({i.field.name for i in res.expert.infos},
                     [x for _d, _t, problems in col.pdus for x in problems],
                     col.messages, [(d, t) for d, t, _p in col.pdus], col.errors)


# Found by these tests (reported, not ours to fix here): a command set whose
# Command Field holds two values makes Message.is_response compute
# ``list & 0x8000`` (plugins/dicom/model.py); the host catches the TypeError
# and the dissector loses the rest of the stream.
MULTIVALUED_COMMAND_FIELD_BUG = "TypeError: unsupported operand type(s) for &: 'list'"


def _known_bug(errors) -> bool:
    # Fixed (specs/dicom/command.py keeps one value): no error is tolerated any more.
    return False


def exchange(*segments):
    """An exchange of ``(side, bytes)`` in wire order, 127.0.0.1:40000 ->
    127.0.0.1:11112."""
    ex = F.Exchange("test", client=("127.0.0.1", 40000), server=("127.0.0.1", 11112))
    ex.add(0, "syn")
    for side, data in segments:
        ex.add(side, "data", data)
    ex.add(0, "fin")
    return ex


def flagged(d: Dissected) -> bool:
    """Did the dissector report anything wrong with the client's traffic?"""
    bad_msgs = [m for m in d.messages if m[2] or not m[1]]
    return bool(d.pdu_problems or bad_msgs
                or d.experts & {"dicom.pdu.malformed", "dicom.assoc.item.len.invalid",
                                "dicom.pdu_length.invalid", "dicom.pdv.len.invalid",
                                "dicom.pdv.flags.invalid", "dicom.message.incomplete"})


def structure(data: bytes):
    return [(f.path, f.kind) for f in sf.field_map(data)]


# --------------------------------------------------------------------------
# Field maps and strategies
# --------------------------------------------------------------------------


@HYP
@given(sf.valid_pdus())
def test_field_map_locates_every_field_of_valid_pdus(data):
    assert P.build(P.PDU, P.parse_pdu(data)) == data
    fields = sf.field_map(data)
    assert fields and fields[0].path == ("pdu_type",)
    for f in fields:
        raw = data[f.offset:f.offset + f.size]
        if f.fmt:
            assert struct.unpack(f.fmt, raw)[0] == f.value, f.where
        elif f.kind in ("ae_title", "text"):
            assert raw == f.value.encode("latin-1"), f.where
        if f.kind == "length":
            lo, hi = f.governs()
            assert hi <= f.bound <= len(data), f.where


@HYP
@given(sf.associate_rqs())
def test_generated_associate_rqs_are_valid(data):
    pdu = P.parse_pdu(data)
    assert pdu.pdu_type == 1
    types = [it.item_type for it in pdu.body.variable_items]
    assert types[0] == 0x10 and types[-1] == 0x50 and set(types[1:-1]) == {0x20}
    ids = [it.body.context_id for it in pdu.body.variable_items if it.item_type == 0x20]
    assert len(set(ids)) == len(ids) and all(i % 2 for i in ids)
    for name in ("called_ae_title", "calling_ae_title"):
        assert P.strip_ae(getattr(pdu.body, name))


@settings(HYP, max_examples=15)
@given(F.associations())
def test_generated_associations_decode_cleanly(pdus):
    rq = P.parse_pdu(pdus[0])
    assert rq.pdu_type == 1 and P.parse_pdu(pdus[-1]).pdu_type == 5
    maxlen = [s.body.max_length for it in rq.body.variable_items if it.item_type == 0x50
              for s in it.body.sub_items if s.item_type == 0x51][0]
    assert all(maxlen == 0 or len(p) - 6 <= maxlen for p in pdus[1:-1])
    contexts = [it.body.context_id for it in rq.body.variable_items if it.item_type == 0x20]
    ac = P.build_pdu("A-ASSOCIATE-AC", called_ae_title="SCP", calling_ae_title="SCU",
                     variable_items=[P.item(0x10, sf.APPLICATION_CONTEXT), *[
                         P.item(0x21, context_id=c, result=0,
                                sub_items=[P.item(0x40, sf.IMPLICIT_LE)]) for c in contexts],
                         P.item(0x50, sub_items=[P.item(0x51, max_length=0)])])
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        d = dissect([exchange((0, pdus[0]), (1, ac), *[(0, p) for p in pdus[1:]])], Path(tmp))
    assert not d.pdu_problems
    names = [m[0] for m in d.messages]
    assert names == ["C-ECHO-RQ"] + ["C-STORE-RQ"] * (len(contexts) - 1)
    assert all(m[1] and not m[2] for m in d.messages), d.messages


@HYP
@given(sf.mutated_pdus())
def test_every_mutation_changes_the_bytes_and_says_what(pair):
    original, m = pair
    assert m.data != original and m.kind in sf.MUTATORS and m.note


def test_resize_recomputes_every_enclosing_length():
    c = sf.RandomChoices(4)
    rq = sf.associate_rq(c)
    fields = sf.field_map(rq)
    ts = [f for f in fields if f.kind == "text" and "sub_items" in f.path][0]
    new = b"1.2." + b"9" * 5000
    out, notes = sf.resize(rq, fields, ts, new)
    assert not notes
    pdu = P.parse_pdu(out)                     # every length follows
    node = pdu
    for p in ts.path:
        node = node[p]
    assert node == new.decode()
    # Deliberately wrong: the same change with the lengths left alone.
    bad, _ = sf.resize(rq, fields, ts, new, fix_lengths=False)
    with pytest.raises(P.SpecError):
        P.parse_pdu(bad)


# --------------------------------------------------------------------------
# Each mutation kind, flagged by our parser or dissector
# --------------------------------------------------------------------------


def _mutate_until(kind, seed, pdu_types=None):
    """A valid PDU (of ``pdu_types``) and its mutation of ``kind``."""
    c = sf.RandomChoices(f"{kind}:{seed}")
    while True:
        pdu = sf.valid_pdu(c)
        if pdu_types and pdu[0] not in pdu_types:
            continue
        m = sf.MUTATORS[kind](c, pdu)
        if m is not None and m.data != pdu:
            return pdu, m


@pytest.mark.parametrize("kind", ["length_off_by_one", "length_overrun", "length_underrun"])
def test_length_mutations_break_the_framing(kind, tmp_path):
    for seed in SEEDS:
        pdu, m = _mutate_until(kind, seed)
        try:
            P.parse_pdu(m.data)
        except P.SpecError:
            # The dissector sees it too (association PDUs are parsed whole;
            # P-DATA-TF framing is checked PDV by PDV).
            d = dissect([exchange((0, m.data))], tmp_path)
            assert flagged(d), (m.note, d)
            continue
        # It parses: then the fields are no longer where they were.
        assert structure(m.data) != structure(pdu), m.note


def test_pdu_length_mutations_always_raise():
    for kind in ("length_off_by_one", "length_overrun", "length_underrun"):
        for seed in SEEDS:
            c = sf.RandomChoices(seed)
            pdu = sf.valid_pdu(c)
            head = [f for f in sf.field_map(pdu) if f.path == ("length",)][0]
            for new in (head.value + 1, head.value - 1, head.max_value, 0):
                if new != head.value and new >= 0:
                    with pytest.raises(P.SpecError, match="PDU length"):
                        P.parse_pdu(sf.patch(pdu, head, new))


def test_unknown_pdu_type(tmp_path):
    unknown = 0
    for seed in SEEDS:
        pdu, m = _mutate_until("unknown_pdu_type", seed)
        if m.data[0] in PDU_TYPES:
            assert "confused with" in m.note
            continue
        unknown += 1
        with pytest.raises(P.SpecError, match="unknown PDU type"):
            P.parse_pdu(m.data)
        d = dissect([exchange((0, sf.associate_rq(sf.RandomChoices(seed))), (1, m.data))],
                    tmp_path)
        assert "dicom.pdu.malformed" in d.experts
    assert unknown > len(SEEDS) // 2


def test_reserved_nonzero_is_reported(tmp_path):
    for seed in SEEDS[:15]:
        pdu, m = _mutate_until("reserved_nonzero", seed, pdu_types={1, 2, 3, 5, 6, 7})
        P.parse_pdu(m.data)                          # receivers shall ignore it
        d = dissect([exchange((0, m.data))], tmp_path)
        assert "dicom.reserved.nonzero" in d.experts, m.note


def test_int_boundary_changes_exactly_one_field():
    for seed in SEEDS:
        pdu, m = _mutate_until("int_boundary", seed)
        before = {f.path: f.value for f in sf.field_map(pdu) if f.kind != "region"}
        after = {f.path: f.value for f in sf.field_map(m.data) if f.kind != "region"}
        assert before.keys() == after.keys()
        changed = [p for p in before if before[p] != after[p]]
        assert len(changed) == 1 and m.note.startswith(
            " -> ".join(f"[{p}]" if isinstance(p, int) else p for p in changed[0])), m.note


def test_truncated_pdus_fail_to_parse(tmp_path):
    for seed in SEEDS[:15]:
        pdu, m = _mutate_until("truncated", seed, pdu_types={1, 2})
        assert len(m.data) < len(pdu)
        with pytest.raises(P.SpecError):
            P.parse_pdu(m.data)
        d = dissect([exchange((0, m.data))], tmp_path)
        assert d.experts & {"dicom.pdu.malformed", "dicom.assoc.item.len.invalid"}, m.note


def test_uid_values(tmp_path):
    seen = collections.Counter()
    for seed in range(60):
        c = sf.RandomChoices(f"uid:{seed}")
        rq = sf.associate_rq(c)
        m = sf.uid_value(c, rq)
        variant = m.note.rsplit("(", 1)[1].split(",")[0]
        seen[variant] += 1
        pdu = P.parse_pdu(m.data)                   # lengths recomputed: it frames
        shown = m.note.split(" = ", 1)[0]
        node = pdu
        for part in shown.split(" -> "):
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        size = int(m.note.rsplit(", ", 1)[1].split(" ")[0])
        assert len(node) == size
        # Every text field of an A-ASSOCIATE-RQ is a UID but the version name.
        if variant in ("over64", "huge", "letters") and not _is_version_name(pdu, shown):
            d = dissect([exchange((0, m.data))], tmp_path)
            assert "dicom.uid.invalid" in d.experts, m.note
    assert len(seen) >= 8, seen


def _is_version_name(pdu, shown):
    parts = shown.split(" -> ")
    node = pdu
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return getattr(node, "item_type", None) == 0x55


def test_ae_titles(tmp_path):
    variants = collections.Counter()
    for seed in range(40):
        c = sf.RandomChoices(f"ae:{seed}")
        m = sf.ae_title_value(c, sf.associate_rq(c))
        variant = m.note.rsplit("(", 1)[1].split(",")[0]
        variants[variant] += 1
        if variant in ("huge", "short"):
            # The AE title field is 16 bytes: everything after it shifts.
            with pytest.raises(P.SpecError):
                P.parse_pdu(m.data)
            d = dissect([exchange((0, m.data))], tmp_path)
            # Fields shift, items overrun their parent: an invalid item length.
            assert {"dicom.pdu.malformed", "dicom.assoc.item.len.invalid"} & set(d.experts)
        else:
            pdu = P.parse_pdu(m.data)
            name = m.note.split(" = ")[0].split(" -> ")[1]
            assert len(getattr(pdu.body, name)) == 16
            if variant in ("empty", "nul", "control"):
                d = dissect([exchange((0, m.data))], tmp_path)
                assert "dicom.assoc.ae_invalid" in d.experts, m.note
    assert len(variants) >= 6, variants


def test_unknown_items_are_kept_raw():
    for seed in SEEDS:
        c = sf.RandomChoices(f"item:{seed}")
        rq = sf.associate_rq(c)
        m = sf.unknown_item(c, rq)
        pdu = P.parse_pdu(m.data)

        def misplaced(items, table):
            return [it for it in items if it.item_type not in table]
        top = misplaced(pdu.body.variable_items, P.VARIABLE_ITEMS)
        subs = []
        for it in pdu.body.variable_items:
            if it.item_type in (0x20, 0x21):
                subs += misplaced(it.body.sub_items, P.PRESENTATION_SUB_ITEMS)
            elif it.item_type == 0x50:
                subs += misplaced(it.body.sub_items, P.USER_SUB_ITEMS)
        raw = top + subs
        assert len(raw) == 1, m.note                 # exactly the one added or retyped
        assert isinstance(raw[0].body, bytes)        # kept raw, not interpreted
        if "unknown" in m.note:
            assert raw[0].item_type not in ITEM_TYPES


def _rq_violations(pdu) -> set:
    """What PS3.8 9.3.2 forbids in an A-ASSOCIATE-RQ, checked here
    independently of the mutator."""
    items = pdu.body.variable_items
    types = [it.item_type for it in items]
    out = set()
    if types.count(0x10) != 1 or types[0] != 0x10:
        out.add("application context")
    if 0x50 not in types or types[-1] != 0x50:
        out.add("user information")
    ctxs = [it for it in items if it.item_type == 0x20]
    if not ctxs or 0x21 in types:
        out.add("presentation contexts")
    ids = [it.body.context_id for it in ctxs]
    if len(set(ids)) != len(ids) or any(i % 2 == 0 for i in ids):
        out.add("context ids")
    for it in ctxs:
        st = [s.item_type for s in it.body.sub_items]
        if st.count(0x30) != 1 or 0x40 not in st:
            out.add("sub-items")
    for it in items:
        if it.item_type == 0x50 and 0x51 not in [s.item_type for s in it.body.sub_items]:
            out.add("maximum length")
    return out


def test_item_structure_violates_ps38(tmp_path):
    for seed in range(40):
        c = sf.RandomChoices(f"shape:{seed}")
        m = sf.item_structure(c, sf.associate_rq(c))
        pdu = P.parse_pdu(m.data)
        problems = _rq_violations(pdu)
        if m.note == "many transfers":          # legal, but a stress case
            assert max(len(it.body.sub_items) for it in pdu.body.variable_items
                       if it.item_type == 0x20) > 200
            continue
        if m.note == "many contexts" and not problems:
            # 128 contexts with ids 1..255 is the legal maximum
            assert sum(1 for it in pdu.body.variable_items if it.item_type == 0x20) == 128
            continue
        assert problems, m.note
        if m.note in ("no abstract", "no transfer"):
            d = dissect([exchange((0, m.data))], tmp_path)
            assert d.experts & {"dicom.no_abstract_syntax", "dicom.no_transfer_syntax"}


def _negotiated_pair(seed):
    c = sf.RandomChoices(f"assoc:{seed}")
    rq = sf.associate_rq(c, contexts=[(1, sf.VERIFICATION, [sf.IMPLICIT_LE])])
    ac = P.build_pdu("A-ASSOCIATE-AC", called_ae_title="SCP", calling_ae_title="SCU",
                     variable_items=[P.item(0x10, sf.APPLICATION_CONTEXT),
                                     P.item(0x21, context_id=1, result=0,
                                            sub_items=[P.item(0x40, sf.IMPLICIT_LE)]),
                                     P.item(0x50, sub_items=[P.item(0x51, max_length=4096)])])
    return c, rq, ac


def test_pdv_flags(tmp_path):
    for seed in range(20):
        c, rq, ac = _negotiated_pair(seed)
        pd = sf.pdata((1, 3, sf.echo_rq(1)))
        m = sf.pdv_flags(c, pd)
        flags = P.parse_pdu(m.data).body.pdvs[0].message_control_header
        d = dissect([exchange((0, rq), (1, ac), (0, m.data))], tmp_path)
        if flags > 3:
            assert "dicom.pdv.flags.invalid" in d.experts, m.note
        else:
            # A command sent as a data set, or never ending: no complete C-ECHO-RQ.
            assert flagged(d) and ("C-ECHO-RQ", True, []) not in d.messages, m.note


def test_fragments_out_of_order(tmp_path):
    variants = set()
    crashed = []
    for seed in range(28):
        c, rq, ac = _negotiated_pair(seed)
        data = None
        if seed % 2:
            data = sf.dataset(c, sf.STORAGE_CLASSES[0], "1.2.3", pixels=64)
            cmd = sf.store_rq(1, sf.STORAGE_CLASSES[0], "1.2.3")
        else:
            cmd = sf.echo_rq(1)
        pdus, note = sf.fragments_out_of_order(c, 1, cmd, data)
        variants.add(note.split(" (")[0])
        d = dissect([exchange((0, rq), (1, ac), *[(0, p) for p in pdus])], tmp_path,
                    allow_errors=True)
        if d.errors:
            assert _known_bug(d.errors), d.errors
            crashed.append(note)
            continue
        intact = [mm for mm in d.messages if mm[1] and not mm[2]
                  and mm[0] in ("C-ECHO-RQ", "C-STORE-RQ")]
        # The message never arrives intact, or arrives and something else is
        # reported (a second copy, a stray fragment).
        assert not intact or len(d.messages) > 1 or d.pdu_problems, (note, d)
        assert flagged(d) or len(d.messages) > 1, (note, d)
    assert len(variants) >= 6, variants
    if crashed:
        pytest.xfail(f"dissector bug (multi-valued Command Field) hit by: {crashed}")


def test_dissector_survives_a_multivalued_command_field(tmp_path):
    from dicomwire.specs.dicom.command import encode_command
    _c, rq, ac = _negotiated_pair(0)
    cmd = encode_command(dict(CommandField=[0x0030, 0x0030], MessageID=1,
                              AffectedSOPClassUID=sf.VERIFICATION, CommandDataSetType=0x0101))
    d = dissect([exchange((0, rq), (1, ac), (0, sf.pdata((1, 3, cmd))))], tmp_path)
    assert len(d.messages) == 1


def test_oversize_pdata_is_beyond_the_negotiated_maximum(tmp_path):
    for seed in range(6):
        c, rq, ac = _negotiated_pair(seed)
        _accepted, mx = sf.negotiated(ac)
        pdus, note = sf.oversize_pdata(c, 1, mx)
        assert P.PDU_HEADER.unpack_from(pdus[1])[2] > mx
        d = dissect([exchange((0, rq), (1, ac), *[(0, p) for p in pdus])], tmp_path)
        assert "dicom.pdu.too_large" in d.experts, note


def test_command_set_mutations_are_caught_by_the_command_decoder():
    original, _e, _p = decode_command(sf.echo_rq(7))
    for seed in range(40):
        c = sf.RandomChoices(f"cmd:{seed}")
        cmd, note = sf.command_set(c, sf.echo_rq(7))
        fields, _elements, problems = decode_command(cmd)
        changed = {k for k in set(fields) | set(original) if fields.get(k) != original.get(k)}
        assert problems or changed, note
        if "missing" in note:
            assert note.split()[0] not in fields


# --------------------------------------------------------------------------
# pcapng written by the fuzzer: our pipeline and tshark agree
# --------------------------------------------------------------------------


def test_pcapng_frames_decode_and_match_tshark(tmp_path):
    c, rq, ac = _negotiated_pair(1)
    echo = sf.pdata((1, 3, sf.echo_rq(1)))
    big = sf.message(1, sf.store_rq(2, sf.STORAGE_CLASSES[0], "1.2.3"),
                     sf.dataset(c, sf.STORAGE_CLASSES[0], "1.2.3", pixels=100000), 1 << 20)
    ex = exchange((0, rq), (1, ac), (0, echo), *[(0, p) for p in big],
                  (0, sf.release_rq()), (1, P.build_pdu("A-RELEASE-RP")))
    ex.add(1, "fin")
    path = tmp_path / "ok.pcapng"
    frames = F.write_pcapng(str(path), [ex], ["a comment"])
    d = decode_file(path)
    assert d.pdus == [(0, 1), (1, 2), (0, 4), (0, 4), (0, 4), (0, 5), (1, 6)]
    assert not d.pdu_problems and ("C-ECHO-RQ", True, []) in d.messages
    assert len(big[1]) > F.MSS                  # the data set PDU spans several segments
    if shutil.which("tshark"):
        p = subprocess.run(["tshark", "-r", str(path), "-d", "tcp.port==11112,dicom",
                            "-T", "fields", "-e", "frame.number", "-e", "ip.checksum.status",
                            "-e", "tcp.checksum.status", "-e", "dicom.pdu.type",
                            "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"],
                           capture_output=True, text=True, timeout=60)
        rows = [r.split("\t") for r in p.stdout.splitlines()]
        assert len(rows) == frames
        assert all(r[1] == "1" and r[2] == "1" for r in rows), rows     # 1: good
        # tshark finds the same PDUs (it lists a frame's PDU types comma separated).
        types = [int(t, 0) for r in rows if r[3] for t in r[3].split(",")]
        assert types == [t for _d, t in d.pdus]


# --------------------------------------------------------------------------
# Targets: loopback only
# --------------------------------------------------------------------------


def test_loopback_rule(monkeypatch):
    for text in ("127.0.0.1:104", "127.3.4.5:11112", "[::1]:104", "localhost:104",
                 "[::ffff:127.0.0.1]:104"):
        assert F.is_loopback(F.resolve_target(text).addr), text
    for text in ("192.0.2.1:104", "10.1.2.3:11112", "[2001:db8::1]:104", "0.0.0.0:104"):
        with pytest.raises(F.TargetError, match="--allow-remote"):
            F.resolve_target(text)
        assert F.resolve_target(text, allow_remote=True).port in (104, 11112)
    for text in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":104", "[::1]104"):
        with pytest.raises(F.TargetError, match="HOST:PORT"):
            F.resolve_target(text)


def test_cli_refuses_a_remote_target_without_sending(monkeypatch, cli):
    def no_network(*a, **k):
        raise AssertionError("the fuzzer tried to open a socket")
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for target in ("192.0.2.1:104", "[2001:db8::7]:11112"):
        rc, _, err = cli("fuzz", target, "-n", "1")
        assert rc == 2
        assert "not a loopback address" in err and "--allow-remote" in err


def test_cli_usage_errors(cli):
    assert cli("fuzz").returncode == 2
    rc, _, err = cli("fuzz", "127.0.0.1:104", "--kinds", "nope")
    assert rc == 2 and "--list-kinds" in err
    assert cli("fuzz", "127.0.0.1:104", "-n", "0").returncode == 2
    assert cli("fuzz", "127.0.0.1:104", "--timeout", "0").returncode == 2
    out = cli("fuzz", "--list-kinds", ok=True).stdout
    assert all(k in out for k in F.KINDS) and len(out.splitlines()) == len(F.KINDS)


def test_cli_does_not_import_the_fuzzer_at_start_up():
    fuzzer = "dicomwire.plugins.dicom.fuzzpeer"
    code = ("import sys, dicomwire.cli; "
            f"print('{fuzzer}' in sys.modules, 'hypothesis' in sys.modules); "
            f"import {fuzzer}; print('hypothesis' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # The fuzzer itself needs hypothesis only for its strategies.
    assert p.stdout.split() == ["False", "False", "False"], p.stderr


def test_a_dead_target_is_a_usage_error(cli, tmp_path):
    port = peers.free_port()                        # nothing listens there
    rc, _, err = cli("fuzz", f"127.0.0.1:{port}", "-n", "3", "-o", tmp_path / "o",
                     "--probe-timeout", "1")
    assert rc == 2 and "does not pass the probe" in err


# --------------------------------------------------------------------------
# The runner against a scripted peer (loopback): outcomes and verdicts
# --------------------------------------------------------------------------


class ScriptedPeer:
    """A loopback server that behaves as told: ``good`` (AC accepting every
    context, C-ECHO-RSP, A-RELEASE-RP), ``close``, ``reset``, ``silent``,
    ``garbage`` (an undefined PDU type) or ``flood``, at the first PDU.  With
    ``die_after`` it stops listening after that many connections."""

    def __init__(self, mode="good", die_after=None, host="127.0.0.1"):
        self.mode, self.die_after = mode, die_after
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()
            if self.die_after is not None and self.connections >= self.die_after:
                self.listener.close()
                return

    def close(self):
        self.listener.close()

    def _serve(self, sock):
        buf = b""
        sock.settimeout(5)
        try:
            while True:
                while len(buf) < 6 or len(buf) < 6 + P.PDU_HEADER.unpack_from(buf)[2]:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                n = 6 + P.PDU_HEADER.unpack_from(buf)[2]
                pdu, buf = buf[:n], buf[n:]
                if self.mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if self.mode == "close":
                    return
                if self.mode == "garbage":
                    sock.sendall(b"\x09\x00\x00\x00\x00\x02ab")
                    continue
                if self.mode == "flood":
                    while True:
                        sock.sendall(b"\x04\x00\xff\xff\xff\xff" + bytes(65536))
                if self.mode == "silent":
                    continue
                if pdu[0] == 1:
                    rq = P.parse_pdu(pdu).body
                    ctxs = [it.body.context_id for it in rq.variable_items
                            if it.item_type == 0x20]
                    sock.sendall(P.build_pdu(
                        "A-ASSOCIATE-AC", called_ae_title=rq.called_ae_title,
                        calling_ae_title=rq.calling_ae_title, variable_items=[
                            P.item(0x10, sf.APPLICATION_CONTEXT),
                            *[P.item(0x21, context_id=c, result=0,
                                     sub_items=[P.item(0x40, sf.IMPLICIT_LE)]) for c in ctxs],
                            P.item(0x50, sub_items=[P.item(0x51, max_length=16384)])]))
                elif pdu[0] == 4:
                    for pdv in P.parse_pdu(pdu).body.pdvs:
                        if pdv.message_control_header == 3:
                            f, _e, _p = decode_command(pdv.fragment)
                            rsp = encode_command_rsp(f.get("MessageID", 0))
                            sock.sendall(sf.pdata((pdv.context_id, 3, rsp)))
                elif pdu[0] == 5:
                    sock.sendall(P.build_pdu("A-RELEASE-RP"))
                    return
        except OSError:
            return
        finally:
            sock.close()


def encode_command_rsp(message_id):
    from dicomwire.specs.dicom.command import encode_command
    return encode_command(dict(CommandField=0x8030, MessageIDBeingRespondedTo=message_id,
                               AffectedSOPClassUID=sf.VERIFICATION, CommandDataSetType=0x0101,
                               Status=0))


def _valid_steps(opts, seed=0):
    return F.make_case(0, "valid", seed, opts).steps


@pytest.mark.parametrize("mode,outcome,reaction", [
    ("good", "answered", "A-RELEASE-RP"),
    ("close", "rejected", "closed the connection"),
    ("reset", "reset", "reset the connection"),
    ("silent", "silent", "no answer to A-ASSOCIATE-RQ within 0.2 s"),
    ("garbage", "answered", "malformed type 0x09 PDU"),
    ("flood", "silent", "sent more than 1 MiB without pause"),
])
def test_outcomes_against_a_scripted_peer(mode, outcome, reaction, monkeypatch):
    monkeypatch.setattr(F.Conn, "MAX_RECEIVED", 1 << 20)
    peer = ScriptedPeer(mode)
    try:
        opts = F.Options(timeout=0.2, probe_timeout=1)
        t0 = time.monotonic()
        res = F.run_steps(F.resolve_target(f"127.0.0.1:{peer.port}"), _valid_steps(opts),
                          opts, "t")
        assert time.monotonic() - t0 < 3
        assert res.outcome == outcome, res.reaction
        assert any(reaction in r for r in res.reaction), res.reaction
        assert res.peer_malformed == (mode == "garbage")
        probe = F.Probe("ok", "", 0.0)
        want = {"answered": "ok"}.get(outcome, outcome)
        assert F.verdict(res, probe) == ("malformed" if mode == "garbage" else want)
        assert F.verdict(res, F.Probe("timeout", "", 0.0)) == "hang"
        assert F.verdict(res, F.Probe("refused", "", 0.0)) == "dead"
    finally:
        peer.close()


def test_probe_and_a_peer_that_dies(tmp_path):
    # Connections: our probe, the first probe, case 0, its probe, case 1: then
    # the listener closes, case 1 completes, and its probe is refused.
    peer = ScriptedPeer("good", die_after=5)
    try:
        target = F.resolve_target(f"127.0.0.1:{peer.port}")
        opts = F.Options(count=10, seed=3, kinds=["valid"], timeout=0.5, probe_timeout=1,
                         outdir=str(tmp_path / "out"))
        assert F.probe(target, opts).status == "ok"
        report = F.run_campaign(target, opts)
        verdicts = [r.verdict for r in report.results]
        assert verdicts[-1] == "dead" and set(verdicts[:-1]) == {"ok"}, verdicts
        assert "dead" in report.stopped and len(report.results) < 10
        dead = report.results[-1]
        assert dead.file.endswith(f"case-{dead.index:05d}-valid.pcapng")
        text = F.format_report(report)
        assert f"case {dead.index} valid: dead" in text and "stopped: the peer is dead" in text
        d = decode_file(dead.file, ports=peer.port)
        assert d.pdus[:2] == [(0, 1), (1, 2)]        # the case's association, then
        from dicomwire.capture import open_capture
        frames = list(open_capture(dead.file).frames())
        assert frames[-1].data[47] & 0x04          # the probe's SYN answered by RST
    finally:
        peer.close()


def test_ipv6_loopback_case_files(tmp_path):
    try:
        peer = ScriptedPeer("good", host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        target = F.resolve_target(f"[::1]:{peer.port}")
        report = F.run_campaign(target, F.Options(count=2, seed=9, kinds=["valid", "dribble"],
                                                  save_all=True, outdir=str(tmp_path),
                                                  timeout=0.5, probe_timeout=1))
        assert [r.verdict for r in report.results] == ["ok", "ok"]
        d = decode_file(report.results[0].file, ports=peer.port)
        assert d.pdus[:2] == [(0, 1), (1, 2)] and ("C-ECHO-RQ", True, []) in d.messages
    finally:
        peer.close()


# --------------------------------------------------------------------------
# Campaigns against real peers
# --------------------------------------------------------------------------

ANSWER_TIMEOUT = 0.3          # loopback peers answer in milliseconds


def _report(name, report):
    text = F.format_report(report)
    print(f"\n===== {name} =====\n{text}")
    return text


def _check_report(report, decode_every=1):
    assert report.results, report.stopped
    verdicts = report.counts()
    assert sum(verdicts.values()) == len(report.results)
    assert set(verdicts) <= set(F.VERDICTS)
    port = report.target.rsplit(":", 1)[1]
    for n, r in enumerate(report.results):
        # A valid association must be answered as valid traffic is.
        if r.kind in ("valid", "dribble"):
            assert r.verdict == "ok", (r.index, r.kind, r.reaction, r.probe.detail)
        assert r.sent or r.outcome == "refused"
        if r.verdict in F.FAILING:
            assert r.file and os.path.exists(r.file), r.index
        if r.file and (r.verdict in F.FAILING or n % decode_every == 0):
            d = decode_file(r.file, ports=port, allow_errors=True)
            assert not d.errors or _known_bug(d.errors), (r.file, d.errors)
            # The case's client PDUs and the probe's are in the file.
            assert sum(1 for side, t in d.pdus if side == 0 and t == 1) >= 1, r.file
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["counts"] == {v: verdicts.get(v, 0) for v in F.VERDICTS}
    txt, js = F.write_summary(report)
    assert os.path.exists(txt) and json.load(open(js))["cases"] == len(report.results)


@pytest.fixture
def pynetdicom_scp(monkeypatch):
    """pynetdicom's SCP in this process.  Exceptions that kill its
    association threads are collected (``crashes``: thread name and last
    line), not printed: they are part of what the peer did."""
    pytest.importorskip("pynetdicom")
    crashes = []

    def hook(args):
        crashes.append((time.monotonic(), f"{args.exc_type.__name__}: {args.exc_value}"))
    monkeypatch.setattr(threading, "excepthook", hook)
    port = peers.free_port()
    # Short ACSE timeout: pynetdicom holds an association slot for that long
    # after aborting a malformed A-ASSOCIATE-RQ (see the README).
    server = peers.start_scp(port, timeout=2.0)
    try:
        yield port, crashes
    finally:
        peers.stop_scp(server)


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")      # pydicom on our invalid UIDs
def test_campaign_against_pynetdicom(pynetdicom_scp, tmp_path):
    port, crashes = pynetdicom_scp
    target = F.resolve_target(f"127.0.0.1:{port}")
    ends = []
    opts = F.Options(count=100, seed=20261127, timeout=ANSWER_TIMEOUT, probe_timeout=3.0,
                     recover=10.0, outdir=str(tmp_path / "pynetdicom"), time_limit=120,
                     save_all=True,
                     progress=lambda res, n, total: ends.append((time.monotonic(), res)))
    report = F.run_campaign(target, opts)
    _report("pynetdicom", report)
    # Which case killed which association thread (the case running then).
    by_case = collections.Counter()
    for t, what in crashes:
        case = next((r for end, r in ends if end >= t), None)
        by_case[(case.index, case.kind) if case else None, what] += 1
    print("pynetdicom association threads killed by an exception:")
    for (case, what), n in sorted(by_case.items(), key=str):
        print(f"  case {case}: {what}" + (f" x{n}" if n > 1 else ""))
    assert len(report.results) == 100, report.stopped
    assert set(r.kind for r in report.results) == set(F.KINDS)
    _check_report(report, decode_every=10)
    # pynetdicom answers malformed association requests with an A-ABORT.
    assert report.counts()["rejected"] > 0
    assert not report.counts()["dead"]          # in-process: it cannot die


def _storescp(port, tmp_path):
    if not peers.have_dcmtk("storescp"):
        pytest.skip("DCMTK storescp not installed")
    return peers.start_storescp(port, tmp_path / "stored")


@pytest.mark.interop
@pytest.mark.slow
def test_campaign_against_dcmtk_storescp(tmp_path):
    """160 cases; storescp is restarted when it dies and the campaign goes on
    with the next case.  A death (or else a reset) is replayed against a
    fresh storescp with ``dicomwire fuzz --replay`` and must happen again."""
    port = peers.free_port()
    seed, total = 1, 160
    results, deaths = [], []
    nxt = 0
    outdir = tmp_path / "dcmtk"
    while nxt < total:
        proc = _storescp(port, tmp_path)
        try:
            opts = F.Options(cases=list(range(nxt, total)), seed=seed, count=total,
                             timeout=ANSWER_TIMEOUT, probe_timeout=3.0, recover=5.0,
                             outdir=str(outdir), time_limit=120, save_all=True)
            report = F.run_campaign(F.resolve_target(f"127.0.0.1:{port}"), opts)
            assert report.results, report.stopped
            results += report.results
            nxt = report.results[-1].index + 1
            if report.results[-1].verdict == "dead":
                proc.wait(5)
                deaths.append((report.results[-1], proc.returncode))
        finally:
            peers.stop_process(proc)
    whole = F.Report(f"127.0.0.1:{port}", seed, opts, results,
                     seconds=sum(r.seconds + r.probe.seconds for r in results))
    _report("DCMTK storescp", whole)
    print("storescp deaths (case, kind, mutation, exit status):",
          [(r.index, r.kind, r.notes, rc) for r, rc in deaths])
    assert [r.index for r in results] == list(range(total))
    _check_report(whole, decode_every=10)
    for r, rc in deaths:
        assert rc is not None and rc != 0         # it did exit: a crash, not a probe fluke
    pick = [r for r, _rc in deaths] or [r for r in results if r.verdict == "reset"]
    if not pick:
        pytest.skip("storescp neither died nor reset with this seed: nothing to replay")
    case = pick[0]
    proc = _storescp(port, tmp_path)
    try:
        p = dw("fuzz", f"127.0.0.1:{port}", "--replay", case.file, "--timeout", "0.5",
               "--probe-timeout", "2", "-T", "json", timeout=60)
        assert p.returncode == (1 if case.verdict in F.FAILING else 0), p.stderr
        assert json.loads(p.stdout)["verdict"] == case.verdict
        if case.verdict == "dead":
            proc.wait(5)
            assert proc.returncode not in (None, 0)
    finally:
        peers.stop_process(proc)
    if shutil.which("tshark"):
        t = subprocess.run(["tshark", "-r", case.file, "-d", f"tcp.port=={port},dicom",
                            "-T", "fields", "-e", "dicom.pdu.type"],
                           capture_output=True, text=True, timeout=60)
        theirs = [int(x, 0) for row in t.stdout.split() for x in row.split(",") if x]
        ours = decode_file(case.file, ports=port)
        assert theirs[:1] == [1] and len(theirs) >= len(ours.pdus) - 1, (theirs, ours.pdus)


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cli_campaign_and_replay_against_pynetdicom(pynetdicom_scp, tmp_path):
    """The command line end to end: a short campaign with every case saved,
    summary files, then a replay of one saved case gives the same answer."""
    port, _server = pynetdicom_scp
    out = tmp_path / "cli"
    p = dw("fuzz", f"127.0.0.1:{port}", "-n", "20", "--seed", "5",
           "--timeout", ANSWER_TIMEOUT, "--probe-timeout", "3", "--save-all", "-o", out,
           "-T", "json", "--kinds", "valid,pdu_order,unknown_pdu_type,garbage")
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    assert doc["cases"] == 20 and doc["seed"] == 5
    assert (p.returncode == 1) == bool(doc["failing"])
    assert (out / "summary.txt").read_text().startswith(f"dicomwire fuzz 127.0.0.1:{port}")
    files = sorted(out.glob("case-*.pcapng"))
    assert len(files) == 20
    rejected = [r for r in doc["results"] if r["verdict"] == "rejected"
                and r["peer"][0].startswith("A-ABORT")]
    assert rejected
    r = rejected[0]
    q = dw("fuzz", f"127.0.0.1:{port}", "--replay", r["file"], "--timeout", ANSWER_TIMEOUT,
           "--probe-timeout", "3", timeout=60)
    assert q.returncode == 0, q.stderr
    assert f"peer: {r['peer'][0]}" in q.stdout and "verdict: rejected" in q.stdout
    # dicomwire show reads the case file back.
    s = dw("show", "--ports", port, r["file"])
    assert s.returncode == 0 and "A-ABORT" in s.stdout, s.stdout + s.stderr
