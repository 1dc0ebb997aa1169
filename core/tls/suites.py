"""TLS names and verdicts as data: versions, alerts, handshake types, cipher
suites (IANA "TLS Parameters" registry names), and what BCP 195 (RFC 8996,
RFC 9325) says about each.

A suite entry: ``code: (name, key_exchange, cipher, key_bytes, mode, hash)``
with ``mode`` one of ``gcm``, ``ccm``, ``chacha`` (AEAD), ``cbc``, ``stream``
or ``null``, and ``hash`` the PRF/HKDF hash (``sha256``, ``sha384``; CBC
suites also MAC with ``sha1`` where their name ends in SHA).  Suites not
listed are named by their code and never decrypted.
"""

from __future__ import annotations

VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
            0x0304: "TLS 1.3"}


def version_name(v: int | None) -> str:
    if v is None:
        return "TLS ?"
    return VERSIONS.get(v, f"version 0x{v:04x}")


# RFC 8446 6 (alert descriptions), RFC 5246 7.2.
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 115: "unknown_psk_identity",
    116: "certificate_required", 120: "no_application_protocol",
}

# RFC 8446 4, RFC 5246 7.4.
HANDSHAKE_TYPES = {
    0: "Hello Request", 1: "Client Hello", 2: "Server Hello", 4: "New Session Ticket",
    5: "End Of Early Data", 8: "Encrypted Extensions", 11: "Certificate",
    12: "Server Key Exchange", 13: "Certificate Request", 14: "Server Hello Done",
    15: "Certificate Verify", 16: "Client Key Exchange", 20: "Finished", 24: "Key Update",
}

_S = {
    # TLS 1.3 (RFC 8446 B.4)
    0x1301: ("TLS_AES_128_GCM_SHA256", "tls13", "aes", 16, "gcm", "sha256"),
    0x1302: ("TLS_AES_256_GCM_SHA384", "tls13", "aes", 32, "gcm", "sha384"),
    0x1303: ("TLS_CHACHA20_POLY1305_SHA256", "tls13", "chacha20", 32, "chacha", "sha256"),
    0x1304: ("TLS_AES_128_CCM_SHA256", "tls13", "aes", 16, "ccm", "sha256"),
    # TLS 1.2 AEAD (RFC 5288, 5289, 7905)
    0x009C: ("TLS_RSA_WITH_AES_128_GCM_SHA256", "rsa", "aes", 16, "gcm", "sha256"),
    0x009D: ("TLS_RSA_WITH_AES_256_GCM_SHA384", "rsa", "aes", 32, "gcm", "sha384"),
    0x009E: ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "dhe", "aes", 16, "gcm", "sha256"),
    0x009F: ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "dhe", "aes", 32, "gcm", "sha384"),
    0xC02B: ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ecdhe", "aes", 16, "gcm", "sha256"),
    0xC02C: ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ecdhe", "aes", 32, "gcm", "sha384"),
    0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ecdhe", "aes", 16, "gcm", "sha256"),
    0xC030: ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ecdhe", "aes", 32, "gcm", "sha384"),
    0xCCA8: ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ecdhe", "chacha20", 32, "chacha",
             "sha256"),
    0xCCA9: ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ecdhe", "chacha20", 32, "chacha",
             "sha256"),
    0xCCAA: ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "dhe", "chacha20", 32, "chacha",
             "sha256"),
    # TLS 1.2 CBC (RFC 5246 A.5, RFC 5289, RFC 4492)
    0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", "rsa", "aes", 16, "cbc", "sha256"),
    0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", "rsa", "aes", 32, "cbc", "sha256"),
    0x003C: ("TLS_RSA_WITH_AES_128_CBC_SHA256", "rsa", "aes", 16, "cbc", "sha256"),
    0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", "rsa", "aes", 32, "cbc", "sha256"),
    0x0033: ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "dhe", "aes", 16, "cbc", "sha256"),
    0x0039: ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "dhe", "aes", 32, "cbc", "sha256"),
    0x0067: ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "dhe", "aes", 16, "cbc", "sha256"),
    0x006B: ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "dhe", "aes", 32, "cbc", "sha256"),
    0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ecdhe", "aes", 16, "cbc", "sha256"),
    0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ecdhe", "aes", 32, "cbc", "sha256"),
    0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ecdhe", "aes", 16, "cbc", "sha256"),
    0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ecdhe", "aes", 32, "cbc", "sha256"),
    0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ecdhe", "aes", 16, "cbc", "sha256"),
    0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ecdhe", "aes", 32, "cbc", "sha384"),
    0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ecdhe", "aes", 16, "cbc", "sha256"),
    0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ecdhe", "aes", 32, "cbc", "sha384"),
    # Named so they can be judged; never decrypted.
    0x0000: ("TLS_NULL_WITH_NULL_NULL", "null", "null", 0, "null", "sha256"),
    0x0001: ("TLS_RSA_WITH_NULL_MD5", "rsa", "null", 0, "null", "sha256"),
    0x0002: ("TLS_RSA_WITH_NULL_SHA", "rsa", "null", 0, "null", "sha256"),
    0x003B: ("TLS_RSA_WITH_NULL_SHA256", "rsa", "null", 0, "null", "sha256"),
    0x0004: ("TLS_RSA_WITH_RC4_128_MD5", "rsa", "rc4", 16, "stream", "sha256"),
    0x0005: ("TLS_RSA_WITH_RC4_128_SHA", "rsa", "rc4", 16, "stream", "sha256"),
    0xC011: ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ecdhe", "rc4", 16, "stream", "sha256"),
    0x000A: ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "rsa", "3des", 24, "cbc", "sha256"),
    0x0016: ("TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", "dhe", "3des", 24, "cbc", "sha256"),
    0xC012: ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ecdhe", "3des", 24, "cbc", "sha256"),
    0x0003: ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", "rsa_export", "rc4", 5, "stream", "sha256"),
    0x0008: ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", "rsa_export", "des", 5, "cbc", "sha256"),
    0x0009: ("TLS_RSA_WITH_DES_CBC_SHA", "rsa", "des", 7, "cbc", "sha256"),
    0x0018: ("TLS_DH_anon_WITH_RC4_128_MD5", "dh_anon", "rc4", 16, "stream", "sha256"),
    0x0034: ("TLS_DH_anon_WITH_AES_128_CBC_SHA", "dh_anon", "aes", 16, "cbc", "sha256"),
    0xC018: ("TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "ecdh_anon", "aes", 16, "cbc", "sha256"),
}

SCSV = {0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV", 0x5600: "TLS_FALLBACK_SCSV"}


class Suite:
    __slots__ = ("code", "name", "kex", "cipher", "key_bytes", "mode", "hash")

    def __init__(self, code, name, kex, cipher, key_bytes, mode, hash):
        self.code, self.name, self.kex, self.cipher = code, name, kex, cipher
        self.key_bytes, self.mode, self.hash = key_bytes, mode, hash

    @property
    def mac_hash(self) -> str:
        """The record MAC's hash of a CBC suite (RFC 5246 6.2.3.1)."""
        if self.name.endswith("_SHA"):
            return "sha1"
        return "sha384" if self.name.endswith("SHA384") else "sha256"


SUITES = {code: Suite(code, *row) for code, row in _S.items()}


def suite_name(code: int | None) -> str:
    if code is None:
        return "?"
    s = SUITES.get(code)
    if s:
        return s.name
    return SCSV.get(code, f"0x{code:04X}")


def bcp195_verdict(code: int) -> tuple[str, str] | None:
    """What RFC 9325 4.1 says against a negotiated suite: ``("must", why)``
    for a MUST NOT, ``("should", why)`` for a SHOULD NOT, None when it has
    nothing against it (or the suite is unknown)."""
    s = SUITES.get(code)
    if s is None:
        return None
    if s.mode == "null" or s.cipher == "null":
        return "must", "NULL encryption (RFC 9325 4.1: MUST NOT)"
    if s.cipher == "rc4":
        return "must", "RC4 (RFC 7465, RFC 9325 4.1: MUST NOT)"
    if s.kex.endswith("anon"):
        return "must", "anonymous key exchange, no authentication (RFC 9325 4.1: MUST NOT)"
    if s.kex == "rsa_export" or s.key_bytes * 8 < 112:
        return "must", "less than 112 bits of security (RFC 9325 4.1: MUST NOT)"
    if s.cipher == "3des" or s.key_bytes * 8 < 128:
        return "should", "less than 128 bits of security (RFC 9325 4.1: SHOULD NOT)"
    if s.kex == "rsa":
        return "should", ("static RSA key transport, no forward secrecy "
                          "(RFC 9325 4.1: SHOULD NOT)")
    return None
