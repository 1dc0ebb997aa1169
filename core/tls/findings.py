"""The TLS layer's findings: their registered fields (:data:`TLS_FIELDS`,
part of the engine's) and one method per finding that words it, with the
hint a site engineer can act on.  Findings are true or absent: what the
capture did not see is never claimed."""

from __future__ import annotations

from dicomwire.expert import ExpertField
from dicomwire.tls.keylog import KeyLog, KeyLogError
from dicomwire.tls.session import SIDE, alert_hint

TLS_FIELDS = (
    ExpertField("tls.handshake.failed", "error", "protocol",
                "A TLS handshake failed: one side refused it with an alert (the hint says "
                "what to fix), or closed the connection without one"),
    ExpertField("tls.alert", "warn", "protocol",
                "A TLS alert other than close_notify after the handshake"),
    ExpertField("tls.cert.expired", "error", "protocol",
                "A certificate sent in a TLS handshake had expired when it crossed the wire"),
    ExpertField("tls.cert.not_yet_valid", "error", "protocol",
                "A certificate sent in a TLS handshake was not yet valid when it crossed the "
                "wire (or the sender's clock is wrong)"),
    ExpertField("tls.cert.unreadable", "warn", "malformed",
                "A certificate in a TLS handshake could not be parsed"),
    ExpertField("tls.client_cert.missing", "warn", "protocol",
                "The server asked for a client certificate and the client sent none"),
    ExpertField("tls.version.old", "warn", "protocol",
                "A TLS version below 1.2 was negotiated (RFC 8996 and BCP 195 forbid it)"),
    ExpertField("tls.suite.forbidden", "warn", "protocol",
                "A cipher suite BCP 195 (RFC 9325) forbids was negotiated"),
    ExpertField("tls.suite.discouraged", "note", "protocol",
                "A cipher suite BCP 195 (RFC 9325) recommends against was negotiated"),
    ExpertField("tls.nokey", "note", "comment",
                "A TLS stream is encrypted and the key log has no key for it: its content "
                "is not decoded"),
    ExpertField("tls.keylog.unreadable", "error", "comment",
                "The TLS key log (tls.keylog_file) could not be read"),
    ExpertField("tls.decrypt.failed", "error", "protocol",
                "TLS records did not authenticate with the key log's key (a key of another "
                "session, or damaged records): the rest of that direction is not decoded"),
    ExpertField("tls.record.malformed", "error", "malformed",
                "A TLS record or handshake message is malformed (impossible type, version "
                "or length): that direction is no longer read"),
    ExpertField("tls.resync", "note", "sequence",
                "After bytes missing from the capture, TLS reading resumed at the next "
                "record (records in the gap are lost)"),
)

KEYLOG_PREF = "tls.keylog_file"


class Reporter:
    def __init__(self, expert, stream, session, config):
        self.expert, self.stream, self.session, self.config = expert, stream, session, config
        self.told_no_key = False

    def _say(self, name, message, frames):
        self.expert.report(name, message, frames=frames, stream=self.stream.id)

    def keylog(self) -> KeyLog | None:
        """The run's key log, read once (config.state caches it)."""
        state = self.config.state
        if "tls.keylog" not in state:
            path = self.config.pref(KEYLOG_PREF, "")
            state["tls.keylog"] = None
            if path:
                try:
                    state["tls.keylog"] = KeyLog.load(path)
                except KeyLogError as e:
                    self._say("tls.keylog.unreadable", str(e), [self.stream.first_frame])
        return state["tls.keylog"]

    def alert(self, sender, level, name, frame, established):
        hint = alert_hint(name, sender)
        level_word = "fatal" if level == 2 else "warning"
        if established:
            self._say("tls.alert", f"the {SIDE[sender]} sent TLS alert {name} ({level_word})",
                      [frame])
            return
        self._say("tls.handshake.failed",
                  f"TLS handshake failed: the {SIDE[sender]} sent alert {name} ({level_word})"
                  + (f": {hint}" if hint else ""), [frame])

    def sealed_alert(self, sender, frame):
        self._say("tls.handshake.failed",
                  f"TLS handshake failed: the {SIDE[sender]} answered the server's handshake "
                  f"with an encrypted alert instead of its Finished (TLS 1.3 encrypts alerts; "
                  f"a key log, -o {KEYLOG_PREF}:PATH, names it; most often the {SIDE[sender]} "
                  f"does not trust the server certificate)", [frame])

    def incomplete(self, session, server_hello_frame, frame):
        if server_hello_frame is None:
            text = ("the server closed the connection without answering the ClientHello "
                    "(it may not speak TLS on this port, or it refused the offered versions "
                    "or suites without an alert)")
        else:
            text = "the connection closed before the handshake finished, without an alert"
        self._say("tls.handshake.failed", f"TLS handshake failed: {text}", [frame])
        session.failed = "closed"

    def certificate(self, sender, depth, cert, frame, ts):
        who = f"the {SIDE[sender]}'s {'certificate' if depth == 0 else f'CA certificate (depth {depth})'}"
        if cert.error:
            self._say("tls.cert.unreadable", f"{who}: {cert.error}", [frame])
            return
        verdict = cert.validity_at(ts)
        if verdict == "expired":
            self._say("tls.cert.expired",
                      f"{who} {cert.subject} expired on {cert.not_after:%Y-%m-%d %H:%M:%S} UTC, "
                      f"before this capture: renew it", [frame])
        elif verdict == "not yet valid":
            self._say("tls.cert.not_yet_valid",
                      f"{who} {cert.subject} is valid only from "
                      f"{cert.not_before:%Y-%m-%d %H:%M:%S} UTC: check the clocks of both "
                      f"sides, or reissue it", [frame])

    def client_cert_missing(self, frame):
        self._say("tls.client_cert.missing",
                  "the server requested a client certificate and the client sent none: "
                  "configure the client's certificate and key (the server may refuse the "
                  "connection)", [frame])

    def parameters(self, name, text, frame):
        self._say(name, text, [frame])

    _NO_KEY = {
        "late": "the capture began after its TLS handshake (no key can be derived without it)",
        "unseen": "the capture missed part of its handshake, which the keys depend on",
        "unsupported": "its version or cipher suite is not one dicomwire decrypts (TLS 1.2 "
                       "and 1.3 with AES-GCM, AES-CCM, ChaCha20-Poly1305, TLS 1.2 AES-CBC)",
        "nokeylog": "no key log was given (-o tls.keylog_file:PATH)",
        "partial": "the key log has only some of this session's secrets",
        "nosecret": "the key log has no secret for this session",
    }

    def no_key(self, frame, why: str):
        """Once per stream: why its records stay sealed (``why``, a key of
        :attr:`_NO_KEY`)."""
        if self.told_no_key:
            return
        self.told_no_key = True
        self._say("tls.nokey", f"stream {self.stream.id} is encrypted "
                  f"({self.session.describe()}) and {self._NO_KEY[why]}: its content is not "
                  f"decoded", [frame])

    def undecryptable(self, direction, frame, why):
        self._say("tls.decrypt.failed",
                  f"{SIDE[direction]} to {SIDE[1 - direction]}: {why}; the key log's key does "
                  f"not fit this session (or the record is damaged): the rest of this "
                  f"direction is not decoded", [frame])

    def malformed(self, direction, frame, pos, ctype, version, length):
        self._say("tls.record.malformed",
                  f"{SIDE[direction]} to {SIDE[1 - direction]}: record header type {ctype}, "
                  f"version 0x{version:04x}, length {length} is not TLS; this direction is "
                  f"no longer read", [frame])

    def handshake_malformed(self, direction, frame, text):
        self._say("tls.record.malformed", f"{SIDE[direction]} handshake: {text}", [frame])

    def resumed(self, direction, frame, records, decrypting):
        what = "decryption" if decrypting else "record reading"
        lost = ("the records in the gap are lost" if records is None else
                f"{records} record{'s' if records != 1 else ''} lost")
        self._say("tls.resync", f"{SIDE[direction]} to {SIDE[1 - direction]}: {what} resumed "
                  f"after the gap ({lost})", [frame])

    def resync_failed(self, direction, frame):
        self._say("tls.resync", f"{SIDE[direction]} to {SIDE[1 - direction]}: after the gap no "
                  f"record authenticated under the session's key (a key update may have been "
                  f"among the bytes lost): the rest of this direction is not decoded", [frame])
