"""Record protection: key derivation from key-log secrets and the opening of
protected records.  The ciphers come from ``cryptography``; what is written
here is only the TLS glue around them (nonces, additional data, padding, the
PRF and HKDF-Expand-Label, which are HMAC constructions from ``hmac``).

- TLS 1.2 (RFC 5246 6.2.3, 6.3; RFC 5288 GCM, RFC 6655 CCM, RFC 7905
  ChaCha20-Poly1305, RFC 7366 encrypt-then-MAC): keys from the master secret.
- TLS 1.3 (RFC 8446 5.2-5.3, 7.1-7.3): keys from the traffic secrets; key
  updates derive the next secret.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from dicomwire.tls.suites import Suite

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384}
_SEQ = struct.Struct(">Q")
_AAD12 = struct.Struct(">QBHH")         # seq, type, version, length (RFC 5246 6.2.3.3)
_AAD13 = struct.Struct(">BHH")          # the record header (RFC 8446 5.2)


class DecryptError(ValueError):
    """A record does not open: wrong key, wrong sequence number, or damage."""


def _digest(name: str):
    return _HASHES[name]


# -- key derivation ----------------------------------------------------------

def prf12(secret: bytes, label: bytes, seed: bytes, n: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF, P_hash (RFC 5246 5)."""
    h = _digest(hash_name)
    seed = label + seed
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(secret, a, h).digest()
        out += hmac.new(secret, a + seed, h).digest()
    return out[:n]


def hkdf_expand_label(secret: bytes, label: str, context: bytes, n: int,
                      hash_name: str) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1) over HKDF-Expand (RFC 5869 2.3)."""
    full = b"tls13 " + label.encode()
    info = struct.pack(">H", n) + bytes([len(full)]) + full + bytes([len(context)]) + context
    h = _digest(hash_name)
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:n]


def _iv_len(suite: Suite) -> int:
    return {"gcm": 4, "ccm": 4, "chacha": 12}.get(suite.mode, 0)


def keys12(suite: Suite, master: bytes, client_random: bytes, server_random: bytes):
    """(client cipher, server cipher) for a TLS 1.2 session."""
    mac_len = 0 if suite.mode in ("gcm", "ccm", "chacha") else _digest(suite.mac_hash)().digest_size
    iv_len = _iv_len(suite)
    kb = prf12(master, b"key expansion", server_random + client_random,
               2 * (mac_len + suite.key_bytes + iv_len), suite.hash)
    parts, i = [], 0
    for n in (mac_len, mac_len, suite.key_bytes, suite.key_bytes, iv_len, iv_len):
        parts.append(kb[i:i + n])
        i += n
    cmac, smac, ckey, skey, civ, siv = parts
    return (RecordCipher12(suite, ckey, civ, cmac), RecordCipher12(suite, skey, siv, smac))


def cipher13(suite: Suite, secret: bytes) -> "RecordCipher13":
    key = hkdf_expand_label(secret, "key", b"", suite.key_bytes, suite.hash)
    iv = hkdf_expand_label(secret, "iv", b"", 12, suite.hash)
    return RecordCipher13(suite, key, iv, secret)


def _aead(suite: Suite, key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
    if suite.mode == "gcm":
        return AESGCM(key)
    if suite.mode == "ccm":
        return AESCCM(key, tag_length=16)
    if suite.mode == "chacha":
        return ChaCha20Poly1305(key)
    return None


def decryptable(suite: Suite | None, tls13: bool, version: int | None = 0x0303) -> bool:
    """Whether records of this suite and version can be opened here (TLS 1.2
    and 1.3: the PRF and record formats of TLS 1.0 and 1.1 differ)."""
    if suite is None or suite.cipher not in ("aes", "chacha20"):
        return False
    if not tls13 and version != 0x0303:
        return False
    return suite.mode in (("gcm", "ccm", "chacha") if tls13 else ("gcm", "ccm", "chacha", "cbc"))


# -- record ciphers ------------------------------------------------------------

class RecordCipher12:
    """One direction's read state of a TLS 1.2 session."""

    def __init__(self, suite: Suite, key: bytes, iv: bytes, mac_key: bytes):
        self.suite, self.key, self.iv, self.mac_key = suite, key, iv, mac_key
        self.aead = _aead(suite, key)
        self.encrypt_then_mac = False
        self.seq = 0
        if self.aead is None:                        # CBC: what every record needs, once
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            self._cbc_parts = Cipher, algorithms.AES(key), modes.CBC
            self._mac_hash = _digest(suite.mac_hash)
            self._mac_len = self._mac_hash().digest_size

    def open(self, ctype: int, version: int, body: bytes, seq: int | None = None):
        """-> (content type, plaintext); raises DecryptError.  ``seq``
        tries another sequence number without moving the counter."""
        s = self.seq if seq is None else seq
        data = self._open_aead(ctype, version, body, s) if self.aead else \
            self._open_cbc(ctype, version, body, s)
        if seq is None:
            self.seq += 1
        else:
            self.seq = seq + 1
        return ctype, data

    def _open_aead(self, ctype, version, body, seq):
        if self.suite.mode == "chacha":
            if len(body) < 16:
                raise DecryptError("record shorter than its tag")
            nonce = bytes(a ^ b for a, b in zip(self.iv, b"\0\0\0\0" + _SEQ.pack(seq)))
            sealed = body
        else:
            if len(body) < 24:
                raise DecryptError("record shorter than its nonce and tag")
            nonce, sealed = self.iv + bytes(body[:8]), body[8:]
        aad = _AAD12.pack(seq, ctype, version, len(sealed) - 16)
        try:
            return self.aead.decrypt(nonce, sealed, aad)       # any bytes-like: no copy
        except Exception:
            raise DecryptError("the record's tag does not authenticate") from None

    def _open_cbc(self, ctype, version, body, seq):
        h, mac_len = self._mac_hash, self._mac_len
        body = bytes(body)
        if self.encrypt_then_mac:                    # RFC 7366 3
            if len(body) < 32 + mac_len or (len(body) - mac_len) % 16:
                raise DecryptError("record length does not fit the block cipher")
            sealed, mac = body[:-mac_len], body[-mac_len:]
            want = hmac.new(self.mac_key, _AAD12.pack(seq, ctype, version, len(sealed)) + sealed,
                            h).digest()
            if not hmac.compare_digest(want, mac):
                raise DecryptError("the record's MAC does not authenticate")
            plain = self._cbc(sealed)
            return self._unpad(plain)
        if len(body) < 32 or len(body) % 16:
            raise DecryptError("record length does not fit the block cipher")
        content = self._unpad(self._cbc(body))
        if len(content) < mac_len:
            raise DecryptError("record shorter than its MAC")
        data, mac = content[:-mac_len], content[-mac_len:]
        want = hmac.new(self.mac_key, _AAD12.pack(seq, ctype, version, len(data)) + data,
                        h).digest()
        if not hmac.compare_digest(want, mac):
            raise DecryptError("the record's MAC does not authenticate")
        return data

    def _cbc(self, sealed):
        Cipher, aes, cbc = self._cbc_parts
        d = Cipher(aes, cbc(sealed[:16])).decryptor()
        return d.update(sealed[16:]) + d.finalize()

    @staticmethod
    def _unpad(plain: bytes) -> bytes:
        pad = plain[-1] if plain else 255
        if pad + 1 > len(plain) or plain[-pad - 1:] != bytes([pad]) * (pad + 1):
            raise DecryptError("bad CBC padding")
        return plain[:-pad - 1]


class RecordCipher13:
    """One direction's read state of a TLS 1.3 session, for one secret."""

    def __init__(self, suite: Suite, key: bytes, iv: bytes, secret: bytes):
        self.suite, self.key, self.iv, self.secret = suite, key, iv, secret
        self.aead = _aead(suite, key)
        self._iv = int.from_bytes(iv, "big")
        self.seq = 0

    def open(self, ctype: int, version: int, body: bytes, seq: int | None = None):
        s = self.seq if seq is None else seq
        n = len(body)
        if n < 17:
            raise DecryptError("record shorter than its tag")
        try:                                          # any bytes-like body: no copy
            inner = self.aead.decrypt((self._iv ^ s).to_bytes(12, "big"), body,
                                      _AAD13.pack(ctype, version, n))
        except Exception:
            raise DecryptError("the record's tag does not authenticate") from None
        self.seq = s + 1
        if inner[-1]:                                 # no padding (the usual case)
            return inner[-1], inner[:-1]
        end = len(inner.rstrip(b"\0"))               # RFC 8446 5.2: zero padding
        if end == 0:
            raise DecryptError("protected record without a content type")
        return inner[end - 1], inner[:end - 1]

    def updated(self) -> "RecordCipher13":
        """The next generation after a KeyUpdate (RFC 8446 7.2)."""
        h = _digest(self.suite.hash)().digest_size
        return cipher13(self.suite, hkdf_expand_label(self.secret, "traffic upd", b"", h,
                                                      self.suite.hash))
