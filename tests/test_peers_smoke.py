"""Smoke test for tests/peers.py: capture one real C-ECHO on loopback."""

import shutil
import subprocess

import pytest

import peers

pytestmark = [pytest.mark.interop, pytest.mark.root]

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",   # pcap (us)
               b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",   # pcap (ns)
               b"\x0a\x0d\x0d\x0a"}                        # pcapng


def test_capture_c_echo(tmp_path):
    peers.require_capture()
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    port = peers.free_port()
    pcap = tmp_path / "echo.pcap"
    server = peers.start_scp(port)
    try:
        with peers.capture(pcap, port) as cap:
            ae = AE("SMOKESCU")
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
            ae.add_requested_context(Verification)
            assoc = ae.associate(peers.LOOPBACK, port, ae_title="STORESCP")
            assert assoc.is_established
            status = assoc.send_c_echo()
            assoc.release()
    finally:
        peers.stop_scp(server)

    assert status.Status == 0x0000
    assert pcap.is_file()
    assert pcap.read_bytes()[:4] in PCAP_MAGICS
    assert cap.captured and cap.captured >= 10  # handshake..FIN, PDUs

    tshark = shutil.which("tshark")
    if tshark:
        res = subprocess.run(
            [tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={port},dicom",
             "-Y", "dicom", "-T", "fields", "-e", "frame.number"],
            capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split(), "tshark found no DICOM frames"
