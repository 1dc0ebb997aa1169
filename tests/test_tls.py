"""DICOM over TLS against the real-peer corpus (tests/corpus/tls, made by
make_tls_corpus.py: pynetdicom and DCMTK with +tls, key logs from the
Python end): what the engine decrypts equals what tshark decrypts and what
the peers sent, exports equal storescp's bit-preserved files, failed
handshakes are explained, clean sessions raise nothing; and hostile TLS
(gaps, wrong keys, impossible lengths, cuts at every frame) gets findings,
never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import capgen
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.tls import TLSLayer
from support import Recorder, dw, record, stored_dataset

HERE = Path(__file__).resolve().parent / "corpus" / "tls"
MANIFEST = __import__("corpus.tls.manifest", fromlist=["MANIFEST"]).MANIFEST
NAMES = sorted(MANIFEST)
SIDES = ("client", "server")


def pcap(name) -> Path:
    return HERE / f"{name}.pcap"


def keys(name) -> list[str]:
    k = HERE / f"{name}.keys"
    return ["-o", f"tls.keylog_file:{k}"] if k.exists() else []


def version_words(v: str) -> str:
    return v.replace("TLSv", "TLS ")


# -- the engine: plaintext per direction ------------------------------------------

class Collect:
    """An inner dissector keeping each direction's plaintext, and the TLS
    layer under it claimed for port 2762 before any pack is asked."""

    def __init__(self):
        self.plain = [bytearray(), bytearray()]
        self.gaps = []
        self.sessions = []

    @hookimpl(tryfirst=True)
    def dicomwire_stream_dissector(self, stream, direction, payload, config, host):
        if stream.server[1] != 2762:
            return None
        self.sessions.append(stream)
        return TLSLayer(stream, host, config, inner=lambda view, d, p: self)

    def data(self, direction, offset, payload, frame, ts):
        assert offset == len(self.plain[direction]) + sum(
            n for d, _, n in self.gaps if d == direction)
        self.plain[direction] += payload

    def gap(self, direction, offset, size, frame, ts):
        self.gaps.append((direction, offset, size))

    def close(self):
        pass


def decrypt(name, keylog=True, path=None):
    col = Collect()
    prefs = {"tls.keylog_file": str(HERE / f"{name}.keys")} if keylog else {}
    config = Config(plugins=["no:dicom"], preferences=prefs)
    result = record(path or pcap(name), col, config=config)
    return col, result


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["keys"]
                                  and MANIFEST[n]["app_data"]])
def test_decrypted_application_data_is_what_the_peers_sent(name):
    entry = MANIFEST[name]
    col, _ = decrypt(name)
    (stream,) = col.sessions
    assert version_words(entry["version"]) in stream.tls.describe()
    for i, side in enumerate(SIDES):
        want = entry["app_data"][side]
        if entry["undecrypted_records"][side]:
            continue                     # the key log holds no secret for it
        got = bytes(col.plain[i])
        assert len(got) == want["bytes"], side
        assert hashlib.sha256(got).hexdigest() == want["sha256"], side
        if entry["plaintext"]:
            assert want["sha256"] == entry["plaintext"][side]["sha256"]


def test_without_keys_nothing_is_decrypted_and_nothing_is_guessed():
    col, _ = decrypt("tls13_pyn_to_storescp", keylog=False)
    assert col.plain == [bytearray(), bytearray()]


# -- the command line ------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_streams_names_the_tls_version_and_suite(cli, name):
    entry = MANIFEST[name]
    rc, out, _ = cli("streams", pcap(name), "-T", "json", ok=True)
    (row,) = json.loads(out)["streams"]
    if entry["version"] is None:
        assert row["tls"] == "TLS (no ServerHello)"
    else:
        assert row["tls"] == f"{version_words(entry['version'])} {entry['suite']}"


def expert_json(cli, name, *extra, with_keys=True):
    args = ["expert", pcap(name), "-T", "json", *(keys(name) if with_keys else ()), *extra]
    rc, out, _ = cli(*args)
    return json.loads(out)["infos"]


def serious(findings):
    return [f for f in findings if f["severity"] in ("warn", "error")]


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["handshake"] == "complete"])
def test_a_complete_session_with_keys_raises_no_warning(cli, name):
    findings = expert_json(cli, name)
    assert serious(findings) == [], serious(findings)
    names = {f["name"] for f in findings}
    if all(MANIFEST[name]["undecrypted_records"][s] == 0 for s in SIDES):
        assert "tls.nokey" not in names


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["handshake"] == "failed"])
def test_a_failed_handshake_is_explained_with_the_alert_and_who_sent_it(cli, name):
    alert = MANIFEST[name]["alert"]
    failed = [f for f in expert_json(cli, name) if f["name"] == "tls.handshake.failed"]
    assert len(failed) == 1, failed
    text = failed[0]["message"]
    assert f"the {alert['sender']} sent alert {alert['name']}" in text
    assert ": " in text.split(alert["name"], 1)[1], "a hint follows"


def test_hints_say_what_to_fix(cli):
    (f,) = [f for f in expert_json(cli, "untrusted_ca") if f["name"] == "tls.handshake.failed"]
    assert "does not trust the server's CA" in f["message"]
    expired = [f for f in expert_json(cli, "expired_cert") if f["name"] == "tls.cert.expired"]
    assert len(expired) == 1 and "renew it" in expired[0]["message"]
    early = [f for f in expert_json(cli, "not_yet_valid_cert")
             if f["name"] == "tls.cert.not_yet_valid"]
    assert len(early) == 1 and "clocks" in early[0]["message"]


def test_certificate_validity_is_read_without_any_key_in_tls12(cli):
    # TLS 1.2 sends certificates in clear: the request for a client
    # certificate and the empty answer are visible without keys.
    names = {f["name"] for f in expert_json(cli, "no_client_cert_tls12", with_keys=False)}
    assert {"tls.client_cert.missing", "tls.handshake.failed"} <= names


def test_no_keys_is_one_note_and_no_warning(cli):
    findings = expert_json(cli, "tls13_nokeys", with_keys=False)
    assert serious(findings) == []
    (note,) = [f for f in findings if f["name"] == "tls.nokey"]
    assert "no key log was given" in note["message"]


def test_bcp195_judges_the_negotiated_suite(cli):
    names = [f["name"] for f in expert_json(cli, "tls12_rsa_cbc_sha_no_etm")]
    assert names.count("tls.suite.discouraged") == 1
    assert "tls.suite.discouraged" not in {f["name"] for f in
                                           expert_json(cli, "tls12_gcm_pyn_to_storescp")}


def test_an_old_version_offered_and_refused(cli):
    (f,) = [f for f in expert_json(cli, "old_version") if f["name"] == "tls.handshake.failed"]
    assert "protocol_version" in f["message"] and "TLS 1.2 or 1.3" in f["message"]


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n].get("files")
                                  and MANIFEST[n]["keys"]])
def test_export_is_byte_identical_to_storescp(cli, tmp_path, name):
    entry = MANIFEST[name]
    cli("export", pcap(name), "-o", tmp_path / "out", *keys(name), ok=True)
    ours = sorted((tmp_path / "out").iterdir())
    assert len(ours) == len(entry["objects"])
    theirs = {o["sop_instance_uid"]: HERE / entry["files"] / o["file"] for o in entry["objects"]}
    for path in ours:
        uid = next(u for u in theirs if u in path.name)
        assert stored_dataset(path) == stored_dataset(theirs[uid]), path.name


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["keys"]
                                  and MANIFEST[n]["app_data"]])
def test_show_decodes_every_pdu_inside(cli, name):
    entry = MANIFEST[name]
    rc, out, _ = cli("show", pcap(name), "-T", "jsonl", *keys(name), ok=True)
    pdus = [json.loads(line) for line in out.splitlines()]
    for side in SIDES:
        if entry["undecrypted_records"][side]:
            continue
        sent = [p["pdu_name"] for p in pdus
                if (p["dst"].endswith(":2762")) == (side == "client")]
        assert sent == entry["app_data"][side]["pdus"], side


def test_show_prints_the_handshake_lines(cli):
    rc, out, _ = cli("show", pcap("untrusted_ca"), *keys("untrusted_ca"), ok=True)
    assert "TLS Client Hello (SNI localhost" in out
    assert "TLS Server Hello (TLS 1.3, TLS_AES_256_GCM_SHA384)" in out
    assert "TLS Alert (fatal, unknown_ca)" in out


def test_annotate_writes_dicom_comments_on_a_tls_capture(cli, tmp_path):
    import pcapng
    out = tmp_path / "a.pcapng"
    cli("annotate", pcap("tls13_pyn_both"), "-o", out, *keys("tls13_pyn_both"), ok=True)
    with open(out, "rb") as f:
        comments = [o for b in pcapng.FileScanner(f) if hasattr(b, "options")
                    for o in b.options.get_all("opt_comment")]
    assert any("C-FIND" in c for c in comments), comments[:5]


# -- hostile TLS -------------------------------------------------------------------

def test_a_lost_segment_costs_only_what_it_carried(cli, tmp_path):
    """A data segment cut out of the first C-STORE: decryption resumes at
    the next record, the later objects export byte for byte."""
    name = "tls13_pyn_to_storescp"
    entry = MANIFEST[name]
    col, _ = decrypt(name)
    big = [i for i, n in enumerate(_frame_sizes(pcap(name)), 1) if n > 4000]
    drop = big[1]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capgen.select_frames(pcap(name), lambda n: n != drop))
    rc, out, _ = cli("expert", cut, "-T", "json", *keys(name))
    names = [f["name"] for f in json.loads(out)["infos"]]
    assert "tls.resync" in names and "tls.decrypt.failed" not in names
    assert "plugin.failed" not in names
    cli("export", cut, "-o", tmp_path / "out", *keys(name))
    exported = sorted((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert 1 <= len(exported) < len(entry["objects"]) + 1
    theirs = {o["sop_instance_uid"]: HERE / entry["files"] / o["file"] for o in entry["objects"]}
    for path in exported:
        uid = next(u for u in theirs if u in path.name)
        assert stored_dataset(path) == stored_dataset(theirs[uid])


def _frame_sizes(path):
    from dicomwire.capture import open_capture
    with open_capture(str(path)) as cap:
        return [len(data) for _n, _ts, _lt, data, _ol, _if in cap]


def test_wrong_keys_are_a_finding_not_a_traceback(cli, tmp_path):
    name = "tls13_pyn_to_storescp"
    real = (HERE / f"{name}.keys").read_text().splitlines()
    wrong = tmp_path / "wrong.keys"
    wrong.write_text("\n".join(
        " ".join(line.split()[:2] + ["ab" * (len(line.split()[2]) // 2)])
        if not line.startswith("#") else line for line in real) + "\n")
    rc, out, _ = cli("expert", pcap(name), "-T", "json", "-o", f"tls.keylog_file:{wrong}")
    names = [f["name"] for f in json.loads(out)["infos"]]
    assert "tls.decrypt.failed" in names and "plugin.failed" not in names


def test_a_missing_key_log_is_a_usage_error(tmp_path):
    p = dw("show", pcap("tls13_nokeys"), "-o", f"tls.keylog_file:{tmp_path}/none")
    assert p.returncode == 2 and "no such file" in p.stderr


def _tls_stream(records_c2s, records_s2c=()):
    pk = capgen.conversation("10.0.0.1", "10.0.0.2", 40000, 2762, records_c2s, records_s2c)
    return capgen.pcap([(i * 1000, capgen.ethernet(p)) for i, p in enumerate(pk)])


def _client_hello_record():
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + b"\x00\x07" + b"\x00\x2b\x00\x03\x02\x03\x04")
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


@pytest.mark.parametrize("what, payload, finding", [
    ("record length past 2^14 + 2048", b"\x17\x03\x03\xff\xff" + bytes(40), "tls.record.malformed"),
    ("handshake claiming 2^24 - 1 bytes", b"\x16\x03\x03\x00\x04\x02\xff\xff\xff",
     "tls.record.malformed"),
    ("a ServerHello cut inside", b"\x16\x03\x03\x00\x08\x02\x00\x00\x04\x03\x03\x00\x00",
     "tls.record.malformed"),
])
def test_hostile_records_get_a_finding(cli, tmp_path, what, payload, finding):
    cap = tmp_path / "h.pcap"
    cap.write_bytes(_tls_stream([_client_hello_record()], [payload]))
    rc, out, err = cli("expert", cap, "-T", "json")
    names = [f["name"] for f in json.loads(out)["infos"]]
    assert finding in names, (what, names)
    assert "plugin.failed" not in names


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tls13_pyn_to_storescp", "tls12_cbc_pyn_to_storescp",
                                  "no_client_cert_tls13"])
def test_every_cut_claims_only_what_the_capture_shows(tmp_path, name):
    """Each capture cut at every frame, from either end: no plugin fails, and
    nothing worse than the uncut capture's own findings appears beyond the
    capture-edge notes (a TLS 1.3 stream seen from the middle is not read)."""
    n = len(_frame_sizes(pcap(name)))
    prefs = {"tls.keylog_file": str(HERE / f"{name}.keys")}
    base = Recorder()
    full = record(pcap(name), base, config=Config(preferences=dict(prefs)))
    allowed = {i.field.name for i in full.expert.infos} | {
        "tls.resync", "tls.nokey", "dicom.capture.partial", "tcp.gap"}
    for cut in range(1, n):
        for keep in (lambda k: k <= cut, lambda k: k > cut):
            path = tmp_path / "cut.pcap"
            path.write_bytes(capgen.select_frames(pcap(name), keep))
            result = record(path, Recorder(), config=Config(preferences=dict(prefs)))
            bad = {i.field.name for i in result.expert.at_least("warn")} - allowed
            assert not bad, (cut, bad)


def test_tls_frames_are_counted_once_per_pdu(cli):
    # several records per segment and records split over segments both occur
    rc, out, _ = cli("show", pcap("tls13_pyn_to_storescp"), *keys("tls13_pyn_to_storescp"),
                     ok=True)
    assert out.count("A-ASSOCIATE request") == 1 and out.count("A-RELEASE response") == 1


# -- selection ------------------------------------------------------------------

def _moved_to_port(name, port, tmp_path) -> Path:
    """The capture with its server port 2762 rewritten to ``port`` (Ethernet,
    IPv4: the TCP ports only; dicomwire does not check TCP checksums)."""
    from dicomwire.capture import open_capture
    frames = []
    with open_capture(str(pcap(name))) as cap:
        for _n, ts, _lt, data, orig, _if in cap:
            b = bytearray(data)
            tcp = 14 + (b[14] & 0x0F) * 4
            for at in (tcp, tcp + 2):
                if b[at:at + 2] == (2762).to_bytes(2, "big"):
                    b[at:at + 2] = port.to_bytes(2, "big")
            frames.append((ts, bytes(b), orig))
    out = tmp_path / f"{name}-{port}.pcap"
    out.write_bytes(capgen.pcap(frames, nanosecond=True))
    return out


def test_a_client_hello_on_any_port_is_read_with_the_heuristic(cli, tmp_path):
    moved = _moved_to_port("tls13_pyn_both", 4242, tmp_path)
    rc, out, _ = cli("show", moved, *keys("tls13_pyn_both"), ok=True)
    assert "TLS Client Hello" in out and "A-ASSOCIATE request WORKSTATION --> PACS" in out
    rc, out, _ = cli("show", moved, "--no-heuristic", *keys("tls13_pyn_both"), ok=True)
    assert out == ""
    rc, out, _ = cli("show", moved, "--no-heuristic", "-o", "dicom.tls.port:4000-4300",
                     *keys("tls13_pyn_both"), ok=True)
    assert "A-ASSOCIATE request" in out


def test_assoc_and_filters_read_inside_tls(cli):
    rc, out, _ = cli("assoc", pcap("tls13_pyn_both"), *keys("tls13_pyn_both"), ok=True)
    assert "Association 0: WORKSTATION <-> PACS" in out and "BEGIN A-ASSOCIATE-RQ" in out
    rc, out, _ = cli("show", "-Y", "dicom.pdu.type == 1", pcap("tls13_pyn_both"),
                     *keys("tls13_pyn_both"), ok=True)
    assert out.count("\n") == 1 and "A-ASSOCIATE request" in out


def test_the_key_log_comes_from_the_config_file_too(tmp_path, monkeypatch):
    (tmp_path / "dicomwire.toml").write_text(
        f'[tls]\nkeylog_file = "{HERE / "tls13_pyn_both.keys"}"\n')
    p = dw("show", pcap("tls13_pyn_both"), ok=True, cwd=tmp_path)
    assert "A-ASSOCIATE request WORKSTATION --> PACS" in p.stdout


def test_old_versions_and_weak_suites_are_judged():
    from dicomwire.tls.session import Session, judge_parameters
    s = Session()
    s.version, s.suite = 0x0301, 0x0005          # TLS 1.0 with RC4
    found = dict(judge_parameters(s))
    assert "RFC 8996" in found["tls.version.old"]
    assert "RC4" in found["tls.suite.forbidden"]
    s.version, s.suite = 0x0304, 0x1301
    assert judge_parameters(s) == []


# -- what a gap in the handshake may never make anyone claim (review of the layer) --

@pytest.mark.parametrize("drop, side", [(8, "client"), (6, "server")])
def test_a_lost_handshake_flight_is_sealed_never_read_as_clear(cli, tmp_path, drop, side):
    """The frame with the client's ChangeCipherSpec (8), or the server's hello
    flight (6), missing: that side's records stay sealed (no ciphertext
    handed to DICOM as PDUs, no handshake 'failed' or malformed claims), and
    what is said is the gap and why nothing was decoded."""
    name = "tls12_gcm_pyn_to_storescp"
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capgen.select_frames(pcap(name), lambda n: n != drop))
    rc, out, _ = cli("expert", cut, "-T", "json", *keys(name))
    infos = json.loads(out)["infos"]
    names = {f["name"] for f in infos}
    assert not names & {"tls.handshake.failed", "tls.record.malformed", "plugin.failed",
                        "dicom.pdu.malformed", "tls.decrypt.failed"}, names
    assert "tcp.gap" in names
    assert any(f["name"] == "tls.nokey" and "missed part of its handshake" in f["message"]
               for f in infos), infos


def test_a_key_that_does_not_fit_is_said_once_as_such(cli, tmp_path):
    name = "tls13_pyn_to_storescp"
    lines = (HERE / f"{name}.keys").read_text().splitlines()
    bad = [line if not line.startswith("CLIENT_TRAFFIC_SECRET_0") else
           line[:-1] + ("0" if line[-1] != "0" else "1") for line in lines]
    (tmp_path / "bad.keys").write_text("\n".join(bad) + "\n")
    rc, out, _ = cli("expert", pcap(name), "-T", "json", "-o",
                     f"tls.keylog_file:{tmp_path / 'bad.keys'}")
    names = [f["name"] for f in json.loads(out)["infos"]]
    assert names.count("tls.decrypt.failed") == 1 and "tls.nokey" not in names


# -- versions and events the corpus cannot show (tests/tlsmem.py, in memory) --

def _key_update_capture(tmp_path, lose_update: bool):
    """TLS 1.3: the client sends 4 records, a KeyUpdate, 4 records under the
    next secret (sealed here: Python's ssl writes no KeyUpdate)."""
    import tlsmem
    from dicomwire.tls import crypto
    from dicomwire.tls.suites import SUITES
    steps = tlsmem.session(tmp_path, app=[(0, b"A" * 100), (1, b"x" * 100)])
    keylog = tmp_path / "keys"
    sec = tlsmem.secrets(keylog)
    suite = SUITES[0x1302]                 # TLS_AES_256_GCM_SHA384, Python's choice here
    first = sec["CLIENT_TRAFFIC_SECRET_0"]
    nxt = crypto.hkdf_expand_label(first, "traffic upd", b"", 48, "sha384")
    before = [tlsmem.sealed13(first, suite, 1 + i, 23, b"B" * 5000) for i in range(4)]
    update = tlsmem.sealed13(first, suite, 5, 22, bytes([24, 0, 0, 1, 0]))
    after = [tlsmem.sealed13(nxt, suite, i, 23, b"C" * 5000) for i in range(4)]
    client_so_far = sum(len(d) for w, d in steps if w == 0) + sum(map(len, before))
    path = tmp_path / "ku.pcap"
    tlsmem.write(path, steps + [(0, r) for r in before + [update] + after], mss=1000,
                 lose_at=client_so_far + 2 if lose_update else None)
    return path, keylog


def test_a_key_update_is_followed(tmp_path):
    path, keylog = _key_update_capture(tmp_path, lose_update=False)
    col = Collect()
    record(path, col, config=Config(plugins=["no:dicom"],
                                    preferences={"tls.keylog_file": str(keylog)}))
    assert bytes(col.plain[0]) == b"A" * 100 + b"B" * 20000 + b"C" * 20000


def test_a_lost_key_update_stops_the_direction_quickly_and_says_why(cli, tmp_path):
    import time
    path, keylog = _key_update_capture(tmp_path, lose_update=True)
    t0 = time.perf_counter()
    rc, out, _ = cli("expert", path, "-T", "json", "-o", f"tls.keylog_file:{keylog}")
    assert time.perf_counter() - t0 < 30
    infos = json.loads(out)["infos"]
    names = {f["name"] for f in infos}
    assert "tls.decrypt.failed" not in names and "plugin.failed" not in names
    assert any(f["name"] == "tls.resync" and "no record authenticated" in f["message"]
               for f in infos), infos


def test_tls11_with_its_key_log_is_not_decrypted_and_says_why(cli, tmp_path):
    import ssl
    import tlsmem
    try:
        steps = tlsmem.session(tmp_path, version=ssl.TLSVersion.TLSv1_1,
                               ciphers="ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0",
                               app=[(0, b"A" * 300), (1, b"x" * 300)])
    except ssl.SSLError as e:
        pytest.skip(f"this OpenSSL will not speak TLS 1.1: {e}")
    if not any(d[:1] == b"\x17" for _w, d in steps):
        pytest.skip("this OpenSSL will not speak TLS 1.1")
    path = tmp_path / "old.pcap"
    tlsmem.write(path, steps)
    rc, out, _ = cli("expert", path, "-T", "json", "-o", f"tls.keylog_file:{tmp_path / 'keys'}")
    infos = json.loads(out)["infos"]
    names = {f["name"] for f in infos}
    assert "tls.decrypt.failed" not in names and "tls.version.old" in names
    assert any(f["name"] == "tls.nokey" and "version or cipher suite" in f["message"]
               for f in infos), infos
