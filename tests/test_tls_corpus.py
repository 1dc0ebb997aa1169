"""The DICOM-over-TLS capture corpus (issue 15) is sound.

Captures, NSS key logs and storescp's files in ``tests/corpus/tls`` (made
by ``tests/corpus/make_tls_corpus.py``, ``make tls-corpus``), what is true
about each in its generated ``manifest.py``.  These tests need no TLS
support in dicomwire (there is none yet); they check the fixtures
themselves, so that the decryption feature can trust them:

- every manifest entry has its files, and nothing else is in the folder;
  each capture is small, each key log is an NSS key log, each stored file
  is the object the manifest names;
- with tshark (skipped without it): the handshake facts (versions, suite,
  HelloRetryRequest, extensions, alerts and their senders, handshake
  messages, TCP streams) are what tshark reports; the key log belongs to
  the capture's ClientHello and decrypts it: the application data of each
  direction (``-z follow,tls,raw,0``) has the manifest's length, SHA-256
  and DICOM PDUs; without the key log nothing decrypts; and the data sets
  of the decrypted C-STOREs are, byte for byte, the ones storescp stored.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import pydicom
import pytest

import tshark_tls

TLS_DIR = Path(__file__).resolve().parent / "corpus" / "tls"
MAX_BYTES = 200_000


def _load_manifest():
    # by path, under its own name: tests/corpus/manifest.py is "manifest"
    spec = importlib.util.spec_from_file_location("tls_corpus_manifest",
                                                  TLS_DIR / "manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MANIFEST


MANIFEST = _load_manifest()
NAMES = list(MANIFEST)
WITH_KEYS = [n for n in NAMES if MANIFEST[n]["keys"]]
STORED = [n for n in NAMES if MANIFEST[n]["files"] and MANIFEST[n]["keys"]]

needs_tshark = pytest.mark.skipif(tshark_tls.exe() is None, reason="tshark not installed")


def pcap(name: str) -> Path:
    return TLS_DIR / f"{name}.pcap"


def keys(name: str) -> Path | None:
    return TLS_DIR / f"{name}.keys" if MANIFEST[name]["keys"] else None


@functools.lru_cache(maxsize=None)
def handshake(name: str, with_keys: bool = True) -> tshark_tls.Handshake:
    return tshark_tls.handshake(pcap(name), keys(name) if with_keys else None)


@functools.lru_cache(maxsize=None)
def follow(name: str, with_keys: bool = True) -> dict[str, bytes]:
    return tshark_tls.follow(pcap(name), keys(name) if with_keys else None)


# --------------------------------------------------------------------------
# The files, without tshark
# --------------------------------------------------------------------------

def test_the_folder_holds_the_manifest_and_nothing_else():
    expected = {"manifest.py"}
    for name, entry in MANIFEST.items():
        expected.add(f"{name}.pcap")
        if entry["keys"]:
            expected.add(f"{name}.keys")
        if entry["files"]:
            assert entry["files"] == f"{name}.files"
            expected.add(entry["files"])
    present = {p.name for p in TLS_DIR.iterdir() if p.name != "__pycache__"}
    assert present == expected


@pytest.mark.parametrize("name", NAMES)
def test_capture_is_a_small_classic_pcap(name):
    data = pcap(name).read_bytes()
    assert len(data) < MAX_BYTES
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")   # microsecond pcap


@pytest.mark.parametrize("name", WITH_KEYS)
def test_key_log_is_an_nss_key_log(name):
    entry = MANIFEST[name]
    lines = tshark_tls.keylog(keys(name))
    assert sorted({label for label, _, _ in lines}) == entry["keylog_labels"]
    randoms = {r for label, r, _ in lines if label != "RSA"}
    assert len(randoms) == 1, "one ClientHello, one client random"
    if entry["version"] == "TLSv1.3":   # (OpenSSL's client logs its own handshake
        # secret only when it writes with it: not when it rejects the server's flight)
        assert "SERVER_HANDSHAKE_TRAFFIC_SECRET" in entry["keylog_labels"]
    else:
        assert "CLIENT_RANDOM" in entry["keylog_labels"]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_entry_is_consistent(name):
    e = MANIFEST[name]
    assert e["server_port"] == tshark_tls.PORT and e["tcp_streams"] == 1
    assert (e["keylog_by"] is None) == (not e["keys"])
    assert e["keylog_by"] in (None, "client", "server")
    assert "pynetdicom" in (e["client"], e["server"])
    if e["keys"]:
        assert e["keylog_by"] == ("client" if e["client"] == "pynetdicom" else "server")
        assert e["app_data"] == e["plaintext"], "tshark decrypts what the Python end had"
    else:
        assert e["app_data"] is None
    assert (e["handshake"] == "failed") == (e["alert"] is not None)
    if e["alert"]:
        a = e["alert"]
        assert tshark_tls.ALERT_CODES[a["name"]] == a["code"]
        assert [a["sender"], a["name"]] in e["alerts"]
        assert not e["objects"] and e["plaintext"]["server"]["bytes"] == 0
        assert e["plaintext"]["client"]["pdus"] in ([], ["A-ASSOCIATE-RQ"])
    else:
        assert e["plaintext"]["client"]["pdus"][0] == "A-ASSOCIATE-RQ"
        assert e["plaintext"]["server"]["pdus"][0] == "A-ASSOCIATE-AC"
        assert e["plaintext"]["client"]["pdus"][-1] == "A-RELEASE-RQ"
        assert e["plaintext"]["server"]["pdus"][-1] == "A-RELEASE-RP"
    if e["version"] == "TLSv1.3":
        assert e["suite_id"] >> 8 == 0x13 and e["encrypt_then_mac"] is None
    elif e["version"] == "TLSv1.2":
        assert e["suite_id"] >> 8 != 0x13 and e["encrypt_then_mac"] is not None
    else:
        assert e["suite"] is None and e["suite_id"] is None


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["files"]])
def test_stored_files_are_the_objects(name):
    entry = MANIFEST[name]
    folder = TLS_DIR / entry["files"]
    assert {p.name for p in folder.iterdir()} == {o["file"] for o in entry["objects"]}
    for obj in entry["objects"]:
        data = (folder / obj["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == obj["file_sha256"]
        ds = pydicom.dcmread(folder / obj["file"])
        assert ds.SOPInstanceUID == obj["sop_instance_uid"]
        assert ds.SOPClassUID == obj["sop_class_uid"]


# --------------------------------------------------------------------------
# What tshark sees
# --------------------------------------------------------------------------

HANDSHAKE_NAMES = {1: "client_hello", 2: "server_hello", 4: "new_session_ticket",
                   8: "encrypted_extensions", 11: "certificate", 12: "server_key_exchange",
                   13: "certificate_request", 14: "server_hello_done",
                   15: "certificate_verify", 16: "client_key_exchange", 20: "finished"}


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tshark_reports_the_manifest_handshake(name):
    e, hs = MANIFEST[name], handshake(name)
    assert hs.streams == e["tcp_streams"]
    assert hs.offered == e["offered"]
    assert (hs.version, hs.suite, hs.suite_id) == (e["version"], e["suite"], e["suite_id"])
    assert hs.hello_retry == e["hello_retry"]
    if hs.version == "TLSv1.2":
        assert (22 in hs.server_extensions) == e["encrypt_then_mac"]
        assert (23 in hs.server_extensions) == e["extended_master_secret"]
    assert [list(a) for a in hs.alerts] == e["alerts"]
    assert {side: [HANDSHAKE_NAMES.get(t, str(t)) for t in types]
            for side, types in hs.handshake_types.items()} == e["handshake_messages"]
    assert hs.undecrypted == e["undecrypted_records"]
    if e["keys"]:
        randoms = {r for label, r, _ in tshark_tls.keylog(keys(name)) if label != "RSA"}
        assert randoms == {hs.client_random}, "the key log is this capture's"


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["alert"]])
def test_failure_alert_needs_the_key_log_only_when_encrypted(name):
    alert = MANIFEST[name]["alert"]
    clear = handshake(name, with_keys=False)
    assert ((alert["sender"], alert["name"]) in clear.alerts) == (not alert["encrypted"])


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_KEYS)
def test_key_log_decrypts_the_application_data(name):
    got = follow(name)
    for side in ("client", "server"):
        want = MANIFEST[name]["app_data"][side]
        assert tshark_tls.digest(got[side]) == {"bytes": want["bytes"], "sha256": want["sha256"]}
        assert tshark_tls.pdus(got[side]) == want["pdus"]


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_nothing_decrypts_without_the_key_log(name):
    assert follow(name, with_keys=False) == {"client": b"", "server": b""}
    if MANIFEST[name]["version"] == "TLSv1.3":   # all after the ServerHello is encrypted
        clear = handshake(name, with_keys=False)
        assert set(clear.handshake_types["client"]) == {1}
        assert set(clear.handshake_types["server"]) == {2}
        assert clear.undecrypted["server"] > 0


def data_sets(stream: bytes) -> list[bytes]:
    """The data sets (not commands) carried by the P-DATA-TF PDUs of one
    direction, each its PDV fragments joined."""
    out, pos, current = [], 0, bytearray()
    while pos + 6 <= len(stream):
        pdu_type, length = stream[pos], int.from_bytes(stream[pos + 2:pos + 6], "big")
        body = stream[pos + 6:pos + 6 + length]
        pos += 6 + length
        if pdu_type != 4:
            continue
        at = 0
        while at + 6 <= len(body):
            item = int.from_bytes(body[at:at + 4], "big")
            header, value = body[at + 5], body[at + 6:at + 4 + item]
            at += 4 + item
            if header & 1:            # a command fragment
                continue
            current += value
            if header & 2:            # the last fragment of the data set
                out.append(bytes(current))
                current = bytearray()
    return out


def file_data_set(path: Path) -> bytes:
    """A Part 10 file's data set bytes: after the preamble, DICM and the
    file meta group (its group length says where it ends)."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM" and data[132:136] == b"\x02\x00\x00\x00"
    assert data[136:138] == b"UL"
    meta_length = int.from_bytes(data[140:144], "little")
    return data[144 + meta_length:]


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("name", STORED)
def test_decrypted_data_sets_are_what_storescp_stored(name):
    """storescp +B wrote each data set as it came off the wire: the key log
    and the decrypted stream are the whole truth for exports."""
    entry = MANIFEST[name]
    sent = data_sets(follow(name)["client"])
    stored = [file_data_set(TLS_DIR / entry["files"] / o["file"]) for o in entry["objects"]]
    assert sent == stored
