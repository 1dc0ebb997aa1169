"""tests/tlscerts.py makes a PKI that Python's ssl (OpenSSL) accepts and
rejects as intended: handshakes in memory (ssl.MemoryBIO), no sockets."""

from __future__ import annotations

import ssl

import pytest

from tlscerts import HOSTNAME, make_pki

# OpenSSL X509_V_ERR_* codes
CERT_NOT_YET_VALID, CERT_HAS_EXPIRED = 9, 10
SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 19, 20


def contexts(pki, *, server_cert=None, trust=None, client_cert=True):
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(trust or pki.ca_cert)
    if client_cert:
        client.load_cert_chain(pki.client_cert, pki.client_key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(pki.ca_cert)
    server.load_cert_chain(server_cert or pki.server_cert, pki.server_key)
    return client, server


def handshake(client_ctx, server_ctx, hostname=HOSTNAME):
    """Run a TLS handshake in memory; returns (client, server) SSLObjects or
    raises the first side's error."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {client: False, server: False}
    for _ in range(20):
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client, server
    raise AssertionError("handshake did not finish")


@pytest.fixture(scope="module", params=["ec", "rsa"])
def pki(request, tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp(f"pki-{request.param}"), key=request.param)


def test_files_are_pem_and_keys_unencrypted(pki):
    for path in (pki.ca_cert, pki.server_cert, pki.client_cert, pki.expired_cert,
                 pki.future_cert, pki.other_ca_cert):
        assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for path in (pki.ca_key, pki.server_key, pki.client_key, pki.other_ca_key):
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")   # PKCS#8, clear


def test_mutual_authentication_works(pki):
    client, server = handshake(*contexts(pki))
    assert server.getpeercert()["subject"][-1] == (("commonName", "dicomwire test client"),)
    assert ("IP Address", "127.0.0.1") in client.getpeercert()["subjectAltName"]
    handshake(*contexts(pki), hostname="127.0.0.1")


@pytest.mark.parametrize("variant, code", [("expired_cert", CERT_HAS_EXPIRED),
                                           ("future_cert", CERT_NOT_YET_VALID)])
def test_out_of_date_server_certificates_are_rejected(pki, variant, code):
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(*contexts(pki, server_cert=getattr(pki, variant)))
    assert err.value.verify_code == code


def test_the_other_ca_does_not_vouch_for_the_server(pki):
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(*contexts(pki, trust=pki.other_ca_cert))
    # 19 when the server sends the CA along (OpenSSL builds the chain from the
    # server's trust store), else 20; both are the unknown_ca alert
    assert err.value.verify_code in (SELF_SIGNED_CERT_IN_CHAIN,
                                     UNABLE_TO_GET_ISSUER_CERT_LOCALLY)


def test_server_requires_a_client_certificate(pki):
    with pytest.raises(ssl.SSLError):
        handshake(*contexts(pki, client_cert=False))


def test_dcmtk_args(pki):
    assert pki.dcmtk_args("server") == ["+tls", str(pki.server_key), str(pki.server_cert),
                                        "+cf", str(pki.ca_cert)]
    assert pki.dcmtk_args("client", trust=pki.other_ca_cert)[-1] == str(pki.other_ca_cert)


def test_ec_keys_are_the_same_on_every_run(tmp_path):
    a, b = make_pki(tmp_path / "a"), make_pki(tmp_path / "b")
    for name in ("ca.key", "server.key", "client.key", "other_ca.key"):
        assert (a.directory / name).read_bytes() == (b.directory / name).read_bytes()
    assert a.server_key.read_bytes() != a.client_key.read_bytes()
