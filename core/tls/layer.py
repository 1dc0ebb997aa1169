"""The TLS record layer as a stream dissector: it reads a TCP stream's TLS
records (RFC 8446 5, RFC 5246 6.2), decodes the handshake it can see,
opens protected records when the key log has the session's secrets, and
hands the plaintext to an inner dissector exactly as a plain TCP stream
would (``data`` / ``gap`` / ``close`` with plaintext offsets; the frame that
completed each record).

Packs decide which streams are TLS (a port, or a ClientHello seen by
:func:`dicomwire.tls.wire.looks_like_client_hello`) and return
``TLSLayer(stream, host, config, inner)`` from ``dicomwire_stream_dissector``;
``inner(view, direction, plaintext)`` chooses the inner dissector once the
first application bytes are decrypted (a dissector, ``MORE``, or None).
``view`` is the stream as the inner dissector sees it: the same stream,
without bulk lanes (the TCP bytes are ciphertext).

Bounded: records over 2^14 + 2048 bytes are malformed; a handshake message
is held up to :data:`dicomwire.tls.handshake.MAX_HANDSHAKE`; after a gap the search for the next
record that authenticates tries a bounded number of sequence numbers.
"""

from __future__ import annotations

from dicomwire.hookspecs import MORE, PEEK_BYTES, PEEK_CALLS
from dicomwire.tls import crypto, wire
from dicomwire.tls.findings import Reporter
from dicomwire.tls.handshake import Handshake
from dicomwire.tls.session import Session
from dicomwire.tls.suites import SUITES

MAX_RESYNC_TRIES = 1 << 16        # sequence numbers tried per candidate record after a gap
RESYNC_BUDGET = 1 << 18           # record opens tried per gap in all, then reading stops
_HDR = wire.RECORD_HEADER
_APP, _ALERT, _HS, _CCS = 23, 21, 22, 20


class _NoLane:
    """A stream direction as the inner dissector sees it: its TCP counters,
    but no bulk lane (the TCP bytes are ciphertext)."""
    __slots__ = ("_direction",)

    def __init__(self, direction):
        self._direction = direction

    def grant_lane(self, room, parts):
        pass

    def take_lane(self) -> int:
        return 0

    def __getattr__(self, name):
        return getattr(self._direction, name)


class PlainView:
    """The stream as an inner dissector sees it: everything of the TCP
    stream, but directions without lanes."""

    def __init__(self, stream):
        object.__setattr__(self, "_stream", stream)
        object.__setattr__(self, "dirs", (_NoLane(stream.dirs[0]), _NoLane(stream.dirs[1])))

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __setattr__(self, name, value):
        setattr(self._stream, name, value)


class _Dir:
    """One direction's record state."""
    __slots__ = ("buf", "need", "cipher", "next_cipher", "protected", "plain_off", "stopped",
                 "resync", "lost", "failed", "scan", "budget", "gapped")

    def __init__(self):
        self.buf = bytearray()
        self.need = 5               # bytes buf must hold before a record can be read
        self.cipher = None          # crypto.RecordCipher12/13 reading this direction
        self.next_cipher = None     # TLS 1.2: takes over at ChangeCipherSpec
        self.protected = False      # records from here on are encrypted
        self.plain_off = 0          # plaintext offset handed to the inner dissector
        self.stopped = None         # why this direction is no longer read
        self.resync = False         # after a gap: looking for a record that opens
        self.lost = 0               # ciphertext bytes lost in the current gap
        self.failed = False         # the key did not fit (tls.decrypt.failed said so)
        self.scan = 0               # resync: buffer position scanned up to
        self.budget = RESYNC_BUDGET  # resync: record opens left for this gap
        self.gapped = False         # bytes of this direction went missing


class TLSLayer:
    def __init__(self, stream, host, config, inner=None):
        self.stream = stream
        self.host = host
        self.session = stream.tls = Session()
        self.report = Reporter(host.expert, stream, self.session, config)
        self.hs = Handshake(self, self.session, self.report, host, stream)
        self.dirs = (_Dir(), _Dir())
        self.inner_select = inner
        self.inner = None           # the inner dissector once chosen (False: none)
        self.held: list | None = None
        self.view = PlainView(stream)
        if not stream.client_known:
            # The capture began after the handshake: every record is sealed
            # and the first one must be found (no key can be derived).
            self.session.late = True
            for d in self.dirs:
                d.protected = d.resync = True
                d.need = 0

    # -- the stream dissector interface -------------------------------------

    def data(self, direction, offset, payload, frame, ts):
        d = self.dirs[direction]
        if d.stopped:
            return
        buf = d.buf
        buf += payload
        if len(buf) < d.need:               # inside a record: nothing to read yet
            return
        if d.resync:
            self._resync(direction, d, frame, ts)
        pos, n, need = 0, len(buf), 5
        # Records are read in place: each body is a view of buf (opened
        # without a copy; copied only where it is kept), released before
        # buf changes size.
        with memoryview(buf) as view:
            while n - pos >= 5 and not d.stopped and not d.resync:
                ctype, version, length = _HDR.unpack_from(buf, pos)
                if not (20 <= ctype <= 24 and version >> 8 == 3) or \
                        length > wire.MAX_CIPHERTEXT:
                    self.report.malformed(direction, frame, pos, ctype, version, length)
                    d.stopped = "malformed"
                    break
                end = pos + 5 + length
                if end > n:
                    need = end - pos
                    break
                self._record(direction, d, ctype, version, view[pos + 5:end], frame, ts)
                pos = end
        del buf[:pos]
        d.need = 0 if d.resync else need

    def gap(self, direction, offset, size, frame, ts):
        d = self.dirs[direction]
        if d.stopped:
            return
        d.lost += len(d.buf) + size
        d.buf.clear()
        self.hs.lost(direction)
        d.resync = d.gapped = True
        d.scan, d.budget = 0, RESYNC_BUDGET
        d.need = 0

    def close(self):
        self.hs.close(self.stream.close_reason)
        for direction, d in enumerate(self.dirs):
            if d.resync and d.gapped and not d.stopped and d.budget < RESYNC_BUDGET:
                # Whole records came after the gap and none opened: say so.
                self.report.resync_failed(direction, self.stream.last_frame)
            if d.resync and self.inner and d.lost:
                self.inner.gap(direction, d.plain_off, d.lost, self.stream.last_frame,
                               self.stream.last_ts)
        if self.held:
            self._release_held()
        if self.inner:
            self.inner.close()

    # -- records ---------------------------------------------------------------

    def _record(self, direction, d, ctype, version, body, frame, ts):
        """One record; ``body`` may be a view of the direction's buffer,
        valid only during the call."""
        if d.protected and self.inner_select is None:
            d.stopped = "handshake read"        # no inner dissector: nothing more to learn
            return
        # TLS 1.3 seals every protected record as application_data; an alert
        # or handshake record there is still in clear (sent before the keys
        # changed, e.g. a client refusing the server certificate).
        if ctype == _APP and not d.protected:
            # Application data before the keys were seen to change (the
            # records that changed them are missing): sealed, never clear.
            d.protected = True
        if d.protected and ctype != _CCS and (ctype == _APP or not self.session.tls13):
            if d.cipher is None:
                self.hs.sealed(direction, ctype, len(body), frame)
                return
            try:
                ctype, body = d.cipher.open(ctype, version, body)
            except crypto.DecryptError as e:
                self.report.undecryptable(direction, frame, str(e))
                d.cipher, d.failed = None, True
                return
            self.session.decrypted = True
        else:
            body = bytes(body)
        if ctype == _APP:
            self._application(direction, d, body, frame, ts)
        elif ctype == _HS:
            self.hs.records(direction, body, frame, ts)
        elif ctype == _ALERT:
            self.hs.alert(direction, body, frame, ts)
        elif ctype == _CCS:
            self.hs.change_cipher_spec(direction, frame, ts)

    def _application(self, direction, d, body, frame, ts):
        self.session.app_data[direction] += len(body)
        if not body:
            return
        inner = self.inner
        if inner is None:
            if self.inner_select is None:
                self.inner = False
                return
            self._select(direction, body, frame, ts)
            return
        if inner:
            inner.data(direction, d.plain_off, memoryview(body), frame, ts)
        d.plain_off += len(body)

    def _select(self, direction, body, frame, ts):
        if self.held is None:
            self.held = []
        self.held.append((direction, body, frame, ts))
        peek = b"".join(p[1] for p in self.held if p[0] == direction)
        chosen = self.inner_select(self.view, direction, peek)
        # The engine's bounds on a stream undecided (hookspecs: MORE).
        if chosen is MORE and len(self.held) < PEEK_CALLS and \
                sum(len(p[1]) for p in self.held) < PEEK_BYTES:
            return
        self.inner = chosen if chosen and chosen is not MORE else False
        self._release_held()

    def _release_held(self):
        held, self.held = self.held, None
        for direction, body, frame, ts in held:
            d = self.dirs[direction]
            if self.inner:
                self.inner.data(direction, d.plain_off, memoryview(body), frame, ts)
            d.plain_off += len(body)

    # -- keys (called by the handshake) ----------------------------------------

    def set_cipher(self, direction, cipher, now: bool):
        """Protect ``direction`` with ``cipher`` (None: no key) from its next
        record (``now``) or from its ChangeCipherSpec (TLS 1.2)."""
        d = self.dirs[direction]
        if now:
            d.protected = True
            d.cipher = cipher
        else:
            d.next_cipher = cipher

    def cipher_of(self, direction):
        return self.dirs[direction].cipher

    def switch_on_ccs(self, direction):
        d = self.dirs[direction]
        d.protected = True
        d.cipher, d.next_cipher = d.next_cipher, None

    # -- after a gap -----------------------------------------------------------

    def _resync(self, direction, d, frame, ts):
        """Find the first record after a gap: with a key, the first candidate
        header whose record authenticates under a sequence number near the
        expected one; without, the first plausible header. Each position is
        judged once (``d.scan``), and the record opens tried per gap are
        bounded (``d.budget``): past it the direction is no longer read."""
        buf = d.buf
        cipher = d.cipher if d.protected else None
        strict = d.protected              # sealed records: application_data, the session's version
        version_now = self.session.version
        record_version = 0x0303 if version_now is None or version_now >= 0x0303 else version_now
        pos = d.scan
        while pos < len(buf) - 4:
            ctype, version, length = _HDR.unpack_from(buf, pos)
            if strict:
                plausible = ctype == _APP and version == record_version
            else:
                plausible = 20 <= ctype <= 24 and version >> 8 == 3
            if not plausible or not 0 < length <= wire.MAX_CIPHERTEXT:
                pos += 1
                continue
            if pos + 5 + length > len(buf):
                d.scan = pos
                return                      # wait for the rest of this candidate
            lost_records = None             # unknown without a key
            if cipher is not None:
                body = bytes(buf[pos + 5:pos + 5 + length])
                lost_records = self._try_sequences(d, cipher, ctype, version, body,
                                                   d.lost + pos)
                if lost_records is None:
                    if d.budget <= 0:
                        self.report.resync_failed(direction, frame)
                        d.stopped = "resync failed"
                        return
                    pos += 1
                    continue
            lost = d.lost + pos
            del buf[:pos]
            d.resync = False
            d.lost, d.scan = 0, 0
            self._after_gap(direction, d, lost, lost_records, frame, ts)
            return
        keep = wire.MAX_CIPHERTEXT + 5
        d.scan = pos
        if len(buf) > 2 * keep:             # nothing plausible: drop what cannot start one
            cut = len(buf) - keep
            d.lost += cut
            del buf[:cut]
            d.scan = max(0, d.scan - cut)

    def _try_sequences(self, d, cipher, ctype, version, body, lost_bytes):
        """The number of records lost when ``body`` opens under a later
        sequence number (the cipher then moves past it), else None. Spends
        the direction's resync budget."""
        base = cipher.seq
        guess = max(0, round(lost_bytes / max(len(body) + 5, 64)))
        limit = lost_bytes // 22 + 2        # no more records than 22-byte ones fit in the gap
        for k in range(min(MAX_RESYNC_TRIES, limit)):
            for skip in (guess + k, guess - k) if k else (guess,):
                if not 0 <= skip < limit or d.budget <= 0:
                    continue
                d.budget -= 1
                try:
                    cipher.open(ctype, version, body, seq=base + skip)
                except crypto.DecryptError:
                    continue
                cipher.seq = base + skip      # the record is read again from the buffer
                return skip
        return None

    def _after_gap(self, direction, d, lost, lost_records, frame, ts):
        """Tell the inner dissector what the gap cost in plaintext: exact for
        AEAD suites when the records lost are known (their overhead is
        fixed); otherwise the ciphertext lost, an upper bound past which the
        inner dissector finds its framing again."""
        suite = SUITES.get(self.session.suite)
        aead = suite is not None and suite.mode in ("gcm", "ccm", "chacha")
        if d.protected and aead and lost_records is not None:
            explicit = 8 if suite.mode in ("gcm", "ccm") and not self.session.tls13 else 0
            inner_type = 1 if self.session.tls13 else 0
            plain = max(0, lost - lost_records * (5 + explicit + 16 + inner_type))
        else:
            plain = lost
        if d.gapped:                        # not merely the first record of a late start
            self.report.resumed(direction, frame, lost_records, d.cipher is not None)
        if self.inner and plain:
            self.inner.gap(direction, d.plain_off, plain, frame, ts)
        d.plain_off += plain
