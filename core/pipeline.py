"""The one streaming pass: capture -> link -> TCP -> dissectors and hooks.

Every command runs :func:`run`; nothing reads the capture twice. Per frame
the loop does only what it must (read, decode, feed the reassembler); hooks
fire per capture and per stream, dissectors get stream bytes directly.

Three shortcuts carry the bulk of a transfer, each checked against the
general path by tests/test_pipeline.py: the fast path (an in-order
Ethernet/IPv4/TCP segment of a known flow, delivered without the link
decoder and the reassembler); the bulk lane (inside a long opaque run the dissector
lets payloads be appended to the message without a call per segment, see
tcp.Direction.lane); and, in a classic pcap, bursts (the records that follow
a lane segment on the same flow, taken with one state update). Payloads of a
memory-mapped capture are memoryviews of the map: nothing is copied unless
an object is written out.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from dicomwire.capture import CaptureReader, open_capture
from dicomwire.config import Config
from dicomwire.expert import ENGINE_FIELDS, ExpertLog
from dicomwire.hookspecs import MORE, PEEK_BYTES, PEEK_CALLS
from dicomwire.host import PluginHost
from dicomwire.link import ETH_IPV4_TCP, SHORT, LinkDecoder
from dicomwire.tcp import Reassembler, Stream, StreamSink


@dataclass
class Result:
    """What one pass found, for renderers and ``dicomwire_capture_end``."""
    reader: CaptureReader
    link: LinkDecoder
    streams: list[Stream]
    host: PluginHost
    expert: ExpertLog
    elapsed: float = 0.0
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.reader.frames_read

    @property
    def first_ts(self) -> int | None:
        """Time (ns) of the capture's first frame: the origin of relative
        times, as in tshark (frame.time_relative, conversations' start)."""
        if self.reader.first_ts is not None:
            return self.reader.first_ts
        return min((s.first_ts for s in self.streams), default=None)

    def problems(self) -> int:
        """Count of input faults: reader warnings, malformed frames, stream gaps
        and conflicting retransmissions, plugin failures."""
        n = len(self.reader.warnings) + self.link.stats.malformed + self.host.error_count
        for s in self.streams:
            for d in s.dirs:
                n += d.gaps + d.conflicts
        return n


class _Dispatch(StreamSink):
    """Reassembler events -> stream hooks and the stream's dissector."""

    def __init__(self, host: PluginHost, config: Config):
        self.host = host
        self.expert = host.expert
        self.config = config
        self.owner: dict[int, str] = {}        # stream id -> plugin that dissects it
        # Streams whose selection answered MORE: id -> [bytes held, calls,
        # [(direction, offset, payload, frame, ts), ...]] (see _select).
        self.held: dict[int, list] = {}

    def stream_open(self, stream):
        self.host.call("dicomwire_stream_open", stream=stream)

    def data(self, stream, direction, offset, payload, frame, ts):
        dis = stream.dissector
        if dis is None:
            if not self.config.dissect:
                stream.dissector = False
            else:
                self._select(stream, direction, offset, payload, frame, ts)
            return
        if dis:
            try:
                dis.data(direction, offset, payload, frame, ts)
            except Exception as e:
                self._dissector_failed(stream, "data", e)

    def _select(self, stream, direction, offset, payload, frame, ts):
        """Protocol selection on a stream's first payloads (called only while
        ``stream.dissector`` is None). While the answer is MORE the payloads
        are held (copied: the caller's views do not outlive the call), within
        PEEK_CALLS / PEEK_BYTES; once a dissector is chosen it gets them all,
        as they came."""
        held = self.held.get(stream.id)
        if held is None:
            peek = payload
        else:
            held[0] += len(payload)
            held[1] += 1
            held[2].append((direction, offset, bytes(payload), frame, ts))
            peek = b"".join([p[2] for p in held[2] if p[0] == direction])
        dis, owner = self.host.call_select("dicomwire_stream_dissector", stream=stream,
                                           direction=direction, payload=peek,
                                           config=self.config, host=self.host)
        if dis is MORE:
            if held is None:
                held = self.held[stream.id] = [len(payload), 1,
                                               [(direction, offset, bytes(payload), frame, ts)]]
            if held[1] < PEEK_CALLS and held[0] < PEEK_BYTES:
                return                      # ask again with the next payload
            dis = None
        if held is not None:
            del self.held[stream.id]
        stream.dissector = dis = dis or False
        if not dis:
            return
        self.owner[stream.id] = owner
        if held is None:
            pieces = ((direction, offset, payload, frame, ts),)
        else:
            pieces = held[2]
        host = self.host
        now = host.frame
        for d, off, p, f, t in pieces:
            host.frame = f
            try:
                dis.data(d, off, p, f, t)
            except Exception as e:
                self._dissector_failed(stream, "data", e)
                break
        host.frame = now

    def gap(self, stream, direction, offset, size, frame, ts):
        self.host.expert.report(
            "tcp.gap", f"{size} bytes missing from the capture at offset {offset} of "
            f"stream {stream.id} ({'client to server' if direction == 0 else 'server to client'})",
            frames=[frame], stream=stream.id)
        dis = stream.dissector
        if dis is None and self.held.pop(stream.id, None) is not None:
            stream.dissector = False        # undecided, and now bytes are missing: give up
        elif dis:
            try:
                dis.gap(direction, offset, size, frame, ts)
            except Exception as e:
                self._dissector_failed(stream, "gap", e)

    def conflict(self, stream, direction, offset, size, frame, ts):
        self.host.expert.report(
            "tcp.overlap.conflict", f"retransmitted bytes {offset}-{offset + size - 1} of "
            f"stream {stream.id} differ from the first copy", frames=[frame], stream=stream.id)

    def stream_close(self, stream):
        if self.held:
            self.held.pop(stream.id, None)  # still undecided: not dissected
        if stream.close_reason == "refused":
            from dicomwire.addr import format_endpoint
            self.host.expert.report(
                "tcp.refused", f"connection to {format_endpoint(*stream.server)} refused "
                f"(SYN answered by RST)", frames=[stream.last_frame], stream=stream.id)
        dis = stream.dissector
        if dis:
            try:
                dis.close()
            except Exception as e:
                self._dissector_failed(stream, "close", e)
        self.host.call("dicomwire_stream_close", stream=stream)

    def _dissector_failed(self, stream, what, exc):
        if isinstance(exc, BrokenPipeError):
            raise exc                   # our output's reader left: stop the run
        # A broken dissector loses its stream, not the run.
        self.host.failed(self.owner.get(stream.id, "?"), f"dissector.{what}", exc)
        stream.dissector = False
        for d in stream.dirs:
            d.lane, d.lane_parts = 0, None


def make_host(config: Config) -> PluginHost:
    return PluginHost(blocked=config.blocked, load=config.load)


def run(source, config: Config | None = None, host: PluginHost | None = None,
        *, progress=None, tap=None) -> Result:
    """Read ``source`` (path, ``'-'`` or binary file object) in one pass.

    ``progress``: optional callable ``(bytes_done, bytes_total_or_None,
    frames)``, called per 8 MiB window of a classic pcap, else about every
    64k frames. ``tap``: optional callable
    ``(number, ts_ns, linktype, data, orig_len, iface)`` that sees every frame
    (for writers that copy the capture, such as ``annotate``). Raises
    :class:`dicomwire.capture.CaptureError` only if the input is not a
    capture at all; faults later in the file end up in ``Result.warnings``.
    """
    config = config or Config()
    if host is None:
        host = make_host(config)
    expert = host.expert = ExpertLog()
    expert.register(ENGINE_FIELDS)
    for table in host.call("dicomwire_expert_fields"):
        expert.register(table)
    config.declare(host.call("dicomwire_preferences"))   # defaults, for library callers
    host.call("dicomwire_configure", config=config)
    t0 = time.perf_counter()
    reader = open_capture(source)
    dec = LinkDecoder()
    reasm = Reassembler(_Dispatch(host, config), max_ooo=config.max_ooo,
                        max_flows=config.max_flows)
    result = Result(reader, dec, reasm.streams, host, expert)
    host.call("dicomwire_capture_start", capture=reader)
    feed = reasm.feed
    decoders = {}

    def general(number, ts, linktype, data, orig, iface):
        """Any frame, by the book: link decode, reassembler, dispatcher."""
        decode = decoders.get(linktype)
        if decode is None:
            decode = decoders[linktype] = dec.decoder(linktype)
        dec.frame = number
        try:
            seg = decode(data)
        except SHORT:
            if orig > len(data):
                dec.stats.truncated += 1      # the snaplen cut the headers
            else:
                dec.short()
            return
        if seg is not None:
            host.frame = number
            feed(number, ts, seg)

    # The fast path repeats, inline, what link._ethernet's IPv4 fast path,
    # Reassembler.feed's in-order path and _Dispatch.data do for the bulk of
    # a capture (Ethernet/IPv4/TCP, in order, nothing held), to save three
    # calls and two tuples per frame. Anything else, or any doubt, takes the
    # general path; tests/test_pipeline.py checks both agree.
    flows, sink, hist_limit = reasm.flows, reasm.sink, reasm.history_limit
    unpack_eth = ETH_IPV4_TCP.unpack_from

    def fast_frame(buf, view, p, n, number, ts):
        """The Ethernet frame buf[p:p + n], if it is the next in-order TCP
        segment of a known flow: deliver it (its payload sliced from
        ``view``: buf itself, or a memoryview of it) and return True, or the
        flow's (stream, direction) if a bulk lane is open after it. False:
        not for the fast path."""
        if n < 54:
            return False
        etype, vihl, total, frag, proto, seq, ack, doff, flags, win = unpack_eth(buf, p + 12)
        # flags & 0x17 == 0x10: ACK set (its ack field is stored below), no SYN/FIN/RST.
        if etype != 0x0800 or vihl != 0x45 or proto != 6 or not win or flags & 0x17 != 0x10 \
                or frag & 0x3FFF:
            return False
        end = 14 + total
        at = 34 + (doff >> 4 << 2)
        if not 54 <= at <= end <= n:
            return False
        hit = flows.get(buf[p + 26:p + 38])
        if hit is None:
            return False
        stream, d = hit
        dr = stream.dirs[d]
        if seq != dr.expect or stream.holes:
            return False
        stream.last_frame = number
        stream.last_ts = ts
        dr.frames += 1
        dr.ack = ack
        n = end - at
        if n:
            payload = view[p + at:p + end]
            off = dr.next_off
            dr.expect = dr.next_seq = (seq + n) & 0xFFFFFFFF
            dr.next_off = off + n
            dr.history.append(payload)
            dr.hist_bytes += n
            if dr.hist_bytes > hist_limit:
                reasm._trim_history(dr)
            if n < dr.lane:
                dr.lane -= n              # the bulk lane: no dissector call
                dr.lane_parts.append(payload)
                return hit
            host.frame = number
            dis = stream.dissector
            if dis:
                try:
                    dis.data(d, off, payload, number, ts)
                except Exception as e:
                    sink._dissector_failed(stream, "data", e)
            elif dis is None:
                # The first payload of a stream picks its dissector: as bytes.
                sink.data(stream, d, off, bytes(payload), number, ts)
        # A lane left open: the pcap loop may take the next segments in a burst.
        return hit if dr.lane else True

    def burst(buf, view, pos, limit, number, hit, key, gi=None):
        """Right after a segment of flow ``key`` left its bulk lane open
        (``hit``: the stream and direction, as in the flow table): take the
        records that follow while each is the next plain in-order segment of
        that flow and fits in the lane, with one state update for all of
        them. Records are classic pcap ones, or (``gi``: the frame's
        interface) a mapped pcapng's Enhanced Packet Blocks, with the reader's
        own checks (CaptureReader.epb_layout). Returns (pos, number) after the
        last one taken. Anything else (another flow or interface, an ACK, a
        flag, a zero window, a retransmission, a cut record, block options,
        the lane's end, a segment without ACK) stops it; the loop goes on as
        usual."""
        ng = gi is not None
        if ng:
            unpack_epb, u32, ifs = reader.epb_layout
            nif, max_record = len(ifs), reader.max_record
        stream, d = hit
        dr = stream.dirs[d]
        expect, lane = dr.expect, dr.lane
        parts, taken, last = [], 0, None
        while pos + 28 <= limit:
            if ng:
                btype, blen, iid, _tsh, _tsl, incl, orig = unpack_epb(buf, pos)
                q, end = pos + 28, pos + blen
                if btype != 6 or end > limit or iid >= nif or blen % 4 or blen > max_record \
                        or q + ((incl + 3) & ~3) != end - 4 or u32(buf, end - 4)[0] != blen \
                        or ifs[iid][2] != gi or ifs[iid][0] is None:
                    break
            else:
                _sec, _frac, incl, orig = unpack_rec(buf, pos)
                q = pos + rec
                end = q + incl
                if end > limit:
                    break
            if incl < 54 or incl < orig:
                break
            etype, vihl, total, frag, proto, seq, _ack, doff, flags, win = unpack_eth(buf, q + 12)
            if seq != expect or etype != 0x0800 or vihl != 0x45 or proto != 6 or not win \
                    or flags & 0x17 != 0x10 or frag & 0x3FFF or buf[q + 26:q + 38] != key:
                break
            at = 34 + (doff >> 4 << 2)
            e = 14 + total
            n = e - at
            if not 54 <= at <= e <= incl or not n or n >= lane:
                break
            lane -= n
            expect = (expect + n) & 0xFFFFFFFF
            parts.append(view[q + at:q + e])
            taken += n
            last = pos
            pos = end
        if last is None:
            return pos, number
        # The last record taken gives the stream's time and ACK.
        if ng:
            _t, _l, iid, tsh, tsl = unpack_epb(buf, last)[:5]
            last_ts, q = ((tsh << 32) | tsl) * ifs[iid][0], last + 28
        else:
            sec, frac = unpack_rec(buf, last)[:2]
            last_ts, q = sec * 1_000_000_000 + frac * mult, last + rec
        number += len(parts)
        stream.last_frame, stream.last_ts = number, last_ts
        dr.frames += len(parts)
        dr.ack = unpack_eth(buf, q + 12)[6]
        dr.expect = dr.next_seq = expect
        dr.next_off += taken
        dr.lane = lane
        dr.lane_parts += parts
        dr.history += parts
        dr.hist_bytes += taken
        if dr.hist_bytes > hist_limit:
            reasm._trim_history(dr)
        if ng:
            reader.advance(pos, number, reader.truncated)
        return pos, number

    # With a tap every frame is handed to it first; bursts (which take many
    # frames at once) are off then.
    fast = config.fast_path
    bursts = tap is None
    number = truncated = 0
    try:
        if fast and reader.format == "pcap":
            # Classic pcap: walk the records in place. A mapped file's payloads
            # are memoryviews of the map (read-only file pages: nothing is
            # copied until an object is written out); others are copied once.
            mapped = reader.src.mapped is not None
            unpack_rec = reader.record.unpack_from
            rec, mult, linktype = reader.record_size, reader.ts_mult, reader.linktype
            eth = linktype == 1
            for buf, pos, limit in reader.pcap_windows():
                view = memoryview(buf) if mapped else buf
                while pos + rec <= limit:
                    sec, frac, incl, orig = unpack_rec(buf, pos)
                    p = pos + rec
                    end = p + incl
                    if end > limit:
                        break
                    pos = end
                    number += 1
                    if incl < orig:
                        truncated += 1
                    ts = sec * 1_000_000_000 + frac * mult
                    if tap is not None:
                        tap(number, ts, linktype, buf[p:end], orig, 0)
                    r = eth and fast_frame(buf, view, p, incl, number, ts)
                    if not r:
                        general(number, ts, linktype, buf[p:end], orig, 0)
                    elif r is not True and bursts:
                        pos, number = burst(buf, view, pos, limit, number, r,
                                            buf[p + 26:p + 38])
                reader.advance(pos, number, truncated)
                if progress is not None:
                    progress(*reader.progress, number)
        else:
            mapped_ng = fast and bursts and reader.format == "pcapng" \
                and reader.src.mapped is not None
            mapped = reader.src.mapped
            view = memoryview(mapped) if mapped_ng else None
            for number, ts, linktype, data, orig, iface in reader:
                if tap is not None:
                    tap(number, ts, linktype, data, orig, iface)
                r = fast and linktype == 1 and fast_frame(data, data, 0, len(data), number, ts)
                if not r:
                    general(number, ts, linktype, data, orig, iface)
                elif r is not True and mapped_ng and reader.epb_layout is not None:
                    pos = reader._pos
                    burst(mapped, view, pos, min(len(mapped), pos + (8 << 20)), number, r,
                          data[26:38], iface)
                if progress is not None and not number & 0xFFFF:
                    progress(*reader.progress, number)
    except KeyboardInterrupt:
        if fast and reader.format == "pcap":
            reader.frames_read = number     # the fast loop counts them itself
        result.interrupted = True
        result.warnings.append("interrupted: results cover the frames read so far")
    finally:
        reader.close()
    host.frame = 0
    reasm.finish()
    if dec.pending_fragments():
        dec.frame = reader.frames_read
        dec._bad(f"{dec.pending_fragments()} IP datagram(s) never completed by their fragments")
    result.warnings[:0] = reader.warnings
    for w in reader.warnings:
        expert.report("capture.damaged", w, frames=[reader.frames_read or None])
    for frame, msg in dec.malformed:
        expert.report("link.malformed", msg, frames=[frame or None])
    for e in host.errors:
        expert.report("plugin.failed", str(e), frames=[e.frame or None])
    result.elapsed = time.perf_counter() - t0
    host.call("dicomwire_capture_end", result=result)
    return result


class Progress:
    """A one-line progress indicator on a terminal's stderr."""

    def __init__(self, stream=None, interval: float = 0.5):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.start = self.last = time.monotonic()
        self.shown = False

    def __call__(self, done, total, frames):
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        mb = done / 1e6
        pct = f"{100 * done / total:3.0f}% " if total else ""
        self.stream.write(f"\r{pct}{mb:,.0f} MB, {frames:,} frames, {now - self.start:.0f} s ")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
