"""TLS sessions between two Python ``ssl`` ends in memory (``MemoryBIO``),
written as a TCP capture with the client's key log: for TLS versions, suites
and events the real-peer corpus cannot show (TLS 1.1, a KeyUpdate, a
segment lost at a chosen byte). No network at all."""

from __future__ import annotations

import ssl
import struct
import time
from pathlib import Path

import capgen
from tlscerts import make_pki


def session(tmp: Path, *, version=ssl.TLSVersion.TLSv1_3, ciphers=None, app=()):
    """The records each side wrote, as ``[(direction, bytes)]`` (0: client),
    for a handshake and then ``app``: ``(direction, payload)`` steps. The
    client's key log is ``tmp/"keys"``."""
    pki = make_pki(tmp / "pki")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.keylog_filename = str(tmp / "keys")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    for ctx in (client, server):
        ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.minimum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c = client.wrap_bio(bios[0], bios[1], server_side=False)
    s = server.wrap_bio(bios[2], bios[3], server_side=True)
    steps: list = []

    def pump():
        while True:
            out_c, out_s = bios[1].read(), bios[3].read()
            if not (out_c or out_s):
                return
            if out_c:
                steps.append((0, out_c))
                bios[2].write(out_c)
            if out_s:
                steps.append((1, out_s))
                bios[0].write(out_s)

    for _ in range(10):
        for end in (c, s):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    for direction, payload in app:
        (c if direction == 0 else s).write(payload)
        pump()
        reader = s if direction == 0 else c
        try:
            while reader.read(65536):
                pass
        except ssl.SSLWantReadError:
            pass
        pump()
    return steps


def write(path: Path, steps, *, mss=1448, lose_at=None) -> None:
    """The steps as one TCP connection (10.0.0.1:40000 -> 10.0.0.2:2762) in
    segments of ``mss`` bytes; ``lose_at``: the client's stream offset whose
    segment the capture lost."""
    mk, cl, sv = capgen.ipv4_tcp, "10.0.0.1", "10.0.0.2"
    c, s = 1000, 5000
    pk = [mk(cl, sv, 40000, 2762, c, 0, capgen.SYN),
          mk(sv, cl, 2762, 40000, s, c + 1, capgen.SYN | capgen.ACK)]
    c, s, sent = c + 1, s + 1, 0
    for direction, data in steps:
        for i in range(0, len(data), mss):
            part = data[i:i + mss]
            if direction == 0:
                if lose_at is None or not sent <= lose_at < sent + len(part):
                    pk.append(mk(cl, sv, 40000, 2762, c, s, capgen.PSH | capgen.ACK, part))
                c, sent = c + len(part), sent + len(part)
            else:
                pk.append(mk(sv, cl, 2762, 40000, s, c, capgen.PSH | capgen.ACK, part))
                s += len(part)
    pk += [mk(cl, sv, 40000, 2762, c, s, capgen.FIN | capgen.ACK),
           mk(sv, cl, 2762, 40000, s, c + 1, capgen.FIN | capgen.ACK),
           mk(cl, sv, 40000, 2762, c + 1, s + 1, capgen.ACK)]
    t0 = time.time_ns()               # the test certificates are valid now
    path.write_bytes(capgen.pcap([(t0 + i * 10**6, capgen.ethernet(p))
                                  for i, p in enumerate(pk)]))


def secrets(keylog: Path) -> dict[str, bytes]:
    out = {}
    for line in keylog.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[0]] = bytes.fromhex(parts[2])
    return out


def sealed13(secret: bytes, suite, seq: int, ctype: int, data: bytes) -> bytes:
    """One TLS 1.3 record sealed under a traffic secret (RFC 8446 5.2), with
    AES-GCM: for records Python's ssl will not write (a KeyUpdate)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dicomwire.tls import crypto
    c = crypto.cipher13(suite, secret)
    inner = data + bytes([ctype])
    header = struct.pack(">BHH", 23, 0x0303, len(inner) + 16)
    nonce = (int.from_bytes(c.iv, "big") ^ seq).to_bytes(12, "big")
    return header + AESGCM(c.key).encrypt(nonce, inner, header)
