"""Fuzz target: PDU framing and the spec pack (PS3.8 9.3). Input: one
PDU's bytes (or anything). Checks the spec's promises: parse_pdu raises only
SpecError, what parses builds back to the same bytes, iter_pdvs agrees with
the Construct parse of a P-DATA-TF, an item parses alone the same way, and
the stream-level helpers (PDU search, A-ASSOCIATE-RQ heuristic, salvage of a
broken A-ASSOCIATE) never raise."""

from __future__ import annotations

from dicomwire.plugins.dicom import detect
from dicomwire.specs.dicom import pdu as spec


def one_input(data: bytes) -> None:
    try:
        parsed = spec.parse_pdu(data)
    except spec.SpecError as e:
        assert str(e)
        parsed = None
    if parsed is not None:
        assert spec.build(spec.PDU, parsed) == data, "build(parse(x)) != x"
        if parsed.pdu_type == 4:
            fast = [(cid, mch, bytes(frag)) for cid, mch, frag, _off in spec.iter_pdvs(data[6:])]
            slow = [(p.context_id, p.message_control_header, bytes(p.fragment))
                    for p in parsed.body.pdvs]
            assert fast == slow
    elif len(data) >= 6 and data[0] == 4:
        # A P-DATA-TF that does not parse: the fast path must say why, or
        # the header length disagrees with the data.
        try:
            list(spec.iter_pdvs(data[6:]))
        except spec.SpecError:
            pass
    try:
        it = spec.parse(spec.Item, data)
    except spec.SpecError:
        it = None
    if it is not None:
        used = 4 + it.length
        assert spec.build(spec.Item, it) == data[:used]
    detect.looks_like_associate_rq(data)
    at, keep = detect.find_pdu(data)
    assert 0 <= keep <= len(data) and (at is None or 0 <= at < len(data))
    if data[:1] in (b"\x01", b"\x02"):
        spec.salvage_associate(data)
        spec.salvage_associate(data, [])


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "pdu", *sys.argv[1:]])
