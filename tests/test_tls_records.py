"""The TLS layer's pieces against records sealed here with ``cryptography``
per the RFCs: key derivation, each record protection, key log parsing,
ClientHello detection, and hostile records."""

import hashlib
import hmac
import os
import struct

import pytest

from dicomwire.tls import crypto, keylog, wire
from dicomwire.tls.suites import SUITES, bcp195_verdict, suite_name

AESGCM = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead").AESGCM
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402


def test_prf12_matches_the_published_tls12_vector():
    # The widely used P_SHA256 test vector (IETF TLS WG mailing list, 2009).
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    out = crypto.prf12(secret, b"test label", seed, 100, "sha256")
    assert out[:16].hex() == "e3f229ba727be17b8d122620557cd453"


def test_hkdf_expand_label_matches_rfc8448():
    # RFC 8448 3 (simple 1-RTT): server handshake traffic key and IV.
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert crypto.hkdf_expand_label(secret, "key", b"", 16, "sha256").hex() == \
        "3fce516009c21727d0f2e4e86ee403bc"
    assert crypto.hkdf_expand_label(secret, "iv", b"", 12, "sha256").hex() == \
        "5d313eb2671276ee13000b30"


def _aad(seq, ctype, n):
    return struct.pack(">QBHH", seq, ctype, 0x0303, n)


def test_tls12_gcm_records_open_in_sequence_and_not_out_of_it():
    suite = SUITES[0xC02F]
    master, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    client, _ = crypto.keys12(suite, master, cr, sr)
    sealer = AESGCM(client.key)
    records = []
    for seq, text in enumerate((b"first", b"second record")):
        explicit = struct.pack(">Q", 1000 + seq)
        body = explicit + sealer.encrypt(client.iv + explicit, text, _aad(seq, 23, len(text)))
        records.append((body, text))
    assert client.open(23, 0x0303, records[0][0]) == (23, b"first")
    assert client.open(23, 0x0303, records[1][0]) == (23, b"second record")
    with pytest.raises(crypto.DecryptError):
        client.open(23, 0x0303, records[0][0])          # sequence number 2: does not fit


def test_tls12_chacha_nonce_is_the_iv_xor_the_sequence():
    suite = SUITES[0xCCA8]
    client, _ = crypto.keys12(suite, os.urandom(48), os.urandom(32), os.urandom(32))
    seq = 7
    nonce = bytes(a ^ b for a, b in zip(client.iv, b"\0" * 4 + struct.pack(">Q", seq)))
    body = ChaCha20Poly1305(client.key).encrypt(nonce, b"dicom", _aad(seq, 23, 5))
    assert client.open(23, 0x0303, body, seq=seq) == (23, b"dicom")
    assert client.seq == seq + 1


@pytest.mark.parametrize("etm", [False, True])
def test_tls12_cbc_with_and_without_encrypt_then_mac(etm):
    suite = SUITES[0xC027]                      # ECDHE-RSA-AES128-CBC-SHA256
    client, _ = crypto.keys12(suite, os.urandom(48), os.urandom(32), os.urandom(32))
    client.encrypt_then_mac = etm
    text, iv = b"A-ASSOCIATE-RQ bytes", os.urandom(16)

    def cbc(plain):
        pad = 16 - (len(plain) + 1) % 16
        plain += bytes([pad]) * (pad + 1)
        e = Cipher(algorithms.AES(client.key), modes.CBC(iv)).encryptor()
        return iv + e.update(plain) + e.finalize()

    if etm:
        sealed = cbc(text)
        body = sealed + hmac.new(client.mac_key, _aad(0, 23, len(sealed)) + sealed,
                                 hashlib.sha256).digest()
    else:
        mac = hmac.new(client.mac_key, _aad(0, 23, len(text)) + text, hashlib.sha256).digest()
        body = cbc(text + mac)
    assert client.open(23, 0x0303, body) == (23, text)
    damaged = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(crypto.DecryptError):
        client.open(23, 0x0303, damaged, seq=0)


def test_tls13_record_inner_type_padding_and_key_update():
    suite = SUITES[0x1301]
    secret = os.urandom(32)
    cipher = crypto.cipher13(suite, secret)
    header = bytes([23, 3, 3])

    def seal(c, seq, inner):
        nonce = (int.from_bytes(c.iv, "big") ^ seq).to_bytes(12, "big")
        n = len(inner) + 16
        return AESGCM(c.key).encrypt(nonce, inner, header + n.to_bytes(2, "big"))

    assert cipher.open(23, 0x0303, seal(cipher, 0, b"data\x17\0\0\0")) == (23, b"data")
    assert cipher.open(23, 0x0303, seal(cipher, 1, b"\x01\x00\x15")) == (21, b"\x01\x00")
    nxt = cipher.updated()
    assert nxt.seq == 0 and nxt.key != cipher.key
    assert nxt.open(23, 0x0303, seal(nxt, 0, b"after\x17")) == (23, b"after")
    with pytest.raises(crypto.DecryptError):
        nxt.open(23, 0x0303, b"\0" * 16)              # shorter than tag plus type


def test_keylog_reads_nss_lines_and_counts_damaged_ones():
    r = "aa" * 32
    text = (f"# comment\nCLIENT_RANDOM {r} {'11' * 48}\n"
            f"CLIENT_TRAFFIC_SECRET_0 {r} {'22' * 32}\nEXPORTER_SECRET {r} {'33' * 32}\n"
            f"CLIENT_RANDOM zz {'11' * 48}\nbroken line\nCLIENT_RANDOM {'bb' * 3} {'11' * 48}\n")
    log = keylog.KeyLog.parse(text)
    got = log.secrets(bytes.fromhex(r))
    assert got["CLIENT_RANDOM"] == b"\x11" * 48
    assert got["CLIENT_TRAFFIC_SECRET_0"] == b"\x22" * 32
    assert "EXPORTER_SECRET" not in got
    assert log.bad_lines == 3 and len(log) == 1


def test_keylog_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(keylog.KeyLogError, match="cannot read the TLS key log"):
        keylog.KeyLog.load(str(tmp_path / "absent.keys"))


def _client_hello(alpn=None, sni="pacs"):
    exts = b""
    name = sni.encode()
    exts += struct.pack(">HH", 0, len(name) + 5) + struct.pack(">HBH", len(name) + 3, 0,
                                                                len(name)) + name
    if alpn is not None:
        names = b"".join(bytes([len(a)]) + a.encode() for a in alpn)
        exts += struct.pack(">HHH", 16, len(names) + 2, len(names)) + names
    exts += struct.pack(">HHB", 43, 5, 4) + b"\x03\x04\x03\x03"
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack(">H", 4) + b"\x13\x01\x13\x02"
            + b"\x01\x00" + struct.pack(">H", len(exts)) + exts)
    hs = bytes([1]) + len(body).to_bytes(3, "big") + body
    return bytes([22, 3, 1]) + len(hs).to_bytes(2, "big") + hs


def test_client_hello_detection_and_alpn():
    rec = _client_hello()
    assert wire.looks_like_client_hello(rec) is True
    assert wire.looks_like_client_hello(rec[:3]) is None
    assert wire.looks_like_client_hello(b"\x01\x00\x00\x00\x00\xcd") is False   # A-ASSOCIATE-RQ
    assert wire.client_hello_alpn(rec) == []
    assert wire.client_hello_alpn(rec[:40]) is None
    assert wire.client_hello_alpn(_client_hello(["h2", "http/1.1"])) == ["h2", "http/1.1"]
    hello = wire.parse_hello(rec[9:], client=True)
    assert hello.server_name == "pacs" and hello.versions == [0x0304, 0x0303]
    assert hello.suites == [0x1301, 0x1302]


def test_suite_names_and_bcp195_verdicts():
    assert suite_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert suite_name(0xABCD) == "0xABCD"
    assert bcp195_verdict(0xC02F) is None
    assert bcp195_verdict(0x1301) is None
    assert bcp195_verdict(0x0005)[0] == "must"           # RC4
    assert bcp195_verdict(0x000A)[0] == "should"         # 3DES
    assert bcp195_verdict(0x009C)[0] == "should"         # static RSA
