"""DICOM traffic for the live capture tests (tests/test_live_root.py), run
inside a test's network namespace: a pynetdicom SCP on 127.0.0.1:PORT and a
client that, every PAUSE seconds until stopped (SIGTERM, SIGINT) or COUNT
associations, opens one: a C-ECHO and a C-STORE of pydicom's CT_small, or,
every third, an association to a called AE title the SCP rejects.

    python tests/live_traffic.py PORT [PAUSE] [COUNT]
"""

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import CTImageStorage, Verification  # noqa: E402

stop = False


def _stop(*_):
    global stop
    stop = True


def main(argv):
    port = int(argv[0])
    pause = float(argv[1]) if len(argv) > 1 else 0.3
    count = int(argv[2]) if len(argv) > 2 else 0
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    server = peers.start_scp(port, require_called_aet=True)
    print("ready", flush=True)
    n = 0
    try:
        while not stop and (not count or n < count):
            ae = AE("LIVESCU")
            ae.add_requested_context(Verification)
            ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
            n += 1
            called = "WRONG_AE" if n % 3 == 0 else "STORESCP"
            assoc = ae.associate("127.0.0.1", port, ae_title=called)
            if assoc.is_established:
                assoc.send_c_echo()
                assoc.send_c_store(ds)
                assoc.release()
            time.sleep(pause)
    finally:
        peers.stop_scp(server)


if __name__ == "__main__":
    main(sys.argv[1:])
