"""The TLS handshake as the record layer delivers it: messages reassembled
across records, decoded into the :class:`~dicomwire.tls.session.Session`,
keys installed when the key log has them (RFC 5246 7.4, RFC 8446 4 and
7.2), alerts named, and a :class:`TLSEvent` per record for the renderers
(hook ``dicomwire_tls``)."""

from __future__ import annotations

from dicomwire.tls import crypto, wire
from dicomwire.tls.certs import read_certificate
from dicomwire.tls.session import (
    SIDE,
    alert_name,
    hello_text,
    judge_parameters,
    message_name,
)
from dicomwire.tls.suites import SUITES

MAX_HANDSHAKE = 1 << 20
_TLS13_ALERT_RECORD = 2 + 1 + 16      # an alert sealed: level, description, type, tag


class TLSEvent:
    """What one TLS record said, for ``show``: ``text`` like ``Client Hello
    (SNI pacs, offers TLS 1.3, TLS 1.2, 31 suites)`` or ``Alert (fatal,
    unknown_ca)``."""
    __slots__ = ("direction", "frame", "ts", "text", "kind")

    def __init__(self, direction, frame, ts, text, kind):
        self.direction, self.frame, self.ts, self.text, self.kind = \
            direction, frame, ts, text, kind


class Handshake:
    def __init__(self, layer, session, report, host, stream):
        self.layer, self.session, self.report = layer, session, report
        self.host, self.stream = host, stream
        self.buf = [bytearray(), bytearray()]
        self.secrets: dict = {}
        self.client_session_id = b""
        self.server_hello_at = None
        self.stopped = [False, False]
        self.gapped = False
        self.first_sealed = [None, None]        # length of each side's first sealed record

    # -- input from the record layer ------------------------------------------

    def records(self, direction, body, frame, ts):
        if self.stopped[direction]:
            return
        buf = self.buf[direction]
        buf += body
        names = []
        while len(buf) >= 4:
            msg_type = buf[0]
            length = int.from_bytes(buf[1:4], "big")
            if length > MAX_HANDSHAKE:
                self.report.handshake_malformed(direction, frame,
                                                f"{message_name(msg_type)} claims {length} bytes")
                self.stopped[direction] = True
                buf.clear()
                return
            if len(buf) < 4 + length:
                break
            msg = bytes(buf[4:4 + length])
            del buf[:4 + length]
            names.append(self._message(direction, msg_type, msg, frame, ts))
        if names:
            self._event(direction, frame, ts, ", ".join(names), "handshake")

    def lost(self, direction):
        """Bytes of ``direction`` went missing: what follows may continue a
        message whose start is gone, so that direction's handshake is no
        longer read, and nothing is claimed about how the handshake ended."""
        self.buf[direction].clear()
        self.stopped[direction] = True
        self.gapped = True

    def sealed(self, direction, ctype, length, frame):
        """A protected record that cannot be opened (no key, or the key did
        not fit: then tls.decrypt.failed has said it all)."""
        if self.layer.dirs[direction].failed:
            return
        s = self.session
        if self.first_sealed[direction] is None:
            self.first_sealed[direction] = length
            if not s.tls13 and not s.finished[direction]:
                s.finished[direction] = True     # TLS 1.2: the first sealed record is Finished
            self.report.no_key(frame, self._why_no_key(direction))
            if (s.tls13 and direction == 0 and length == _TLS13_ALERT_RECORD
                    and not s.finished[0]):
                s.failed = "encrypted alert"
                self.report.sealed_alert(direction, frame)
        elif not s.tls13:
            s.app_data[direction] += length     # after Finished: application data

    def _why_no_key(self, direction) -> str:
        """Why records of ``direction`` are sealed (for tls.nokey)."""
        s = self.session
        if s.late:
            return "late"
        if self.server_hello_at is None or self.gapped:
            return "unseen"              # the handshake that would give the keys is missing
        if not crypto.decryptable(SUITES.get(s.suite), s.tls13, s.version):
            return "unsupported"
        if not self.report.keylog():
            return "nokeylog"
        return "partial" if self.secrets else "nosecret"

    def alert(self, direction, body, frame, ts):
        for i in range(0, len(body) - 1, 2):
            level, desc = body[i], body[i + 1]
            name = alert_name(desc)
            self.session.alerts.append((direction, level, name, frame))
            self._event(direction, frame, ts,
                        f"Alert ({'fatal' if level == 2 else 'warning'}, {name})", "alert")
            if desc == 0 or (desc == 90 and level == 1):
                continue                        # close_notify, user_canceled: orderly
            self.report.alert(direction, level, name, frame, self.session.established)
            if not self.session.established:
                self.session.failed = name

    def change_cipher_spec(self, direction, frame, ts):
        if self.session.tls13:
            return          # TLS 1.3: middlebox compatibility only (RFC 8446 D.4)
        if self.server_hello_at is None:
            # The hellos are missing (lost, or before the capture): what follows
            # may be sealed, so nothing after it is read as clear.
            self.layer.dirs[direction].protected = True
            return
        if direction == 1 and not self.session.certificates and self.server_hello_at:
            self.session.resumed = True         # abbreviated handshake (RFC 5246 7.3)
        self.layer.switch_on_ccs(direction)
        self._event(direction, frame, ts, "Change Cipher Spec", "ccs")

    def close(self, reason):
        """A handshake the capture saw begin and end unfinished, without an
        alert: claimed only when the client never protected a record (it
        never sent its Finished), so TLS 1.3 without keys is not guessed."""
        s = self.session
        if (self.stream.client_known and not self.gapped and s.failed is None
                and reason in ("fin", "rst")
                and s.offered_suites and self.first_sealed[0] is None and not s.finished[0]):
            self.report.incomplete(s, self.server_hello_at, self.stream.last_frame)

    # -- messages ----------------------------------------------------------------

    def _message(self, direction, msg_type, body, frame, ts) -> str:
        try:
            if msg_type == wire.HT_CLIENT_HELLO and direction == 0:
                return self._client_hello(body)
            if msg_type == wire.HT_SERVER_HELLO and direction == 1:
                return self._server_hello(body, frame)
            if msg_type == wire.HT_CERTIFICATE:
                return self._certificate(direction, body, frame, ts)
        except wire.SpecError as e:
            self.report.handshake_malformed(direction, frame, f"{message_name(msg_type)}: {e}")
            return f"{message_name(msg_type)} (malformed)"
        if msg_type == wire.HT_CERTIFICATE_REQUEST and direction == 1:
            self.session.cert_requested = True
        elif msg_type == wire.HT_FINISHED:
            self._finished(direction)
        elif msg_type == wire.HT_KEY_UPDATE and self.session.tls13:
            cipher = self.layer.cipher_of(direction)
            if cipher is not None:
                self.layer.set_cipher(direction, cipher.updated(), now=True)
        return message_name(msg_type)

    def _client_hello(self, body) -> str:
        hello = wire.parse_hello(body, client=True)
        s = self.session
        s.offered_suites = hello.suites
        s.offered_versions = hello.versions or [hello.version]
        s.server_name, s.alpn = hello.server_name, hello.alpn
        s.client_random = hello.random
        self.client_session_id = hello.session_id
        return hello_text(wire.HT_CLIENT_HELLO, hello)

    def _server_hello(self, body, frame) -> str:
        hello = wire.parse_hello(body, client=False)
        s = self.session
        if hello.hrr:                           # TLS 1.3; the real ServerHello follows
            s.version = hello.version
            return hello_text(wire.HT_SERVER_HELLO, hello)
        s.version, s.suite = hello.version, hello.suites[0]
        s.server_random = hello.random
        self.server_hello_at = frame
        s.encrypt_then_mac = wire.EXT_ENCRYPT_THEN_MAC in hello.extensions
        if s.tls13:
            s.resumed = wire.EXT_PRE_SHARED_KEY in hello.extensions
        for name, text in judge_parameters(s):
            self.report.parameters(name, text, frame)
        self._install_keys()
        return hello_text(wire.HT_SERVER_HELLO, hello)

    def _install_keys(self):
        s = self.session
        suite = SUITES.get(s.suite)
        keylog = self.report.keylog()
        self.secrets = keylog.secrets(s.client_random) if keylog and s.client_random else {}
        usable = crypto.decryptable(suite, s.tls13, s.version)
        if s.tls13:
            for direction, label in ((0, "CLIENT_HANDSHAKE_TRAFFIC_SECRET"),
                                     (1, "SERVER_HANDSHAKE_TRAFFIC_SECRET")):
                secret = self.secrets.get(label)
                cipher = crypto.cipher13(suite, secret) if usable and secret else None
                self.layer.set_cipher(direction, cipher, now=True)
            return
        master = self.secrets.get("CLIENT_RANDOM")
        if usable and master and len(master) == 48:
            client, server = crypto.keys12(suite, master, s.client_random, s.server_random)
            client.encrypt_then_mac = server.encrypt_then_mac = s.encrypt_then_mac
        else:
            client = server = None
        self.layer.set_cipher(0, client, now=False)
        self.layer.set_cipher(1, server, now=False)

    def _certificate(self, direction, body, frame, ts) -> str:
        s = self.session
        chain = [read_certificate(der) for der in wire.parse_certificates(body, s.tls13)]
        if direction == 1:
            s.certificates = chain
            for depth, cert in enumerate(chain):
                self.report.certificate(direction, depth, cert, frame, ts)
            who = f"{len(chain)} certificate{'s' if len(chain) != 1 else ''}"
            return f"Certificate ({who}{', ' + chain[0].subject if chain else ''})"
        s.client_certificates = chain
        if not chain and s.cert_requested:
            self.report.client_cert_missing(frame)
        for depth, cert in enumerate(chain):
            self.report.certificate(direction, depth, cert, frame, ts)
        return f"Certificate ({len(chain)} from the client)"

    def _finished(self, direction):
        s = self.session
        s.finished[direction] = True
        if not s.tls13:
            return
        label = ("CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")[direction]
        secret = self.secrets.get(label)
        suite = SUITES.get(s.suite)
        cipher = crypto.cipher13(suite, secret) if secret and crypto.decryptable(suite, True, s.version) \
            else None
        self.layer.set_cipher(direction, cipher, now=True)

    def _event(self, direction, frame, ts, text, kind):
        self.host.call("dicomwire_tls", stream=self.stream,
                       event=TLSEvent(direction, frame, ts, text, kind))


__all__ = ["Handshake", "TLSEvent", "SIDE"]
