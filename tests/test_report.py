"""The report's model (exporters/report), without a browser: one ladder
event per association PDU and DIMSE message, requests paired with their
responses, rows and lanes in order, findings linked to the arrow at their
frame, C-MOVE callbacks, idle periods, bounded memory, no patient data by
default; and the page's JSON and self-containment, the command line."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

import reportgen as rg
from dicomwire.config import Config
from dicomwire.exporters.report import ReportCollector, collect, page_html
from dicomwire.exporters.report.render import embed_json, pack, unpack
from dicomwire.pipeline import make_host, run
from support import SAMPLE, Recorder, record

CORPUS = sorted((Path(__file__).parent / "corpus" / "captures").glob("*.pcap"))
CAPTURES = [SAMPLE, *CORPUS]


def build(path, **kw):
    """(model, pass result) of the report collector over a capture."""
    col = ReportCollector(**kw)
    config = Config()
    host = make_host(config)
    host.register(col, "report")
    result = run(str(path), config, host)
    assert host.errors == [], host.errors
    return col.model, result


@lru_cache(maxsize=None)
def model_of(path):
    return build(path)[0]


def by_id(model):
    return {a["id"]: a for a in model["associations"]}


def events(model):
    for a in model["associations"]:
        for ev in a["events"]:
            yield a, ev


def write(tmp_path, *connections, name="gen.pcap"):
    path = tmp_path / name
    path.write_bytes(rg.pcap(*connections))
    return path


# -- the summary and the ladder ---------------------------------------------------------


def test_the_sample_in_numbers():
    s = model_of(SAMPLE)["summary"]
    assert (s["associations"], s["accepted"], s["rejected"], s["aborted"]) == (3, 2, 1, 0)
    assert (s["tcp_streams"], s["messages"], s["objects"]) == (3, 17, 5)
    assert s["findings"] == {"error": 0, "warn": 1, "note": 0, "chat": 3}
    assert s["phi"] is False and s["events_left_out"] == 0
    json.dumps(model_of(SAMPLE), allow_nan=False)          # plain data, as the page needs


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_one_event_per_association_pdu_and_message(path):
    """Counted apart from the report: every PDU but P-DATA, and every
    message, of each association, in the order they completed."""
    rec = Recorder(pdu=lambda p: (p.assoc.id, p.name, p.last_frame) if p.type != 4 else None,
                   message=lambda m: (m.assoc.id, m.name, m.last_frame))
    record(path, rec)
    want: dict = {}
    for row in [r for r in rec.pdus if r] + rec.messages:
        want.setdefault(row[0], []).append((row[1], row[2]))
    m = model_of(path)
    assert sorted(want) == sorted(by_id(m))
    for a in m["associations"]:
        got = [(ev["name"], ev["frames"][1]) for ev in a["events"]]
        assert len(got) == a["rows"] - len(a["markers"])
        assert sorted(got) == sorted(want[a["id"]])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_responses_point_at_their_requests(path):
    m = model_of(path)
    for a in m["associations"]:
        seqs = {ev["seq"]: ev for ev in a["events"]}
        for ev in a["events"]:
            if "pair" not in ev:
                continue
            rq = seqs[ev["pair"]]
            assert ev["name"].endswith("-RSP") and rq["name"].endswith("-RQ")
            assert rq["name"][:-3] == ev["name"][:-4] and rq["msg_id"] == ev["msg_id"]
            assert rq["dir"] != ev["dir"] and rq["seq"] < ev["seq"]
            # the response time runs from the request's last frame to the response's first
            assert ev["rsp_time"] == pytest.approx(ev["t"] - rq["t"] - rq.get("dt", 0), abs=3e-6)
            if ev.get("category") != "Pending":
                assert rq["rsp"] == ev["seq"]


def test_pending_responses_pair_with_one_request():
    a = by_id(model_of(SAMPLE))[0]
    finds = [ev for ev in a["events"] if ev["name"] == "C-FIND-RSP"]
    assert [ev["category"] for ev in finds] == ["Pending"] * 3 + ["Success"]
    rq = next(ev for ev in a["events"] if ev["name"] == "C-FIND-RQ")
    assert {ev["pair"] for ev in finds} == {rq["seq"]} and rq["rsp"] == finds[-1]["seq"]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_rows_and_lanes_in_order(path):
    m = model_of(path)
    for a in m["associations"]:
        rows = [ev["row"] for ev in a["events"]] + [mk["row"] for mk in a["markers"]]
        assert sorted(rows) == list(range(a["rows"]))
        assert [ev["row"] for ev in a["events"]] == sorted(ev["row"] for ev in a["events"])
        assert [ev["seq"] for ev in a["events"]] == sorted(ev["seq"] for ev in a["events"])
        assert a["start"] <= a["end"]
    lanes: dict = {}
    for a in sorted(m["associations"], key=lambda a: a["start"]):
        lanes.setdefault(a["lane"], []).append((a["start"], a["end"]))
    for spans in lanes.values():                 # one lane never holds two at once
        assert all(e0 < s1 for (_s0, e0), (s1, _e1) in zip(spans, spans[1:]))
    assert m["timeline"]["lanes"] == len(lanes)


def test_concurrent_associations_get_their_own_lanes(tmp_path):
    one = rg.timed(rg.association(rg.echo()), 0, 40001)
    two = rg.timed(rg.association(rg.echo()), 2_000_000, 40002)       # overlaps the first
    three = rg.timed(rg.association(rg.echo()), 100_000_000, 40003)   # after both
    m = build(write(tmp_path, one, two, three))[0]
    assert [a["lane"] for a in m["associations"]] == [0, 1, 0]


# -- findings, callbacks, queries -----------------------------------------------------


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_findings_sit_on_the_arrow_at_their_frame(path):
    m = model_of(path)
    assocs = by_id(m)
    for f in m["findings"]:
        if f["event"] is None:
            continue
        a = assocs[f["assoc"]]
        ev = next(e for e in a["events"] if e["seq"] == f["event"])
        assert f["n"] in ev["findings"]
        inside = [fr for fr in f["frames"] if a["frames"][0] <= fr <= a["frames"][1]]
        assert inside, f
        first, last = ev["frames"]
        assert first <= inside[-1] <= last or last < inside[-1], (f, ev)
    for a in m["associations"]:
        assert sum(a["findings"].values()) == sum(1 for f in m["findings"]
                                                  if f["assoc"] == a["id"])


def test_the_reject_finding_is_on_the_reject_arrow():
    m = model_of(SAMPLE)
    f = next(f for f in m["findings"] if f["name"] == "dicom.assoc.reject")
    ev = by_id(m)[1]["events"][f["event"]]
    assert ev["name"] == "A-ASSOCIATE-RJ" and ev["frames"] == [51, 51]
    assert "Called AE title not recognized" in ev["detail"]


def test_a_callback_association_is_linked_to_its_c_move():
    m = model_of(CORPUS[[p.stem for p in CORPUS].index("move_with_callback")])
    src, cb = m["associations"]
    move = next(ev for ev in src["events"] if ev["name"] == "C-MOVE-RQ")
    assert cb["called"] == move["dest"] == "DEST_SCP"
    assert cb["callback_of"] == {"assoc": src["id"], "seq": move["seq"],
                                 "by": "destination and time"}
    assert move["callbacks"] == [cb["id"]] and src["callbacks"] == [
        {"assoc": cb["id"], "seq": move["seq"]}]
    assert move["t"] <= cb["start"] <= src["end"]


def test_an_association_outside_the_move_window_is_no_callback():
    m = model_of(SAMPLE)
    assert not any("callback_of" in a for a in m["associations"])


def test_c_find_queries_name_their_keys_not_their_values():
    q, = model_of(SAMPLE)["queries"]
    assert (q["level"], q["matches"], q["status"], q["frame"]) == ("STUDY", 3, 0, 35)
    keys = {k["keyword"]: k for k in q["keys"]}
    assert keys["PatientName"]["matching"] and "value" not in keys["PatientName"]
    assert not keys["PatientID"]["matching"]
    assert keys["QueryRetrieveLevel"]["value"].strip() == "STUDY"
    q, = build(SAMPLE, phi=True)[0]["queries"]
    assert {k["keyword"]: k for k in q["keys"]}["PatientName"]["value"]


# -- timing ---------------------------------------------------------------------------


def test_idle_period_and_slow_response_are_labelled(tmp_path):
    steps = rg.association(rg.echo(1, pause=6.0), rg.echo(2))
    a = build(write(tmp_path, rg.timed(steps)))[0]["associations"][0]
    p, = a["idle"]
    assert p["waiting_for"] == "acceptor" and p["seconds"] == pytest.approx(6.001, abs=1e-3)
    rsp = next(ev for ev in a["events"] if ev["name"] == "C-ECHO-RSP")
    assert rsp["slow"] and rsp["rsp_time"] == pytest.approx(6.001, abs=1e-3)
    marker, = a["markers"]
    assert marker == {"row": rsp["row"] - 1, "kind": "idle", "idle": 0}
    assert p["to"] == rsp["frames"][0] and p["from"] < p["to"]


def test_a_pause_after_a_response_waits_for_nobody(tmp_path):
    steps = rg.association(rg.echo(1), [(0, rg.echo(2)[0][1], 3.0), rg.echo(2)[1]])
    a = build(write(tmp_path, rg.timed(steps)))[0]["associations"][0]
    p, = a["idle"]
    assert p["waiting_for"] is None and p["next_sender"] == "requestor"
    assert not any(ev.get("slow") for ev in a["events"])


# -- bounds ---------------------------------------------------------------------------


def test_a_long_association_keeps_its_first_and_last_events(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "HEAD", 10)
    monkeypatch.setattr(collect, "TAIL", 6)
    steps = rg.association(*[rg.echo(i) for i in range(1, 41)])       # 84 events
    a = build(write(tmp_path, rg.timed(steps)))[0]["associations"][0]
    assert len(a["events"]) == 16 and a["left_out"] == 84 - 16
    assert [ev["seq"] for ev in a["events"]] == list(range(10)) + list(range(78, 84))
    assert a["events"][-1]["name"] == "A-RELEASE-RP"
    gap, = a["markers"]
    assert gap == {"row": 10, "kind": "left_out", "count": 68}
    assert a["messages"] == 80                          # counted, all of them


def test_over_the_event_budget_how_associations_end_still_shows(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "MAX_EVENTS", 12)
    conns = [rg.timed(rg.association(rg.echo(1), rg.echo(2)), i * 50_000_000, 40000 + i)
             for i in range(3)]
    m = build(write(tmp_path, *conns))[0]
    last = m["associations"][-1]
    assert [ev["name"] for ev in last["events"]] == ["A-ASSOCIATE-RQ", "A-ASSOCIATE-AC",
                                                     "A-RELEASE-RQ", "A-RELEASE-RP"]
    assert [a["left_out"] for a in m["associations"]] == [0, 2, 4]    # 8 + 4 events kept
    assert m["summary"]["events_left_out"] == 6


def test_associations_beyond_the_limit_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "MAX_ASSOCS", 2)
    conns = [rg.timed(rg.rejected() if i == 2 else rg.association(rg.echo()),
                      i * 50_000_000, 40000 + i) for i in range(3)]
    s = build(write(tmp_path, *conns))[0]["summary"]
    assert (s["associations"], s["listed"], s["rejected"], s["accepted"]) == (3, 2, 1, 2)


# -- patient data -------------------------------------------------------------------


def _patient_strings(path) -> set:
    """Patient names and IDs, SOP Instance UIDs of the capture's messages."""
    def values(msg):
        out = {(msg.command or {}).get("AffectedSOPInstanceUID")}
        if msg.has_dataset and msg.encoding is not None:
            try:
                ds = msg.dataset()
            except Exception:
                return out
            out |= {str(ds.get(k, "")) for k in ("PatientName", "PatientID")}
        return out
    rec = Recorder(message=values)
    record(path, rec)
    return {v.strip() for vs in rec.messages for v in vs if v and len(v.strip()) > 3}


@pytest.mark.parametrize("path", [SAMPLE, *[p for p in CORPUS if p.stem in (
    "find_study", "mwl_find", "move_with_callback", "mpps", "store_jpeg")]],
    ids=lambda p: p.stem)
def test_no_patient_data_by_default(path):
    secrets = _patient_strings(path)
    assert secrets
    page = page_html(model_of(path))
    leaked = [s for s in secrets if s in page]
    assert not leaked


def test_phi_adds_patient_identifiers():
    secrets = _patient_strings(SAMPLE)
    page = page_html(build(SAMPLE, phi=True)[0])
    assert any(s in page for s in secrets)
    assert "contains patient identifiers" in page


# -- the page -----------------------------------------------------------------------


def test_the_model_cannot_close_its_script_block():
    model = {"x": "</script><script>alert(1)</script><!-- & \u2028"}
    text = embed_json(model)
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert unpack(json.loads(text)) == model


def test_packing_lists_of_dicts_loses_nothing_but_nulls():
    model = {"a": [{"x": 1, "y": None}, {"z": [{"k": 1}, {"k": 2, "v": "s"}], "x": 3}],
             "b": [1, None], "c": [{"z": [{"k": 3}]}], "d": []}
    packed = pack(model)
    keys = packed["$schemas"][packed["a"]["$s"]]
    assert keys[0] == "x" and packed["a"]["$rows"][0] == [1]      # most used first, trimmed
    assert unpack(json.loads(json.dumps(packed))) == {
        "a": [{"x": 1}, {"z": [{"k": 1}, {"k": 2, "v": "s"}], "x": 3}], "b": [1, None],
        "c": [{"z": [{"k": 3}]}], "d": []}
    # every association's events share one key list
    packed = pack(model_of(SAMPLE))
    at = packed["$schemas"][packed["associations"]["$s"]].index("events")
    assert len({row[at]["$s"] for row in packed["associations"]["$rows"]}) == 1


def test_the_page_fetches_nothing():
    page = page_html(model_of(SAMPLE))
    assert "<link" not in page and not re.search(r"<[a-z]+[^>]*\ssrc\s*=", page, re.I)
    assert "url(" not in page and "@import" not in page and "fetch(" not in page
    assert "default-src 'none'" in page               # and the browser is told so
    blob = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S)
    assert unpack(json.loads(blob.group(1))) == unpack(json.loads(json.dumps(model_of(SAMPLE))))


# -- the command line ---------------------------------------------------------------


def test_report_command_writes_the_page(cli, tmp_path):
    out = tmp_path / "r.html"
    rc, stdout, _err = cli("report", SAMPLE, "-o", out, "-o", "dicom.heuristic:false", ok=True)
    assert "3 association(s) and 4 finding(s)" in stdout
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_report_needs_an_output(cli):
    rc, _out, err = cli("report", SAMPLE)
    assert rc == 2 and "report needs -o FILE.html" in err


def test_filter_keeps_the_associations_that_match(cli, tmp_path):
    out = tmp_path / "r.html"
    cli("report", SAMPLE, "-Y", 'dicom.assoc.ae.called == "WRONG_AE"', "--output", out, ok=True)
    page = out.read_text(encoding="utf-8")
    m = unpack(json.loads(re.search(r'id="model">(.*?)</script>', page, re.S).group(1)))
    assert [a["called"] for a in m["associations"]] == ["WRONG_AE"]
    assert [f["name"] for f in m["findings"]] == ["dicom.assoc.reject"]
    assert all(ev.get("match") for ev in m["associations"][0]["events"])


def test_tls_with_its_key_log_shows_the_association(cli, tmp_path):
    tls = Path(__file__).parent / "corpus" / "tls"
    out = tmp_path / "tls.html"
    _rc, stdout, _err = cli("report", tls / "tls13_pyn_to_storescp.pcap", "-o", out, "-o",
                            f"tls.keylog_file:{tls / 'tls13_pyn_to_storescp.keys'}", ok=True)
    assert "1 association(s)" in stdout
    _rc, stdout, _err = cli("report", tls / "tls13_pyn_to_storescp.pcap", "-o", out, ok=True)
    assert "0 association(s)" in stdout                 # sealed without the keys


def test_requests_left_unanswered_say_so(tmp_path):
    echo_rq = rg.echo(1)[0]
    steps = [(0, rg.RQ), (1, rg.AC), echo_rq, (0, rg.ABORT)]
    a = build(write(tmp_path, rg.timed(steps)))[0]["associations"][0]
    rq = next(ev for ev in a["events"] if ev["name"] == "C-ECHO-RQ")
    assert rq["unanswered"] == "association ended" and "rsp" not in rq
    steps = [(0, rg.RQ), (1, rg.AC), echo_rq]
    cut = rg.timed(steps)[:-3]                       # no FIN: the capture stops here
    a = build(write(tmp_path, cut, name="cut.pcap"))[0]["associations"][0]
    rq = next(ev for ev in a["events"] if ev["name"] == "C-ECHO-RQ")
    assert a["outcome"] == "open" and rq["unanswered"] == "capture ended"
