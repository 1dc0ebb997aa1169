"""The DICOM pack's plugin: detection, framing, association and DIMSE state.

Registered as the built-in ``dicom`` (``-p no:dicom`` turns DICOM decoding
off). It selects streams (configured ports, or the A-ASSOCIATE-RQ heuristic
on any port) and gives each a :class:`~dicomwire.plugins.dicom.dissector.DicomStream`,
which announces associations, PDUs and messages through the hooks in
:mod:`dicomwire.plugins.dicom.hookspecs`.
"""

from __future__ import annotations

import itertools

from dicomwire.hookspecs import MORE, StreamInterest, hookimpl
from dicomwire.prefs import Preference
from dicomwire.plugins.dicom import detect, hookspecs
from dicomwire.plugins.dicom.dissector import DicomStream


class _Counter:
    """Association numbering of a run; ``ids``: the engine's id maker of a
    distributed run (``config.state["ids"]``, :mod:`dicomwire.handover`)."""

    def __init__(self, ids=None):
        self._it = itertools.count()
        self.ids = ids

    def next(self) -> int:
        n = next(self._it)
        return n if self.ids is None else self.ids("a", n)


def _check_ports(value):
    detect.parse_ports(value)          # ValueError: a usage error


# Wireshark's DICOM preference names (packet-dcm.c prefs_register_*), with
# the flag of the DICOM commands that sets each (argparse dest).
PREFERENCES = (
    Preference("dicom.tcp.port", "range", "104,11112", "DICOM Ports: TCP ports decoded as DICOM",
               flag="ports", check=_check_ports),
    Preference("dicom.tls.port", "range", "2762", "DICOM over TLS ports (PS3.15 Annex B; "
               "2762 by IANA): TCP ports read as TLS carrying DICOM", check=_check_ports),
    Preference("dicom.heuristic", "bool", True, "Search on any TCP port for an A-ASSOCIATE-RQ "
               "(on by default here, off in Wireshark)", flag="heuristic"),
    Preference("dicom.export_header", "bool", True, "Create Meta Header on Export",
               flag="export_header"),
    Preference("dicom.export_minsize", "int", 10, "Min. item size in bytes to export",
               flag="export_minsize"),
    Preference("dicom.seq_tree", "bool", True, "Create subtrees for Sequences and Items",
               flag="seq_tree"),
    Preference("dicom.tag_tree", "bool", False, "Create subtrees for DICOM Tags (show -V detail)",
               flag="tag_tree"),
    Preference("dicom.pdv_reassemble", "bool", True, "Merge fragmented PDVs: show -V decodes "
               "each data set whole; off, it lists the PDV fragments only (export and checks "
               "always reassemble)"),
)


@hookimpl
def dicomwire_preferences():
    return PREFERENCES


@hookimpl
def dicomwire_capture_start(capture):
    # The in-memory data set budget counts this run's messages only: bytes of
    # messages a failed dissector never released must not shrink it for good.
    from dicomwire.plugins.dicom import spool
    spool.held[0] = 0


@hookimpl
def dicomwire_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hookspecs)


def _ports(config, name="dicom.tcp.port"):
    ranges = config.state.get(name)
    if ranges is None:
        ranges = config.state[name] = detect.parse_ports(config.pref(name))
    return ranges


def _on_ports(stream, ranges) -> bool:
    return detect.port_matches(ranges, stream.server[1]) or (
        not stream.client_known and detect.port_matches(ranges, stream.client[1]))


@hookimpl
def dicomwire_stream_dissector(stream, direction, payload, config, host):
    tls = _tls_claim(stream, direction, payload, config)
    if tls:
        if tls is MORE:
            return MORE
        from dicomwire.tls import TLSLayer
        return TLSLayer(stream, host, config,
                        inner=lambda view, d, plain: _select(view, d, plain, config, host, True))
    return _select(stream, direction, payload, config, host, False)


@hookimpl
def dicomwire_stream_interest(config):
    # What dicomwire_stream_dissector may take: its ports (DICOM, DICOM over
    # TLS); elsewhere a client's A-ASSOCIATE-RQ (PDU type 1) or TLS
    # ClientHello (record type 22), with the heuristic on.
    ports = {p for name in ("dicom.tcp.port", "dicom.tls.port")
             for a, b in _ports(config, name) for p in range(a, b + 1)}
    return StreamInterest(ports, b"\x01\x16" if config.pref("dicom.heuristic") else b"")


def _tls_claim(stream, direction, payload, config):
    """True (or MORE) when the stream is DICOM over TLS: a DICOM-TLS port
    (dicom.tls.port), or a ClientHello on a DICOM port or, with the
    heuristic on, on any port unless it names another protocol (ALPN)."""
    if _on_ports(stream, _ports(config, "dicom.tls.port")):
        return True
    if direction != 0:
        return False
    from dicomwire.tls.wire import client_hello_alpn, looks_like_client_hello
    hello = looks_like_client_hello(payload)
    if not hello:
        return MORE if hello is None and config.pref("dicom.heuristic") else False
    if _on_ports(stream, _ports(config)):
        return True
    if not config.pref("dicom.heuristic"):
        return False
    alpn = client_hello_alpn(payload)
    if alpn is None:
        return MORE                 # the hello continues in the next segment
    return not alpn                 # DICOM negotiates no ALPN; h2, http/1.1...: not ours


def _select(stream, direction, payload, config, host, inside_tls):
    """DICOM on a stream's (plaintext) bytes: a DICOM port, a DICOM-TLS
    port's plaintext, or an A-ASSOCIATE-RQ with the heuristic on."""
    if not (_on_ports(stream, _ports(config)) or (
            inside_tls and _on_ports(stream, _ports(config, "dicom.tls.port")))):
        if not (config.pref("dicom.heuristic") and direction == 0):
            return None
        rq = detect.associate_rq(payload)
        if not rq:
            # Too few bytes to tell (the PDU header alone in its segment):
            # the engine asks again with more.
            return MORE if rq is None else None
    counter = config.state.setdefault("dicom.associations",
                                     _Counter(config.state.get("ids")))
    return DicomStream(stream, host, config, counter)
