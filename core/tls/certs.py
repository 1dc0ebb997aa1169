"""Certificates as a troubleshooter reads them: subject, issuer, validity,
host names; and whether each was valid at the moment it crossed the wire.
Parsing is ``cryptography``'s; a certificate it cannot parse is reported,
never fatal."""

from __future__ import annotations

from datetime import datetime, timezone


class CertInfo:
    __slots__ = ("subject", "issuer", "not_before", "not_after", "names", "error")

    def __init__(self, subject="?", issuer="?", not_before=None, not_after=None, names=(),
                 error=None):
        self.subject, self.issuer = subject, issuer
        self.not_before, self.not_after = not_before, not_after
        self.names, self.error = list(names), error

    def as_dict(self) -> dict:
        return {"subject": self.subject, "issuer": self.issuer,
                "not_before": self.not_before.isoformat() if self.not_before else None,
                "not_after": self.not_after.isoformat() if self.not_after else None,
                "names": self.names, "error": self.error}

    def validity_at(self, ts_ns: int) -> str | None:
        """None when valid at ``ts_ns`` (the frame's time, nanoseconds since
        the epoch), else ``"expired"`` or ``"not yet valid"``."""
        if self.not_after is None:
            return None
        when = datetime.fromtimestamp(ts_ns / 1e9, timezone.utc)
        if when > self.not_after:
            return "expired"
        if when < self.not_before:
            return "not yet valid"
        return None


def read_certificate(der: bytes) -> CertInfo:
    try:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der)
        names = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n.value) for n in san]
        except x509.ExtensionNotFound:
            pass
        return CertInfo(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                        cert.not_valid_before_utc, cert.not_valid_after_utc, names)
    except Exception as e:           # damaged DER: say so, keep going
        return CertInfo(error=f"certificate not readable: {e}")
