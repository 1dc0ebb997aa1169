"""TLS wire layouts (RFC 5246 for 1.2, RFC 8446 for 1.3) as Construct
declarations on the spec runtime, and the parse of one handshake message
into a :class:`Hello`-style summary the session reads.

Only what a troubleshooter needs is declared in detail: the hellos with
their extensions, certificates, certificate requests.  Every other
handshake message is kept as its type and length.
"""

from __future__ import annotations

import struct

from construct import (
    Bytes,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int24ub,
    Optional,
    Prefixed,
    PrefixedArray,
    Struct,
)

from dicomwire.spec import SpecError, doc, parse

RECORD_HEADER = struct.Struct(">BHH")     # type, legacy version, length (RFC 8446 5.1)
MAX_CIPHERTEXT = (1 << 14) + 2048         # RFC 5246 6.2.3 (1.3 allows only +256)

Extension = Struct(
    doc("type" / Int16ub, "RFC 8446 4.2"),
    "data" / Prefixed(Int16ub, GreedyBytes),
)
Extensions = Prefixed(Int16ub, GreedyRange(Extension))

ClientHello = Struct(
    doc("legacy_version" / Int16ub, "RFC 8446 4.1.2"),
    "random" / Bytes(32),
    "session_id" / Prefixed(Int8ub, GreedyBytes),
    "cipher_suites" / Prefixed(Int16ub, GreedyRange(Int16ub)),
    "compression" / Prefixed(Int8ub, GreedyBytes),
    "extensions" / Optional(Extensions),    # absent in old hellos (RFC 5246 7.4.1.2)
)

ServerHello = Struct(
    doc("legacy_version" / Int16ub, "RFC 8446 4.1.3"),
    "random" / Bytes(32),
    "session_id" / Prefixed(Int8ub, GreedyBytes),
    "cipher_suite" / Int16ub,
    "compression" / Int8ub,
    "extensions" / Optional(Extensions),
)

Certificate12 = Struct(   # RFC 5246 7.4.2
    "certificates" / Prefixed(Int24ub, GreedyRange(Prefixed(Int24ub, GreedyBytes))),
)

CertificateEntry = Struct(
    "cert_data" / Prefixed(Int24ub, GreedyBytes),
    "extensions" / Prefixed(Int16ub, GreedyBytes),
)
Certificate13 = Struct(   # RFC 8446 4.4.2
    "context" / Prefixed(Int8ub, GreedyBytes),
    "entries" / Prefixed(Int24ub, GreedyRange(CertificateEntry)),
)

# Extension types read (RFC 8446 4.2, RFC 6066, RFC 7301, RFC 7366, RFC 7627).
EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_SUPPORTED_VERSIONS = 43

# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")

HT_CLIENT_HELLO, HT_SERVER_HELLO, HT_NEW_SESSION_TICKET = 1, 2, 4
HT_ENCRYPTED_EXTENSIONS, HT_CERTIFICATE, HT_CERTIFICATE_REQUEST = 8, 11, 13
HT_SERVER_HELLO_DONE, HT_CERTIFICATE_VERIFY, HT_CLIENT_KEY_EXCHANGE = 14, 15, 16
HT_FINISHED, HT_KEY_UPDATE = 20, 24


class Hello:
    """A ClientHello or ServerHello, reduced to what the session needs."""

    __slots__ = ("version", "random", "session_id", "suites", "extensions",
                 "versions", "server_name", "alpn", "hrr")

    def __init__(self, p, client: bool):
        self.random = bytes(p.random)
        self.session_id = bytes(p.session_id)
        self.suites = list(p.cipher_suites) if client else [p.cipher_suite]
        self.extensions = {e.type: bytes(e.data) for e in (p.extensions or [])}
        self.hrr = not client and self.random == HRR_RANDOM
        self.versions = _supported_versions(self.extensions.get(EXT_SUPPORTED_VERSIONS), client)
        self.version = p.legacy_version
        if not client and self.versions:
            self.version = self.versions[0]
        self.server_name = _server_name(self.extensions.get(EXT_SERVER_NAME)) if client else None
        self.alpn = _alpn(self.extensions.get(EXT_ALPN))


def _supported_versions(data: bytes | None, client: bool) -> list[int]:
    if not data:
        return []
    if not client:                               # the server's choice: one uint16
        return [int.from_bytes(data[:2], "big")] if len(data) >= 2 else []
    n = data[0]
    body = data[1:1 + n]
    return [int.from_bytes(body[i:i + 2], "big") for i in range(0, len(body) - 1, 2)]


def _server_name(data: bytes | None) -> str | None:
    """The host_name of a server_name extension (RFC 6066 3)."""
    if not data or len(data) < 5:
        return None
    i = 2
    while i + 3 <= len(data):
        kind, n = data[i], int.from_bytes(data[i + 1:i + 3], "big")
        if kind == 0:
            return data[i + 3:i + 3 + n].decode("ascii", "replace")
        i += 3 + n
    return None


def _alpn(data: bytes | None) -> list[str]:
    """Protocol names of an ALPN extension (RFC 7301 3.1)."""
    out = []
    if not data or len(data) < 2:
        return out
    i = 2
    while i < len(data):
        n = data[i]
        out.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return out


def parse_hello(body: bytes, client: bool) -> Hello:
    """Raises SpecError on a malformed hello."""
    return Hello(parse(ClientHello if client else ServerHello, body), client)


def parse_certificates(body: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, leaf first."""
    if tls13:
        return [bytes(e.cert_data) for e in parse(Certificate13, body).entries]
    return [bytes(c) for c in parse(Certificate12, body).certificates]


def looks_like_client_hello(payload) -> bool | None:
    """True when ``payload`` starts with a TLS handshake record holding a
    ClientHello (record and handshake headers plausible); None when too few
    bytes arrived to tell; False otherwise."""
    if len(payload) < 6:
        return None if (not payload or payload[0] == 22) else False
    typ, version, length = RECORD_HEADER.unpack_from(payload)
    if typ != 22 or version >> 8 != 3 or not 4 <= length <= MAX_CIPHERTEXT:
        return False
    if payload[5] != HT_CLIENT_HELLO:
        return False
    if len(payload) < 11:
        return None
    hs_len = int.from_bytes(payload[6:9], "big")
    return 38 <= hs_len and payload[9] == 3


def client_hello_alpn(payload) -> list[str] | None:
    """The ALPN protocol names a ClientHello at the start of ``payload``
    offers ([] for none, or when the hello does not fit its first record);
    None while its first record is incomplete."""
    length = RECORD_HEADER.unpack_from(payload)[2]
    if len(payload) < 5 + length:
        return None
    hs_len = int.from_bytes(payload[6:9], "big")
    if 4 + hs_len > length:
        return []
    try:
        return parse_hello(bytes(payload[9:9 + hs_len]), client=True).alpn
    except SpecError:
        return []


__all__ = ["SpecError", "parse_hello", "parse_certificates", "looks_like_client_hello",
           "client_hello_alpn"]
