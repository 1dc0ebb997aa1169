"""Expert info: the registry, engine findings, the DICOM checks, the CLI, and
the custom check example of the README."""

import json
import re
import types

import pytest

import capgen as g
from dicomgen import (AC, CT_STORAGE, DATASET, ECHO_RQ, RELEASE_RP, RELEASE_RQ, RQ,
                      STORE_RQ, encode_command, pdata)
from dicomwire.config import Config
from dicomwire.expert import ENGINE_FIELDS, ExpertField, ExpertLog
from dicomwire.hookspecs import hookimpl
from dicomwire.pipeline import make_host, run
from dicomwire.plugins.dicom import expert as dicom_expert
from dicomwire.plugins.dicom import expert_dimse, expert_pdu
from support import ROOT, SAMPLE, dw

C, S = "10.0.0.1", "10.0.0.2"


def capture(tmp_path, c2s=(), s2c=(), packets=None, name="t.pcap"):
    """A pcap of one TCP connection to port 104 carrying the given payloads
    (client->server first, then server->client, as capgen.conversation)."""
    pk = packets if packets is not None else g.conversation(C, S, 40000, 104, c2s, s2c)
    p = tmp_path / name
    p.write_bytes(g.pcap([(i * 1000, g.ethernet(x)) for i, x in enumerate(pk)]))
    return p


def exchange(steps, cport=40000, sport=104):
    """Packets of one TCP connection C -> S carrying (direction, payload)
    steps in order (see capgen.exchange)."""
    return g.exchange(C, S, cport, sport, steps)


def names(result):
    return [i.field.name for i in result.expert.infos]


def test_registry_names_unique_and_wireshark_parity():
    tables = list(ENGINE_FIELDS) + list(dicom_expert.FIELDS)
    all_names = [f.name for f in tables]
    assert len(all_names) == len(set(all_names))
    wireshark = {"dicom.assoc.reject", "dicom.assoc.abort", "dicom.no_abstract_syntax",
                 "dicom.multiple_abstract_syntax", "dicom.no_transfer_syntax",
                 "dicom.multiple_transfer_syntax", "dicom.assoc.item.len.invalid",
                 "dicom.pdv.ctx.invalid", "dicom.pdv.flags.invalid", "dicom.status_msg",
                 "dicom.data.tag.missing", "dicom.pdv.len.invalid", "dicom.pdu_length.invalid"}
    assert wireshark <= set(all_names)
    log = ExpertLog()
    log.register(tables)
    log.register(tables)                         # the same fields again: fine
    with pytest.raises(ValueError):
        log.register([ExpertField("tcp.gap", "error", "sequence", "other")])
    with pytest.raises(KeyError):
        log.report("no.such.field", "x")
    with pytest.raises(ValueError):
        ExpertField("x.y", "fatal", "sequence", "bad severity")


def test_sample_has_exactly_the_rejection_with_its_hint():
    result = run(str(SAMPLE))
    assert [i.field.name for i in result.expert.at_least("warn")] == ["dicom.assoc.reject"]
    # DCMTK's storescu sets a reserved byte of its presentation context items:
    # said once, as chat (issue 13, defect 11).
    assert [i.field.name for i in result.expert.at_least("note")] == ["dicom.assoc.reject"]
    reserved = [i for i in result.expert.infos if i.field.name == "dicom.reserved.nonzero"]
    assert len(reserved) == 1 and reserved[0].field.severity == "chat"
    assert "reserved3 of item 0x20 = 0xFF (128 items)" in reserved[0].message
    assert names(result).count("dicom.timing.assoc_setup") == 2       # chats
    info = result.expert.at_least("warn")[0]
    assert info.frames == (51,) and info.assoc == 1 and info.stream == 1
    assert "Called AE title not recognized" in info.message
    assert "check the AE title configured on both sides" in info.message


def test_refused_connection(tmp_path):
    pk = [g.ipv4_tcp(C, S, 40000, 104, 1000, 0, g.SYN),
          g.ipv4_tcp(S, C, 104, 40000, 0, 1001, g.RST | g.ACK)]
    result = run(str(capture(tmp_path, packets=pk)))
    assert names(result) == ["tcp.refused"]
    assert "10.0.0.2:104 refused" in result.expert.infos[0].message


def test_closed_without_release_and_request_without_response(tmp_path):
    result = run(str(capture(tmp_path, [RQ, pdata((1, 3, ECHO_RQ))], [AC])))
    n = names(result)
    assert "dicom.assoc.no_release" in n and "dicom.dimse.no_response" in n
    msg = next(i for i in result.expert.infos if i.field.name == "dicom.dimse.no_response")
    assert "C-ECHO-RQ ID=1" in msg.message


def test_failure_status(tmp_path):
    rsp = encode_command(dict(CommandField=0x8001, MessageIDBeingRespondedTo=2,
                              AffectedSOPClassUID=CT_STORAGE,
                              AffectedSOPInstanceUID="1.2.826.0.1.3680043.9.7",
                              CommandDataSetType=0x0101, Status=0xA700))
    result = run(str(capture(tmp_path, [RQ, pdata((3, 3, STORE_RQ), (3, 2, DATASET)),
                                        RELEASE_RQ], [AC, pdata((3, 3, rsp)), RELEASE_RP])))
    st = [i for i in result.expert.infos if i.field.name == "dicom.status_msg"]
    assert len(st) == 1 and "0xA700" in st[0].message and "C-STORE-RSP ID=2" in st[0].message
    assert "Refused: Out of resources" in st[0].message or "Out of resources" in st[0].message
    assert "dicom.dimse.no_response" not in names(result)


def test_presentation_contexts_rejected(tmp_path):
    from dicomwire.specs.dicom.pdu import build_pdu, item
    ac = build_pdu("A-ASSOCIATE-AC", called_ae_title="STORESCP", calling_ae_title="MODALITY",
                   variable_items=[item(0x10, "1.2.840.10008.3.1.1.1"),
                                   item(0x21, context_id=1, result=0,
                                        sub_items=[item(0x40, "1.2.840.10008.1.2")]),
                                   item(0x21, context_id=3, result=3,
                                        sub_items=[item(0x40, "1.2.840.10008.1.2")]),
                                   item(0x50, sub_items=[item(0x51, max_length=16384)])])
    result = run(str(capture(tmp_path, [RQ, RELEASE_RQ], [ac, RELEASE_RP])))
    pc = [i for i in result.expert.infos if i.field.name == "dicom.pctx.rejected"]
    assert len(pc) == 1
    assert "CT Image Storage has no accepted presentation context" in pc[0].message
    assert "CT Image Storage" in pc[0].message and "Explicit VR Little Endian" in pc[0].message
    assert "dicom.assoc.no_dimse" in names(result)


def test_malformed_pdv_flags_and_gap_findings(tmp_path):
    bad = pdata((1, 0x13, ECHO_RQ))              # reserved flag bits set
    result = run(str(capture(tmp_path, [RQ, bad, RELEASE_RQ], [AC, RELEASE_RP])))
    assert "dicom.pdv.flags.invalid" in names(result)


def test_expert_command_and_exit_status():
    p = dw("expert", SAMPLE)
    assert p.returncode == 0
    assert "Warnings (1)" in p.stdout and "dicom.assoc.reject" in p.stdout
    p = dw("expert", "--fail-on", "problems", "-T", "json", SAMPLE)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["summary"][0]["name"] == "dicom.assoc.reject"
    rj = [i for i in doc["infos"] if i["name"] == "dicom.assoc.reject"]
    assert rj[0]["frames"] == [51] and rj[0]["severity"] == "warn"
    p = dw("expert", "--min-severity", "error", SAMPLE)
    assert "No expert infos at or above 'error'" in p.stdout


def readme_example():
    """The custom check of the README, as a module."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# slow_store\.py.*?)```", text, re.S).group(1)
    mod = types.ModuleType("slow_store")
    exec(compile(code, "slow_store.py", "exec"), mod.__dict__)
    return mod


def test_readme_custom_check_example_runs():
    mod = readme_example()
    mod.LIMIT_SECONDS = 0.0                      # every C-STORE is "slow" now
    config = Config()
    host = make_host(config)
    host.register(mod, "slow_store")
    result = run(str(SAMPLE), config, host)
    slow = [i for i in result.expert.infos if i.field.name == "site.slow_store"]
    assert len(slow) == 5 and host.errors == []
    assert all("C-STORE" in i.message for i in slow)


def _store_rq(instance="1.2.826.0.1.3680043.9.7", mid=2):
    return encode_command(dict(CommandField=0x0001, MessageID=mid, Priority=0,
                               AffectedSOPClassUID=CT_STORAGE,
                               AffectedSOPInstanceUID=instance, CommandDataSetType=0))


def _store_rsp(mid=2, instance="1.2.826.0.1.3680043.9.7", status=0):
    fields = dict(CommandField=0x8001, MessageIDBeingRespondedTo=mid,
                  AffectedSOPClassUID=CT_STORAGE, CommandDataSetType=0x0101, Status=status)
    if instance:
        fields["AffectedSOPInstanceUID"] = instance
    return encode_command(fields)


def session(tmp_path, c2s, s2c):
    """RQ, AC, then the client's PDUs, then the server's, then release."""
    steps = [(0, RQ), (1, AC)] + [(0, p) for p in c2s] + [(1, p) for p in s2c]
    steps += [(0, RELEASE_RQ), (1, RELEASE_RP)]
    return run(str(capture(tmp_path, packets=exchange(steps))))


def test_pdu_and_pdv_protocol_checks(tmp_path):
    big = pdata((3, 1, _store_rq()), ) + pdata((3, 2, DATASET + bytes(40000)))
    r = session(tmp_path, [big, pdata((5, 3, ECHO_RQ))], [pdata((3, 3, _store_rsp()))])
    n = names(r)
    too = [i for i in r.expert.infos if i.field.name == "dicom.pdu.too_large"]
    assert len(too) == 1 and "at most 32768" in too[0].message     # the acceptor's maximum
    ctx = [i for i in r.expert.infos if i.field.name == "dicom.pdv.ctx.not_accepted"]
    assert len(ctx) == 1 and "context 5 (never proposed)" in ctx[0].message
    assert "dicom.pdu.mixed" not in n                 # command and data in separate PDUs here


def test_dimse_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(expert_dimse, "SLOW_RESPONSE_S", 0.0)
    meta = b"\x02\x00\x10\x00\x14\x00\x00\x00" + b"1.2.840.10008.1.2.1\x00"   # (0002,0010)
    c2s = [
        pdata((3, 3, _store_rq("1.2.826.0.1.3680043.9.8")), (3, 2, DATASET)),   # mixed PDU
        pdata((1, 3, ECHO_RQ)), pdata((1, 3, ECHO_RQ)),                       # same ID twice
        pdata((3, 3, _store_rq("1.2.3.abc", mid=3)), (3, 2, meta + DATASET)),
    ]
    s2c = [pdata((3, 3, _store_rsp(instance=None))),
           pdata((3, 3, _store_rsp(mid=99)))]
    r = session(tmp_path, c2s, s2c)
    got = {}
    for i in r.expert.infos:
        got.setdefault(i.field.name, []).append(i.message)
    assert "SOP Instance 1.2.826.0.1.3680043.9.8 in the command" in \
        got["dicom.dimse.sop_mismatch"][0]
    assert len(got["dicom.pdu.mixed"]) == 2
    assert "reuses Message ID 1" in got["dicom.dimse.duplicate_id"][0]
    assert "'1.2.3.abc'" in got["dicom.uid.invalid"][0]
    assert "group 0002" in got["dicom.dataset.meta_in_network"][0]
    assert "without Affected SOP Instance UID" in got["dicom.dimse.store_rsp_no_instance"][0]
    assert "Message ID 99" in got["dicom.dimse.unknown_response"][0]
    assert got["dicom.timing.slow_response"]          # threshold 0: every answered request
    assert "C-ECHO-RQ ID=1" in " ".join(got["dicom.dimse.no_response"])


def test_idle_pause_attributed_to_the_waiting_side(tmp_path, monkeypatch):
    # Frames are 1 us apart; a threshold of 0.5 us makes every pause long.
    monkeypatch.setattr(expert_pdu, "IDLE_S", 5e-7)
    r = session(tmp_path, [pdata((1, 3, ECHO_RQ))], [])
    idle = [i.message for i in r.expert.infos if i.field.name == "dicom.timing.idle"]
    assert any("waiting for the acceptor to answer" in m for m in idle)
    assert any("the sending application was idle" in m for m in idle)


def test_association_title_answer_and_reserved_checks(tmp_path):
    from dicomgen import assoc_ac, assoc_rq
    from dicomwire.specs.dicom.pdu import build_pdu

    def findings(steps, name):
        r = run(str(capture(tmp_path, packets=exchange(steps), name=name)))
        return {i.field.name: i.message for i in r.expert.infos}

    got = findings([(0, assoc_rq(called="   ", calling="BAD\x01AE")),
                    (1, assoc_ac(called="OTHER", calling="SOMEONE")),
                    (0, RELEASE_RQ), (1, RELEASE_RP)], "titles.pcap")
    assert "AE title '" in got["dicom.assoc.ae_invalid"]
    assert "'OTHER'/'SOMEONE', the request" in got["dicom.assoc.ae_not_echoed"]
    reject = build_pdu("A-ASSOCIATE-RJ", result=1, source=1, reason=7, reserved2=5)
    got = findings([(0, RQ), (1, reject)], "rj.pcap")
    assert "reserved2" in got["dicom.reserved.nonzero"]
    got = findings([(0, RQ)], "noanswer.pcap")
    assert "got no answer" in got["dicom.assoc.no_answer"]


def test_zero_window_attributed_to_the_receiver(tmp_path):
    pk = exchange([(0, RQ), (1, AC), (0, pdata((1, 3, ECHO_RQ))), (0, RELEASE_RQ),
                   (1, RELEASE_RP)])
    # The acceptor (S) says "window 0" twice while the requestor sends.
    full = g.ipv4(S, C, g.P_TCP, g.tcp(S, C, 104, 40000, 5001, 1001, g.ACK, window=0))
    pk[5:5] = [full, full]
    r = run(str(capture(tmp_path, packets=pk)))
    assert r.streams[0].dirs[1].zero_windows == 2 and r.streams[0].dirs[0].zero_windows == 0
    msg = [i.message for i in r.expert.infos if i.field.name == "dicom.timing.zero_window"]
    assert len(msg) == 1 and "the acceptor (STORESCP) advertised a zero window 2 time(s)" in msg[0]


HEAD = DATASET[:-(8 + 1024)]           # the elements before Pixel Data


def test_data_set_cut_short_is_early_termination_of_tag(tmp_path):
    """Wireshark's dicom.data.tag.missing: the last element claims more bytes
    than the data set holds (the sender's bug, not a capture gap)."""
    from dicomgen import element
    broken_sq = element(0x0008, 0x1140, b"") [:4] + (100).to_bytes(4, "little") \
        + b"\xfe\xff\x00\xe0" + (200).to_bytes(4, "little") + bytes(92)
    c2s = [pdata((3, 3, _store_rq()), ), pdata((3, 2, DATASET[:-5])),
           pdata((3, 3, _store_rq(mid=3))), pdata((3, 2, HEAD + broken_sq)),
           pdata((3, 3, _store_rq(mid=4))), pdata((3, 2, DATASET))]
    r = session(tmp_path, c2s, [pdata((3, 3, _store_rsp(mid=m))) for m in (2, 3, 4)])
    got = {}
    for i in r.expert.infos:
        got.setdefault(i.field.name, []).append(i)
    (cut,) = got["dicom.data.tag.missing"]
    assert "C-STORE-RQ ID=2" in cut.message and "(7FE0,0010) declares 1024 bytes, " \
        "1019 byte(s) left" in cut.message
    # Implicit VR: (0008,1140) is a sequence only by the dictionary, so the
    # walk skips its 100 bytes whole; the item inside is not checked.  A
    # sequence of undefined length is walked:
    assert "dicom.dataset.malformed" not in got


def test_undefined_length_item_overrunning_its_sequence_is_malformed(tmp_path):
    from dicomgen import element
    sq = (b"\x08\x00\x40\x11" + b"\xff\xff\xff\xff"                 # (0008,1140) undefined
          + b"\xfe\xff\x00\xe0" + (500).to_bytes(4, "little") + bytes(16)   # item: 500 > left
          + b"\xfe\xff\xdd\xe0" + bytes(4))
    unterminated = (b"\x08\x00\x40\x11" + b"\xff\xff\xff\xff"          # sequence, undefined
                    + b"\xfe\xff\x00\xe0" + b"\xff\xff\xff\xff"        # item, undefined
                    + element(0x0010, 0x0010, b"A^B"))                # ... and the data ends
    c2s = [pdata((3, 3, _store_rq())), pdata((3, 2, HEAD + sq + DATASET[len(HEAD):])),
           pdata((3, 3, _store_rq(mid=3))), pdata((3, 2, DATASET + unterminated))]
    r = session(tmp_path, c2s, [pdata((3, 3, _store_rsp(mid=m))) for m in (2, 3)])
    got = {}
    for i in r.expert.infos:
        got.setdefault(i.field.name, []).append(i.message)
    assert len(got["dicom.dataset.malformed"]) == 1
    # The item's 500 bytes swallow the delimiter that should close it.
    assert "ID=2" in got["dicom.dataset.malformed"][0] and "unexpected delimiter" in \
        got["dicom.dataset.malformed"][0]
    assert len(got["dicom.data.tag.missing"]) == 1 and "ID=3" in got["dicom.data.tag.missing"][0]
    assert "never ends" in got["dicom.data.tag.missing"][0]


def test_spooled_data_set_is_walked_from_disk(tmp_path, monkeypatch):
    from dicomwire.plugins.dicom import spool
    monkeypatch.setattr(spool, "SPOOL_AT", 1000)
    c2s = [pdata((3, 3, _store_rq())), pdata((3, 2, DATASET[:-1]))]
    r = session(tmp_path, c2s, [pdata((3, 3, _store_rsp()))])
    assert names(r).count("dicom.data.tag.missing") == 1


def _timed_capture(tmp_path, pk, times, name):
    p = tmp_path / name
    p.write_bytes(g.pcap([(t, g.ethernet(x)) for t, x in zip(times, pk)]))
    return p


def test_slow_transfer_blamed_on_the_sender_or_the_receiver(tmp_path):
    data = DATASET + bytes(4000)
    parts = [data[i:i + 1300] for i in range(0, len(data), 1300)]
    frags = [pdata((3, 2 if i == len(parts) - 1 else 0, p)) for i, p in enumerate(parts)]
    steps = [(0, RQ), (1, AC), (0, pdata((3, 3, _store_rq())))] + [(0, f) for f in frags] \
        + [(1, pdata((3, 3, _store_rsp()))), (0, RELEASE_RQ), (1, RELEASE_RP)]
    pk = exchange(steps)
    first = 2 + 2 * 3           # handshake, then 2 packets per step: the first fragment
    # Sender-bound: 0.5 s between fragments, the acceptor's window open.
    times, t = [], 0
    for i in range(len(pk)):
        t += 500_000_000 if first < i < first + 2 * len(frags) and (i - first) % 2 == 0 \
            else 1000
        times.append(t)
    r = run(str(_timed_capture(tmp_path, pk, times, "sender.pcap")))
    (v,) = [i.message for i in r.expert.infos if i.field.name == "dicom.timing.transfer_limited"]
    assert f"slowed by the sender: the sending side paused {len(frags) - 1} time(s)" in v
    # Receiver-bound: the acceptor advertises a zero window between fragments.
    full = g.ipv4(S, C, g.P_TCP, g.tcp(S, C, 104, 40000, 5001, 1001, g.ACK, window=0))
    pk2 = list(pk)
    for k in range(len(frags) - 1, 0, -1):
        pk2.insert(first + 2 * k, full)
    r = run(str(capture(tmp_path, packets=pk2, name="receiver.pcap")))
    (v,) = [i.message for i in r.expert.infos if i.field.name == "dicom.timing.transfer_limited"]
    assert f"slowed by the receiver: the acceptor advertised a zero TCP window " \
        f"{len(frags) - 1} time(s)" in v
    # Neither: evenly paced packets 1 us apart.
    r = run(str(capture(tmp_path, packets=pk, name="even.pcap")))
    assert "dicom.timing.transfer_limited" not in names(r)


def test_uid_rules_ae_repertoire_and_unknown_items(tmp_path):
    from dicomgen import assoc_rq
    from dicomwire.plugins.dicom.expert import uid_problem
    from dicomwire.specs.dicom.pdu import build_pdu, item, parse_pdu
    assert uid_problem("1.2.840.10008.1.2") is None and uid_problem("1.2.0.3\0") is None
    for bad, why in (("1.2.03", "leading zero"), ("1..2", "empty component"),
                     ("1.2.", "empty component"), ("", "empty"), ("\0", "empty"),
                     ("1.2.a", "digits"), ("1." + "2" * 70, "more than 64")):
        assert why in uid_problem(bad), bad
    rq = parse_pdu(assoc_rq(calling="BAD\\AE"))
    rq.body.variable_items.append(item(0x77, b"??"))
    r = session_with(tmp_path, build_pdu("A-ASSOCIATE-RQ", **{k: v for k, v in rq.body.items()
                                                              if not k.startswith("_")}))
    got = {i.field.name: i.message for i in r.expert.infos}
    assert "'BAD\\\\AE" in got["dicom.assoc.ae_invalid"]
    assert "item 0x77" in got["dicom.item.unknown"]


def session_with(tmp_path, rq):
    return run(str(capture(tmp_path, packets=exchange([(0, rq), (1, AC), (0, RELEASE_RQ),
                                                       (1, RELEASE_RP)]), name="items.pcap")))
