"""What one TLS connection negotiated, and the findings its handshake and
alerts raise (plain hints for the people who must fix them).

:class:`Session` is kept on the stream (``stream.tls``): ``streams`` and
``show`` say from it which streams are TLS, with version and suite.  The
record layer (:mod:`dicomwire.tls.layer`) feeds it every handshake message
and alert it can read.
"""

from __future__ import annotations

from dicomwire.tls import wire
from dicomwire.tls.suites import ALERTS, HANDSHAKE_TYPES, bcp195_verdict, suite_name, version_name

SIDE = ("client", "server")

# Alert -> what to do about it, by who sent it (RFC 8446 6.2 meanings).
_HINTS = {
    ("unknown_ca", 0): "the client does not trust the server's CA: import the CA that signed "
                       "the server certificate into the client's trust store",
    ("unknown_ca", 1): "the server does not trust the client's CA: import the CA that signed "
                       "the client certificate into the server's trust store",
    ("certificate_expired", 0): "the server certificate has expired (or the client's clock is "
                                "wrong): renew the server certificate",
    ("certificate_expired", 1): "the client certificate has expired (or the server's clock is "
                                "wrong): renew the client certificate",
    ("bad_certificate", 0): "the client rejected the server certificate (corrupt, or its "
                            "signature or use does not check out): reissue it",
    ("bad_certificate", 1): "the server rejected the client certificate (corrupt, wrong key "
                            "usage, or not signed as claimed): reissue it",
    ("certificate_unknown", 0): "the client could not accept the server certificate (often: "
                                "its host name or IP is not in the certificate, or the chain "
                                "is incomplete)",
    ("certificate_unknown", 1): "the server could not accept the client certificate",
    ("certificate_required", 1): "the server requires a client certificate and the client "
                                 "sent none: configure the client's certificate and key",
    ("handshake_failure", 0): "no acceptable parameters: no common cipher suite or group, or "
                              "the server demanded something the client cannot give",
    ("handshake_failure", 1): "no acceptable parameters: no common cipher suite or group (both "
                              "sides' TLS profiles must share one), or a required client "
                              "certificate is missing",
    ("protocol_version", 0): "no common TLS version: enable TLS 1.2 or 1.3 on both sides",
    ("protocol_version", 1): "no common TLS version: the client offers only versions the "
                             "server refuses; enable TLS 1.2 or 1.3 on the client",
    ("insufficient_security", 1): "the server requires stronger cipher suites than the client "
                                  "offers",
    ("decrypt_error", 0): "a handshake signature or Finished check failed (wrong key for the "
                          "certificate, or a middlebox altered the handshake)",
    ("decrypt_error", 1): "a handshake signature or Finished check failed (the client's key "
                          "does not match its certificate, or a middlebox altered it)",
    ("unrecognized_name", 1): "the server has no certificate for the host name the client "
                              "asked for (SNI)",
    ("access_denied", 1): "the server refused this client after checking its certificate",
}


def alert_hint(name: str, sender: int) -> str:
    return _HINTS.get((name, sender), "")


class Session:
    """One TLS connection: what was offered, what was chosen, what failed."""

    def __init__(self):
        self.offered_versions: list[int] = []
        self.offered_suites: list[int] = []
        self.version: int | None = None
        self.suite: int | None = None
        self.server_name: str | None = None
        self.alpn: list[str] = []
        self.client_random: bytes | None = None
        self.server_random: bytes | None = None
        self.resumed = False
        self.encrypt_then_mac = False
        self.certificates: list = []            # server chain: certs.CertInfo, leaf first
        self.client_certificates: list | None = None   # None: not seen
        self.cert_requested = False
        self.finished = [False, False]          # each side's Finished seen
        self.app_data = [0, 0]                  # application bytes (plaintext, or sealed)
        self.alerts: list[tuple] = []           # (sender, level, name, frame)
        self.decrypted = False
        self.failed: str | None = None          # why the handshake failed, when it did
        self.late = False                       # the capture began after the handshake

    @property
    def tls13(self) -> bool:
        return self.version == 0x0304

    @property
    def established(self) -> bool:
        """Application data went both ways: before that, a fatal alert means
        the handshake (with client authentication, which TLS 1.3 checks
        after the client's Finished) failed."""
        return self.app_data[0] > 0 and self.app_data[1] > 0

    def describe(self) -> str:
        """``TLS 1.3 TLS_AES_128_GCM_SHA256`` (or what is known so far)."""
        if self.version is None:
            if self.late:
                return "TLS (began before the capture)"
            return "TLS (handshake not seen)" if not self.offered_suites else "TLS (no ServerHello)"
        text = f"{version_name(self.version)} {suite_name(self.suite)}"
        if self.resumed:
            text += " (resumed)"
        return text

    def as_dict(self) -> dict:
        return {"version": version_name(self.version) if self.version else None,
                "cipher_suite": suite_name(self.suite) if self.suite is not None else None,
                "server_name": self.server_name, "resumed": self.resumed,
                "decrypted": self.decrypted, "failed": self.failed,
                "certificates": [c.as_dict() for c in self.certificates]}


def hello_text(msg_type: int, hello: "wire.Hello") -> str:
    """A show line's words for a hello."""
    if msg_type == wire.HT_CLIENT_HELLO:
        vs = hello.versions or [hello.version]
        words = [f"offers {', '.join(version_name(v) for v in vs)}",
                 f"{len(hello.suites)} suites"]
        if hello.server_name:
            words.insert(0, f"SNI {hello.server_name}")
        return f"Client Hello ({', '.join(words)})"
    if hello.hrr:
        return "Hello Retry Request"
    return f"Server Hello ({version_name(hello.version)}, {suite_name(hello.suites[0])})"


def message_name(msg_type: int) -> str:
    return HANDSHAKE_TYPES.get(msg_type, f"Handshake type {msg_type}")


def alert_name(desc: int) -> str:
    return ALERTS.get(desc, f"alert {desc}")


def judge_parameters(session: Session) -> list[tuple[str, str]]:
    """(expert field, message) for what BCP 195 says against the negotiated
    version and suite."""
    out = []
    if session.version is not None and session.version < 0x0303:
        out.append(("tls.version.old", f"{version_name(session.version)} negotiated: RFC 8996 "
                    "and BCP 195 forbid TLS below 1.2 (enable TLS 1.2 or 1.3 on both sides)"))
    if session.suite is not None:
        verdict = bcp195_verdict(session.suite)
        if verdict:
            level, why = verdict
            out.append(("tls.suite.forbidden" if level == "must" else "tls.suite.discouraged",
                        f"{suite_name(session.suite)} negotiated: {why}"))
    return out
