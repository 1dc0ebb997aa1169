"""The one streaming pass: capture -> link -> TCP -> dissectors and hooks.

Every command runs :func:`run`; nothing reads the capture twice. Per frame
the loop does only what it must (read, decode, feed the reassembler); hooks
fire per capture and per stream, dissectors get stream bytes directly.

The bulk of a transfer never comes through here one frame at a time: with
``Config.fast_path`` (the default) the reader hands its records in place to
:class:`dicomwire.fastpath.FastPath`, which delivers plain in-order segments
itself (into a dissector's bulk lane where one is open) and sends the rest
down the general path below; tests/test_pipeline.py checks both agree.
Payloads of a memory-mapped capture are memoryviews of the map: nothing is
copied unless an object is written out.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from dicomwire.capture import CaptureReader, open_capture
from dicomwire.config import Config
from dicomwire.expert import ENGINE_FIELDS, ExpertLog
from dicomwire.tls import TLS_FIELDS, TLSLayer, looks_like_client_hello
from dicomwire.hookspecs import MORE, PEEK_BYTES, PEEK_CALLS
from dicomwire.host import PluginHost
from dicomwire.fastpath import FastPath, decline
from dicomwire.link import SHORT, LinkDecoder
from dicomwire.tcp import Reassembler, Stream, StreamSink

MAX_CONFLICTS = 100_000     # conflicting ranges kept for Result.conflicts
RETAIN_FINDINGS = 20_000    # findings a live run keeps (the older ones as counts)


@dataclass
class Result:
    """What one pass found, for renderers and ``dicomwire_capture_end``."""
    reader: CaptureReader              # or a dicomwire.capset.CaptureSet
    link: LinkDecoder
    streams: list[Stream]
    host: PluginHost
    expert: ExpertLog
    elapsed: float = 0.0
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    # Faults the source reported beside the capture (a live capture's tool:
    # packets dropped, a failure), counted as problems.
    source_problems: int = 0
    # Retransmitted bytes that differ from the first copy: (stream id,
    # direction) -> [(offset, size, frame)], each from the first byte that
    # differs to the last (at most MAX_CONFLICTS in all; ``conflicts_lost``
    # counts the rest): a rewriter cannot know which copy the peer took.
    conflicts: dict = field(default_factory=dict)
    conflicts_lost: int = 0
    # Totals of the streams retired from ``streams`` (live runs; dicomwire.tcp.Retired).
    retired: object = None

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
        n = len(self.reader.warnings) + self.link.stats.malformed + self.host.error_count \
            + self.source_problems
        if self.retired is not None:
            n += self.retired.gaps + self.retired.conflicts
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
        self.conflicts: dict = {}              # Result.conflicts
        self.conflict_count = self.conflicts_lost = 0
        # What the plugins may select (PluginHost.interest), when they all said.
        self.interest = host.interest(config) if config.dissect is True else None

    def stream_open(self, stream):
        self.host.stream = stream
        i = self.interest
        if i is not None and stream.server[1] not in i.ports \
                and (stream.client_known or stream.client[1] not in i.ports):
            stream.sniff = i.first          # the first payload decides (_select, the walks)
        self.host.call("dicomwire_stream_open", stream=stream)

    def data(self, stream, direction, offset, payload, frame, ts):
        self.host.stream = stream
        dis = stream.dissector
        if dis is None:
            if not self.config.dissect:
                stream.dissector = False
                return
            if self.config.dissect != "tls":
                self._select(stream, direction, offset, payload, frame, ts)
                return
            # TLS handshakes only (streams): a TLS layer without inner dissector.
            if not looks_like_client_hello(payload):
                decline(stream)             # costs only its TCP bookkeeping
                return
            stream.dissector = dis = TLSLayer(stream, self.host, self.config)
        if dis:
            try:
                dis.data(direction, offset, payload, frame, ts)
            except Exception as e:
                self.dissector_failed(stream, "data", e)

    def _select(self, stream, direction, offset, payload, frame, ts):
        """Protocol selection on a stream's first payloads (called only while
        ``stream.dissector`` is None). While the answer is MORE the payloads
        are held (copied: the caller's views do not outlive the call), within
        PEEK_CALLS / PEEK_BYTES; once a dissector is chosen it gets them all,
        as they came."""
        sniff = stream.sniff
        if sniff is not None:               # no plugin may take it: not asked
            if direction or payload[0] not in sniff:
                decline(stream)
                return
            stream.sniff = None
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
        if not dis:
            decline(stream)
            return
        stream.dissector = dis
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
                self.dissector_failed(stream, "data", e)
                break
        host.frame = now

    def gap(self, stream, direction, offset, size, frame, ts):
        self.host.stream = stream
        self.host.expert.report(
            "tcp.gap", f"{size} bytes missing from the capture at offset {offset} of "
            f"stream {stream.id} ({'client to server' if direction == 0 else 'server to client'})",
            frames=[frame], stream=stream.id)
        dis = stream.dissector
        if dis is None and self.held.pop(stream.id, None) is not None:
            decline(stream)                 # undecided, and now bytes are missing: give up
        elif dis:
            try:
                dis.gap(direction, offset, size, frame, ts)
            except Exception as e:
                self.dissector_failed(stream, "gap", e)

    def conflict(self, stream, direction, offset, size, frame, ts):
        self.host.stream = stream
        if self.conflict_count < MAX_CONFLICTS:
            self.conflict_count += 1
            self.conflicts.setdefault((stream.id, direction), []).append((offset, size, frame))
        else:
            self.conflicts_lost += 1
        self.host.expert.report(
            "tcp.overlap.conflict", f"retransmitted bytes {offset}-{offset + size - 1} of "
            f"stream {stream.id} differ from the first copy", frames=[frame], stream=stream.id)

    def stream_close(self, stream):
        self.host.stream = stream
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
                self.dissector_failed(stream, "close", e)
        self.owner.pop(stream.id, None)
        self.host.call("dicomwire_stream_close", stream=stream)

    def dissector_failed(self, stream, what, exc):
        if isinstance(exc, BrokenPipeError):
            raise exc                   # our output's reader left: stop the run
        # A broken dissector loses its stream, not the run.
        self.host.failed(self.owner.get(stream.id, "?"), f"dissector.{what}", exc)
        stream.dissector = False
        for d in stream.dirs:
            d.take_lane()               # what it appended is lost with the stream


def _general_path(dec: LinkDecoder, reasm: Reassembler, host: PluginHost):
    """Any frame, by the book: link decode, then the reassembler (which
    tells the dispatcher). Returns ``general(number, ts, linktype, data,
    orig, iface)``; its ``decoded(number, ts, segment)`` takes a segment
    the fast path decoded already."""
    feed = reasm.feed
    decoders = {}

    def general(number, ts, linktype, data, orig, iface):
        decode = decoders.get(linktype)
        if decode is None:
            decode = decoders[linktype] = dec.decoder(linktype)
        dec.frame = number
        try:
            seg = decode(data)
        except SHORT:
            dec.short(cut=orig > len(data))    # cut by the snaplen, or malformed
            return
        if seg is not None:
            host.frame = number
            feed(number, ts, seg)

    def decoded(number, ts, seg):
        """The same for a segment decoded already (by the compiled walk)."""
        dec.frame = host.frame = number
        feed(number, ts, seg)
    general.decoded = decoded
    return general


def make_host(config: Config) -> PluginHost:
    return PluginHost(blocked=config.blocked, load=config.load)


def run(source, config: Config | None = None, host: PluginHost | None = None,
        *, progress=None, tap=None) -> Result:
    """Read ``source`` (path, ``'-'`` or binary file object; or several
    files as one capture: a list of paths, a folder, a glob) in one pass.

    ``progress``: optional callable ``(bytes_done, bytes_total_or_None,
    frames)``, called per window of the capture the fast path walks (8 MiB
    of a mapped file), else about every 64k frames. ``tap``: optional
    callable ``(number, ts_ns, linktype, data, orig_len, iface)`` that sees
    every frame (for writers that copy the capture, such as ``annotate``).
    Raises :class:`dicomwire.capture.CaptureError` only if the input is not
    a capture at all; faults later in the file end up in ``Result.warnings``.
    """
    config = config or Config()
    if host is None:
        host = make_host(config)
    expert = _configure(host, config)
    if config.retire_after is not None:
        expert.retain = RETAIN_FINDINGS       # live: days of findings in bounded memory
    t0 = time.perf_counter()
    # capture -> (fast path | link decode -> reassembler) -> dispatcher -> dissectors, hooks
    reader = open_capture(source)
    dec = LinkDecoder()
    retire = None if config.retire_after is None else int(config.retire_after * 1e9)
    reasm = Reassembler(_Dispatch(host, config), max_ooo=config.max_ooo,
                        max_flows=config.max_flows, lanes=config.fast_path, retire_after=retire)
    general = _general_path(dec, reasm, host)
    if config.fast_path:
        def walker(r):                  # the fast path of a file (each file of a set)
            prog = progress if r is reader or progress is None else \
                (lambda _done, _total, frames: progress(*reader.progress, frames))
            return FastPath(r, reasm, reasm.sink, host, general, tap=tap, progress=prog,
                            stats=dec.stats, feed=general.decoded).walk
        reader.use_walker(walker)
    result = Result(reader, dec, reasm.streams, host, expert, retired=reasm.retired)
    host.call("dicomwire_capture_start", capture=reader)
    try:
        _read(reader, general, tap, progress)
    except KeyboardInterrupt:
        result.interrupted = True
        result.warnings.append("interrupted: results cover the frames read so far")
    finally:
        reader.close()
    _finish(result, reasm)
    result.conflicts, result.conflicts_lost = reasm.sink.conflicts, reasm.sink.conflicts_lost
    result.elapsed = time.perf_counter() - t0
    host.call("dicomwire_capture_end", result=result)
    return result


def _configure(host: PluginHost, config: Config) -> ExpertLog:
    """The run's expert log (``host.expert``) with every plugin's fields;
    preference defaults declared; ``dicomwire_configure`` called."""
    expert = host.expert = ExpertLog()
    expert.register(ENGINE_FIELDS)
    expert.register(TLS_FIELDS)
    for table in host.call("dicomwire_expert_fields"):
        expert.register(table)
    config.declare(host.call("dicomwire_preferences"))   # defaults, for library callers
    host.call("dicomwire_configure", config=config)
    return expert


def _read(reader: CaptureReader, general, tap, progress):
    """Every frame of the capture down the general path, but those its
    walker (the fast path, when set) takes in place."""
    for number, ts, linktype, data, orig, iface in reader:
        if tap is not None:
            tap(number, ts, linktype, data, orig, iface)
        general(number, ts, linktype, data, orig, iface)
        if progress is not None and not number & 0xFFFF:
            progress(*reader.progress, number)


def _finish(result: Result, reasm: Reassembler):
    """End of capture: every stream closed (dissectors and hooks told), then
    what went wrong on the way becomes findings."""
    reader, dec, host, expert = result.reader, result.link, result.host, result.expert
    host.frame = 0
    reasm.finish()
    dec.finish(reader.frames_read)
    result.warnings[:0] = reader.warnings
    for w in reader.warnings:
        expert.report("capture.damaged", w, frames=[reader.frames_read or None])
    for frame, msg in dec.malformed:
        expert.report("link.malformed", msg, frames=[frame or None])
    for e in host.errors:
        expert.report("plugin.failed", str(e), frames=[e.frame or None])


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
