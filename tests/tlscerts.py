"""A throwaway test PKI for DICOM over TLS (PS3.15 Annex B), made with ``cryptography``.

    from tlscerts import make_pki
    pki = make_pki(tmp_path)              # PEM files in tmp_path
    pki.server_key, pki.server_cert       # DCMTK: +tls KEY CERT +cf pki.ca_cert
    pki.dcmtk_args("server")              # the same as a list of options
    ctx.load_cert_chain(pki.client_cert, pki.client_key)   # Python's ssl

Everything is written into one directory, PEM, keys unencrypted (DCMTK reads
them without ``+pw``; Python's ``load_cert_chain`` without a password):

==================  ==========================================================
``ca.pem/.key``     the test CA ("dicomwire test CA")
``server.pem/.key`` server: CN ``localhost``, SAN DNS:localhost, IP:127.0.0.1,
                    serverAuth; signed by the CA
``client.pem/.key`` client: CN ``dicomwire test client``, clientAuth; signed
                    by the CA
``server_expired.pem``  the server's key and names, validity over a day ago
``server_future.pem``   the same, valid only from a month on (not yet valid)
``other_ca.pem/.key``   a second, unrelated CA with the same kind of name: a
                    peer that trusts only it rejects the server (unknown CA)
==================  ==========================================================

The two variants reuse ``server.key``.  Normal certificates are valid from an
hour ago for *days* days.  With ``key="ec"`` (the default) the keys are P-256
keys derived from fixed labels, so the same key comes out on every run and
every machine (a test PKI: never use such keys for anything else);
``key="rsa"`` makes fresh 2048-bit RSA keys (for TLS 1.2 ``ECDHE_RSA`` suites).
Serial numbers and names are fixed; only validity times, RSA keys and the
signatures change between runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORG = "dicomwire tests"
HOSTNAME = "localhost"


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths of the PEM files written by :func:`make_pki`."""
    directory: Path
    key_type: str

    def _p(self, name: str) -> Path:
        return self.directory / name

    ca_cert = property(lambda self: self._p("ca.pem"))
    ca_key = property(lambda self: self._p("ca.key"))
    server_cert = property(lambda self: self._p("server.pem"))
    server_key = property(lambda self: self._p("server.key"))
    client_cert = property(lambda self: self._p("client.pem"))
    client_key = property(lambda self: self._p("client.key"))
    expired_cert = property(lambda self: self._p("server_expired.pem"))
    future_cert = property(lambda self: self._p("server_future.pem"))
    other_ca_cert = property(lambda self: self._p("other_ca.pem"))
    other_ca_key = property(lambda self: self._p("other_ca.key"))

    def dcmtk_args(self, role: str, *, cert: Path | None = None,
                   trust: Path | None = None) -> list[str]:
        """DCMTK TLS options for *role* ("server" or "client"): ``+tls KEY
        CERT +cf CA`` (the server's or the client's key and certificate;
        *cert* replaces the certificate, *trust* the trusted CA file)."""
        key = self.server_key if role == "server" else self.client_key
        cert = cert or (self.server_cert if role == "server" else self.client_cert)
        return ["+tls", str(key), str(cert), "+cf", str(trust or self.ca_cert)]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _key(label: str, key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type != "ec":
        raise ValueError(f"key type {key_type!r}: 'ec' or 'rsa'")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551   # P-256 n
    seed = hashlib.sha256(f"dicomwire-tls-test-pki:{label}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(seed, "big") % (order - 1) + 1, ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(cn: str, key, serial: int, start, end) -> x509.Certificate:
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))


def _leaf(cn: str, key, serial: int, start, end, ca_cert, ca_key, *,
          server: bool) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False,
                   key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                   data_encipherment=False, key_agreement=False, key_cert_sign=False,
                   crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server
                    else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(HOSTNAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def make_pki(directory: str | os.PathLike, *, key: str = "ec", days: int = 7,
             now: datetime.datetime | None = None) -> Pki:
    """Write the test PKI into *directory* (created if needed); see the
    module docstring.  *now* (UTC) moves every validity period."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = now or _now()
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
    day = datetime.timedelta(days=1)
    pki = Pki(d, key)

    ca_key = _key("ca", key)
    ca = _ca("dicomwire test CA", ca_key, 0x1001, start, now + 4 * day * max(days, 1))
    other_key = _key("other-ca", key)
    other = _ca("dicomwire other test CA", other_key, 0x2001, start,
                now + 4 * day * max(days, 1))
    server_key, client_key = _key("server", key), _key("client", key)
    certs = {
        pki.ca_cert: ca,
        pki.other_ca_cert: other,
        pki.server_cert: _leaf(HOSTNAME, server_key, 0x1002, start, end, ca, ca_key,
                               server=True),
        pki.client_cert: _leaf("dicomwire test client", client_key, 0x1003, start, end,
                               ca, ca_key, server=False),
        pki.expired_cert: _leaf(HOSTNAME, server_key, 0x1004, now - 30 * day, now - day,
                                ca, ca_key, server=True),
        pki.future_cert: _leaf(HOSTNAME, server_key, 0x1005, now + 30 * day,
                               now + 60 * day, ca, ca_key, server=True),
    }
    for path, k in ((pki.ca_key, ca_key), (pki.other_ca_key, other_key),
                    (pki.server_key, server_key), (pki.client_key, client_key)):
        _write_key(path, k)
    for path, cert in certs.items():
        _write_cert(path, cert)
    return pki


if __name__ == "__main__":
    import sys
    print(make_pki(sys.argv[1] if len(sys.argv) > 1 else "pki").directory)
