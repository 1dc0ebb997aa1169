"""What tshark sees in a capture of DICOM over TLS: the reference reading of
the TLS corpus (``tests/corpus/tls``), for ``make_tls_corpus.py`` (which
checks every capture it makes) and ``test_tls_corpus.py`` (which checks the
committed ones).  Nothing here uses dicomwire.

Every tshark run decodes TCP port 2762 (PS3.15 Annex B's DICOM-TLS port) as
TLS, with ``tls.keylog_file`` set when a key log is given:

- :func:`handshake`: the TLS facts per capture (versions offered and chosen,
  cipher suite id and IANA name, HelloRetryRequest, server extensions,
  alerts with their sender, TCP streams);
- :func:`follow`: ``-z follow,tls,raw,N``, the decrypted application data of
  one stream, both directions.

tshark 4.0 prints ``follow,tls`` with one direction indented by a tab, but
which one is not fixed: its "node 0" is the sender of the first packet the TLS
tap sees, which is the server when a TLS 1.3 NewSessionTicket comes before
any application data (and its "Node 1" line then reads ``:0``).  So
:func:`follow` tells the directions apart by the decrypted data of each frame
(``data.data`` per ``tcp.srcport``; nothing dissects DICOM inside TLS in
tshark 4.0) and checks that the two readings agree.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

PORT = 2762

VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
            0x0304: "TLSv1.3"}

# TLS alert descriptions (IANA "TLS Alerts" registry), code -> name
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
          43: "unsupported_certificate", 44: "certificate_revoked",
          45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter",
          48: "unknown_ca", 49: "access_denied", 50: "decode_error", 51: "decrypt_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name",
          116: "certificate_required", 120: "no_application_protocol"}
ALERT_CODES = {name: code for code, name in ALERTS.items()}

# ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3): SHA-256("HelloRetryRequest")
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").hexdigest()

EXTENSIONS = {22: "encrypt_then_mac", 23: "extended_master_secret", 35: "session_ticket",
              43: "supported_versions", 51: "key_share", 65281: "renegotiation_info"}


class TsharkError(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def exe() -> str | None:
    """tshark's path, or None when it is not installed."""
    return shutil.which("tshark")


def version() -> str:
    out = subprocess.run([exe(), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.splitlines()[0] if out else "tshark"


def run(pcap: str | Path, keys: str | Path | None, *args: str, port: int = PORT) -> str:
    """Run tshark on *pcap* (TCP *port* as TLS, *keys* as the key log) and
    return its standard output."""
    if exe() is None:
        raise TsharkError("tshark not installed")
    cmd = [exe(), "-n", "-r", str(pcap), "-d", f"tcp.port=={port},tls"]
    if keys is not None:
        cmd += ["-o", f"tls.keylog_file:{keys}"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise TsharkError(f"{' '.join(cmd + list(args))}: rc={res.returncode}\n{res.stderr}")
    return res.stdout


def _ints(field: str) -> list[int]:
    return [int(v, 0) for v in field.split(",") if v]


@dataclasses.dataclass
class Handshake:
    """The TLS facts tshark reports about one capture."""
    streams: int                 # number of TCP streams
    offered: list[str]           # versions in the ClientHello (supported_versions, else legacy)
    version: str | None          # chosen by the server (None: no ServerHello)
    suite_id: int | None         # the ServerHello's cipher suite
    suite: str | None            # its name as tshark prints it (IANA)
    hello_retry: bool            # a TLS 1.3 HelloRetryRequest came first
    server_extensions: list[int]  # extension types of the ServerHello(s) (and 1.3 EE if decrypted)
    alerts: list[tuple[str, str]]  # (sender "client"/"server", alert name) in order
    handshake_types: dict        # "client"/"server" -> handshake message types in order
    undecrypted: dict            # "client"/"server" -> TLS 1.3 records not decrypted
    client_random: str | None    # of the first ClientHello, hex (what key log lines name)

    def facts(self) -> dict:
        return dataclasses.asdict(self)


def handshake(pcap: str | Path, keys: str | Path | None = None, port: int = PORT) -> Handshake:
    """The handshake of the (first) TLS session in *pcap* as tshark reads it
    (with the key log *keys*: TLS 1.3's encrypted handshake messages and
    alerts are only visible with it)."""
    fields = ["frame.number", "tcp.stream", "tcp.srcport", "tls.handshake.type",
              "tls.handshake.version", "tls.handshake.ciphersuite",
              "tls.handshake.extensions.supported_version", "tls.handshake.random",
              "tls.handshake.extension.type", "tls.alert_message.desc",
              "tls.record.length", "tls.record.content_type"]
    out = run(pcap, keys, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
              *sum((["-e", f] for f in fields), []), port=port)
    streams = set()
    offered: list[str] = []
    client_random = None
    version = suite_id = None
    hello_retry = False
    exts: list[int] = []
    alerts: list[tuple[str, str]] = []
    types: dict[str, list[int]] = {"client": [], "server": []}
    undecrypted = {"client": 0, "server": 0}
    for line in out.splitlines():
        cols = (line.split("\t") + [""] * len(fields))[:len(fields)]
        _, stream, sport, htype, hver, suites, supv, rand, ext, alert, rlen, rtype = cols
        if stream:
            streams.add(int(stream))
        if not sport:
            continue
        side = "server" if int(sport) == port else "client"
        htypes = _ints(htype)
        types[side] += htypes
        # a TLS 1.3 record tshark decrypts gets its inner content type
        undecrypted[side] += len(_ints(rlen)) - len(_ints(rtype))
        if side == "client" and 1 in htypes and client_random is None:
            client_random = rand.split(",")[0].replace(":", "") or None
            sv = _ints(supv)
            offered = [VERSIONS.get(v, hex(v)) for v in (sv or _ints(hver)[:1])
                       if (v & 0x0F0F) != 0x0A0A]     # GREASE
        if side == "server" and 2 in htypes:
            randoms = [r.replace(":", "") for r in rand.split(",") if r]
            hello_retry = hello_retry or HRR_RANDOM in randoms
            chosen = _ints(suites)
            if chosen:
                suite_id = chosen[-1]
            sv = _ints(supv)
            v = sv[-1] if sv else (_ints(hver)[0] if hver else None)
            version = VERSIONS.get(v, hex(v)) if v is not None else None
            exts += _ints(ext)
        for code in _ints(alert):
            alerts.append((side, ALERTS.get(code, str(code))))
    suite = None
    if suite_id is not None:
        text = run(pcap, keys, "-Y", f"tls.handshake.type == 2 && tcp.srcport == {port}",
                   "-O", "tls", port=port)
        names = re.findall(r"Cipher Suite: (\S+) \((0x[0-9a-fA-F]{4})\)", text)
        suite = next((n for n, i in reversed(names) if int(i, 16) == suite_id), None)
    return Handshake(len(streams), offered, version, suite_id, suite, hello_retry,
                     sorted(set(exts)), alerts, types, undecrypted, client_random)


def follow(pcap: str | Path, keys: str | Path, stream: int = 0,
           port: int = PORT) -> dict[str, bytes]:
    """The decrypted application data of TCP stream *stream*, per direction:
    ``{"client": bytes, "server": bytes}`` (the bytes each side sent), from
    ``-z follow,tls,raw``; the directions are told apart (and checked) by the
    decrypted data of each frame."""
    text = run(pcap, keys, "-q", "-z", f"follow,tls,raw,{stream}", port=port)
    body = text.split("=" * 67)
    if len(body) < 3:
        raise TsharkError(f"unexpected follow output:\n{text[:500]}")
    chunks: dict[bool, bytearray] = {False: bytearray(), True: bytearray()}
    for line in body[1].splitlines():
        if re.fullmatch(r"\t?[0-9a-fA-F]+", line) and len(line.strip()) % 2 == 0:
            chunks[line.startswith("\t")] += bytes.fromhex(line.strip())
    frames = run(pcap, keys, "-Y", f"tcp.stream == {stream} && data.data", "-T", "fields",
                 "-e", "tcp.srcport", "-e", "data.data", port=port)
    sent: dict[str, bytearray] = {"client": bytearray(), "server": bytearray()}
    for line in frames.splitlines():
        sport, _, data = line.partition("\t")
        side = "server" if int(sport) == port else "client"
        for part in data.split(","):
            sent[side] += bytes.fromhex(part.replace(":", ""))
    plain, tabbed = bytes(chunks[False]), bytes(chunks[True])
    if (plain, tabbed) == (bytes(sent["client"]), bytes(sent["server"])):
        return {"client": plain, "server": tabbed}
    if (plain, tabbed) == (bytes(sent["server"]), bytes(sent["client"])):
        return {"client": tabbed, "server": plain}
    raise TsharkError(f"{pcap}: follow,tls does not match the decrypted frames "
                      f"(follow {len(plain)}+{len(tabbed)} bytes, frames "
                      f"{len(sent['client'])}+{len(sent['server'])})")


KEYLOG_LABELS = {"CLIENT_RANDOM", "RSA", "CLIENT_EARLY_TRAFFIC_SECRET",
                 "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                 "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET"}


def keylog(path: str | Path) -> list[tuple[str, str, str]]:
    """The (label, client random or RSA id, secret) lines of an NSS key log
    (``#`` comments and blank lines skipped); raises ValueError on a line
    that is not one."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if (len(parts) != 3 or parts[0] not in KEYLOG_LABELS
                or not all(re.fullmatch(r"[0-9a-fA-F]+", p) for p in parts[1:])
                or len(parts[1]) != (16 if parts[0] == "RSA" else 64)):
            raise ValueError(f"{path}:{n}: not an NSS key log line: {line[:80]}")
        out.append((parts[0], parts[1].lower(), parts[2].lower()))
    return out


def digest(data: bytes) -> dict:
    """What the manifest records of a direction's bytes."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


PDU_TYPES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
             5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}


def pdus(data: bytes) -> list[str]:
    """The DICOM upper layer PDUs in one direction's decrypted bytes (type
    and length only), e.g. ``["A-ASSOCIATE-RQ", "P-DATA-TF", ...]``; a
    trailing partial PDU is ``"partial"``."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 6 > len(data):
            out.append("partial")
            break
        length = int.from_bytes(data[pos + 2:pos + 6], "big")
        if pos + 6 + length > len(data):
            out.append("partial")
            break
        out.append(PDU_TYPES.get(data[pos], f"type 0x{data[pos]:02x}"))
        pos += 6 + length
    return out
