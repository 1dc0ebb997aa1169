"""TLS in the engine: a record layer any pack can put between TCP and its
stream dissector (:class:`TLSLayer`), handshake decoding and findings, and
decryption with an NSS key log (preference ``tls.keylog_file``, Wireshark's
name).  Protocol-agnostic: the pack says which streams are TLS and which
dissector reads the plaintext.

Modules: :mod:`.wire` (record and handshake layouts), :mod:`.suites`
(names, BCP 195 verdicts), :mod:`.keylog`, :mod:`.crypto` (keys and record
opening over ``cryptography``), :mod:`.certs`, :mod:`.session` (what was
negotiated, hints), :mod:`.handshake`, :mod:`.findings`, :mod:`.layer`.
"""

from dicomwire.tls.findings import KEYLOG_PREF, TLS_FIELDS
from dicomwire.tls.layer import PlainView, TLSLayer
from dicomwire.tls.session import Session
from dicomwire.tls.wire import looks_like_client_hello

__all__ = ["TLSLayer", "PlainView", "Session", "TLS_FIELDS", "KEYLOG_PREF",
           "looks_like_client_hello"]
