"""Case files: an exchange as a pcapng of synthesised TCP/IP frames
(written with :class:`dicomwire.pcapng_writer.PcapngWriter`), and its replay."""

from __future__ import annotations

import os

from dicomwire.capture import open_capture
from dicomwire.link import LinkDecoder, reverse_flow
from dicomwire.pcapng_writer import ACK, FIN, PSH, RST, SYN, PcapngWriter, tcp_frame
from dicomwire.plugins.dicom.fuzzpeer.cases import Step, fixed
from dicomwire.plugins.dicom.fuzzpeer.peer import Exchange, Options, PeerDown, Target
from dicomwire.plugins.dicom.fuzzpeer.probe import CaseResult, probe_with_retry, run_steps, verdict

# pcapng
# ===========================================================================

MSS = 32768


def exchange_frames(ex: Exchange) -> list[tuple[int, bytes, str]]:
    """The TCP/IP frames of an exchange: ``(time ns, frame, comment)``:
    handshake, data in segments of at most :data:`MSS` bytes, FIN/RST."""
    ends = [(ex.client[0], ex.client[1]), (ex.server[0], ex.server[1])]
    nxt = [1000, 5000]                      # next sequence number per side
    out = []
    ident = [1, 1]

    def emit(t, side, flags, payload=b"", comment=""):
        (sa, sp), (da, dp) = ends[side], ends[1 - side]
        ack = nxt[1 - side] if flags & ACK else 0
        out.append((t, tcp_frame(sa, da, sp, dp, nxt[side], ack, flags, payload, ident[side]),
                    comment))
        ident[side] += 1

    first = True
    for e in ex.events:
        comment = ex.label if first else ""
        first = False
        if e.what == "syn":
            emit(e.t, 0, SYN, comment=comment)
            nxt[0] += 1
            emit(e.t, 1, SYN | ACK)
            nxt[1] += 1
            emit(e.t, 0, ACK)
        elif e.what == "refused":
            emit(e.t, 0, SYN, comment=comment)
            nxt[0] += 1
            emit(e.t, 1, RST | ACK)
        elif e.what == "data":
            for i in range(0, len(e.data), MSS):
                piece = e.data[i:i + MSS]
                note = "; ".join(x for x in (comment, e.note) if x) if i == 0 else ""
                emit(e.t, e.side, PSH | ACK, piece, note)
                nxt[e.side] += len(piece)
        elif e.what == "fin":
            emit(e.t, e.side, FIN | ACK, comment=comment)
            nxt[e.side] += 1
        elif e.what == "rst":
            emit(e.t, e.side, RST | ACK, comment=comment)
    return out


def write_pcapng(path: str, exchanges: list[Exchange], comments: list[str] = ()) -> int:
    """Write the exchanges as one pcapng (Ethernet, nanosecond timestamps),
    section comments first; frames in time order.  Returns the frame count."""
    frames = sorted((f for ex in exchanges for f in exchange_frames(ex)), key=lambda f: f[0])
    with open(path, "wb") as f:
        writer = PcapngWriter(f, application="dicomwire fuzz", comments=comments)
        writer.add_interface(1, name="lo")
        for t, data, comment in frames:
            writer.write(t, data, comments=[comment] if comment else ())
    return len(frames)


# ===========================================================================
# Replay
# ===========================================================================


def client_script(path: str) -> list[tuple[bytes, bool]]:
    """The client side of the first TCP connection of a capture, as
    ``(bytes, wait for an answer)`` chunks: consecutive client segments are
    one chunk; a chunk waits when the server sent something before the next
    chunk (or when it is the last one)."""
    dec = LinkDecoder()
    client = None
    chunks: list[list] = []
    with open_capture(path) as reader:
        for fr in reader.frames():
            seg = dec.decode(fr.linktype, fr.data)
            if seg is None:
                continue
            flow, _seq, _ack, flags, payload = seg[:5]
            if client is None:
                if flags & SYN and not flags & ACK:
                    client = flow
                continue
            if flow == client:
                if flags & SYN and not flags & ACK:
                    break                    # the next connection (the probe)
                if payload:
                    if chunks and not chunks[-1][1]:
                        chunks[-1][0] += bytes(payload)
                    else:
                        chunks.append([bytes(payload), False])
            elif flow == reverse_flow(client) and payload and chunks:
                chunks[-1][1] = True
    if client is None:
        raise ValueError(f"{path}: no TCP connection opening (SYN) found")
    if chunks:
        chunks[-1][1] = True
    return [(b, w) for b, w in chunks]


def replay(target: Target, path: str, opts: "Options") -> CaseResult:
    """Resend the client side of a case file to ``target``, then probe.
    Raises :class:`PeerDown` if the peer fails a probe beforehand."""
    script = client_script(path)
    before = probe_with_retry(target, opts)
    if before.status != "ok":
        raise PeerDown(before.detail)
    steps = [Step(f"chunk {i + 1} ({len(b)} bytes)", fixed([b]), expect=w)
             for i, (b, w) in enumerate(script)]
    res = run_steps(target, steps, opts, f"dicomwire fuzz: replay of {os.path.basename(path)}")
    res.kind = "replay"
    res.probe = probe_with_retry(target, opts)
    res.verdict = verdict(res, res.probe)
    return res


# ===========================================================================
