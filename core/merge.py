"""The merge of a distributed pass: parts (:class:`dicomwire.partresult.PartResult`)
-> the one-process :class:`dicomwire.pipeline.Result` and output.

1. **Streams.** A part's stream that began mid-stream on a flow an earlier
   part followed over that frame is that part's view of a stream it never
   saw begin: dropped with all it produced. One that comes after the
   earlier stream closed and the earlier part stopped following (late ACKs,
   a last FIN) adds its frames to that stream, as one pass counts them, if
   it carried no payload; anything else does not fit (:class:`Mismatch`).
   A later part's stream begun mid-stream was only counted there
   (*parked*, :class:`dicomwire.handover._Dispatch2`): one that no earlier
   part saw does not fit either.
2. **Ids.** Streams are numbered in order of their first frame, sessions
   (a pack's ``config.state["ids"]``) in order of the frame that made them,
   as one pass numbers them; the tokens of :class:`dicomwire.handover.LateId`
   in texts and findings become these numbers.
3. **Order.** Events are sorted by their place (frame, then the part's own
   order; streams closed at the end by their first frame): stdout text is
   written, findings go into the log in the order one pass reports them,
   then the capture-level findings (damaged files, malformed frames, plugin
   failures) as :func:`dicomwire.pipeline.run` adds them at its end.
4. **Plugins.** A plugin object with ``cluster_merge(values, keep, remap)``
   gets what its worker copies returned (``cluster_result()``), in part
   order, before any output; ``keep(part, stream)`` tells what the merge
   keeps. In a worker, ``cluster_start(part, run_id, clock)`` came first
   (``clock()``: the place and stream of what it makes now).
"""

from __future__ import annotations

import bisect
import re
import sys
from types import SimpleNamespace

from dicomwire.expert import ExpertInfo
from dicomwire.handover import TOKEN, LateId
from dicomwire.outbox import columns
from dicomwire.link import LinkStats
from dicomwire.pipeline import Result, _configure


class Mismatch(Exception):
    """The parts do not fit together exactly: read the set in one process."""


class _Reader(SimpleNamespace):
    def close(self):
        pass


def _streams(parts):
    """Kept streams [(part, StreamInfo)] and the dropped (part, local id)s."""
    kept, dropped, last = [], set(), {}          # last: flow -> (part, StreamInfo)
    for p in parts:
        for s in sorted(p.streams, key=lambda s: s.first_frame):
            prev = last.get(s.flow)
            if prev is not None and prev[0] < p.part:
                owner = prev[1]
                if s.first_frame <= owner.cover:
                    if s.client_known:
                        raise Mismatch(f"stream {s.client}->{s.server} seen by two parts")
                    if s.last_frame > owner.cover:
                        _fold_after_close(owner, s)
                    dropped.add((p.part, s.id))
                    continue
                if not s.client_known:
                    _fold(owner, s)
                    dropped.add((p.part, s.id))
                    continue
            if p.part and s.close_reason == "reused" and not s.client_known and \
                    not any(d.bytes for d in s.dirs):
                raise Mismatch(f"stream {s.client}->{s.server}: its first frames and a "
                               f"new connection are one stream in one pass")
            if s.parked:
                raise Mismatch(f"stream {s.client}->{s.server} begins mid-stream in a later "
                               f"run, and no earlier run saw it")
            last[s.flow] = (p.part, s)
            kept.append((p.part, s))
    kept.sort(key=lambda x: x[1].first_frame)
    return kept, dropped


def _fold(owner, late):
    """Late frames of a closed stream (another part's view): counted, as one
    pass counts segments of a closed stream."""
    if not owner.closed or any(d.bytes or d.gaps or d.conflicts for d in late.dirs):
        raise Mismatch(f"stream {owner.client}->{owner.server} goes on after it closed")
    same = late.client == owner.client
    for i, d in enumerate(late.dirs):
        o = owner.dirs[i if same else 1 - i]
        o.frames += d.frames
        o.zero_windows += d.zero_windows
    owner.last_frame, owner.last_ts = late.last_frame, late.last_ts


def _fold_after_close(owner, late):
    """``late`` went on past the frame where the earlier part stopped
    following ``owner`` because it closed: if ``late`` closed at that very
    frame, its frames after it are the last frames of ``owner``."""
    if late.closed_by is None or late.closed_by[0] != owner.cover or not owner.closed:
        raise Mismatch(f"stream {owner.client}->{owner.server} seen by two parts")
    same = late.client == owner.client
    for i, (d, (frames, zw, nbytes)) in enumerate(zip(late.dirs, late.closed_by[1])):
        if d.bytes != nbytes:
            raise Mismatch(f"stream {owner.client}->{owner.server} goes on after it closed")
        o = owner.dirs[i if same else 1 - i]
        o.frames += d.frames - frames
        o.zero_windows += d.zero_windows - zw
    owner.last_frame, owner.last_ts = late.last_frame, late.last_ts


def merge(parts, name, fmt, first_ts, config, host, plugins, skipped=()) -> Result:
    """``skipped``: the client's warnings about files that are no capture."""
    parts = sorted(parts, key=lambda p: p.part)
    if sum(p.findings for p in parts) > 90_000:
        raise Mismatch("findings near the log's bound (one pass counts those past it)")
    kept, dropped = _streams(parts)
    ids = {}
    for gid, (k, s) in enumerate(kept):
        ids[("s", k, s.id)] = gid
        s.id = gid
    made = sorted((frame, p.part, n, kind) for p in parts for kind, n, frame, sid in p.ids
                  if (p.part, sid) not in dropped)
    counters: dict = {}
    for frame, k, n, kind in made:
        ids[(kind, k, n)] = counters[kind] = counters.get(kind, -1) + 1

    def remap(value):
        if isinstance(value, LateId):
            kind, rest = value.token[1], value.token[2:-1]
            return ids.get((kind, int(rest.split(".")[0]), int(value)), int(value))
        if isinstance(value, str) and "\ue000" in value:
            return TOKEN.sub(lambda m: str(ids.get((m[1], int(m[2]), int(m[3])), "?")), value)
        return value

    for p in plugins:                 # first: one that does not fit stops before any output
        hand = getattr(p, "cluster_merge", None)
        if hand is not None:
            hand([q.extra.get(type(p).__name__) for q in parts],
                 lambda k, sid: (k, sid) not in dropped, remap)
    expert = _configure(host, config)
    drop = {}
    for k, sid in dropped:
        drop.setdefault(k, set()).add(sid)
    for k, block, i, e in _in_order(parts):
        _emit(block, i, e, drop.get(k), remap, expert)
    return _result(parts, name, fmt, first_ts, kept, expert, host, remap, list(skipped))


def _in_order(parts):
    """Every part's events in one-pass order, (frame, part, the part's own
    order), as runs ``(part, block, i, e)``: events ``i:e`` of a block of
    :func:`dicomwire.outbox.block`. Parts overlap only where one followed
    a stream into the next's frames, so a run is mostly a whole block. A
    part's first block is read only when the merge reaches the part: until
    then it stands for the least frame its events can have (its run's first,
    the frames of the parts before + 1), so that the blocks held are those
    of the parts at the front, not one per part."""
    blocks = {p.part: _blocks(p) for p in parts}
    heads = {}                                   # part -> [block or None, index, rising]
    least, before = {}, 0
    for p in parts:
        least[p.part], before = before + 1, before + p.frames
        heads[p.part] = [None, 0, True]

    def frame(j):
        block, i, _rising = heads[j]
        return least[j] if block is None else block[0][i]

    def advance(k):
        for block in blocks[k]:
            if block[0]:
                # A part's frames mostly rise, but not always: payloads held
                # while a stream's protocol was undecided are replayed with
                # their own frames. Such a block is cut by a scan, not a
                # bisect (the worker tells which: block[6]).
                heads[k] = [block, 0, block[6]]
                return
        heads.pop(k, None)
    while heads:
        k = min(heads, key=lambda j: (frame(j), j))
        if heads[k][0] is None:                  # the merge reached it: its first block
            advance(k)
            continue
        block, i, rising = heads[k]
        frames = block[0]
        others = [(frame(j), j) for j in heads if j != k]
        if not others:
            e = len(frames)
        elif rising:                             # up to the next part's first
            f, j = min(others)
            e = bisect.bisect_right(frames, f, i) if k < j else bisect.bisect_left(frames, f, i)
        else:                                    # (what heapq.merge took, one by one)
            f, j = min(others)
            e = i + 1
            while e < len(frames) and (frames[e] < f or (frames[e] == f and k < j)):
                e += 1
        yield k, block, i, e
        if e < len(frames):
            heads[k][1] = e
        else:
            advance(k)


def _blocks(p):
    """A part's events in its order, as blocks: the chunks it sent ahead
    (read back from the client's spool), then the rest (streams closed by
    the capture's end, keyed after every frame): the part's own last block."""
    if p.spool is not None:
        yield from p.spool.blocks(p.tag)
    yield p.events


def _emit(block, i, e, drop, remap, expert):
    """Events ``i:e`` of ``block`` (a :func:`dicomwire.outbox.block`), those
    of the ``drop`` ped streams left out: each run of stdout text written
    at once, as the slice of the block's text it is."""
    sids, kinds = block[1], block[2]
    if drop and not drop.isdisjoint(sids[i:e]):     # the kept events, as a block of their own
        kept = [x for x in range(i, e) if sids[x] not in drop]
        block = columns((0, 0, kinds[x], _payload(block, x)) for x in kept)
        kinds = block[2]
        i, e = 0, len(kept)
    objects = block[5]
    found = None                                    # the next finding's index in objects
    for run in _RUNS.finditer(kinds, i, e):
        a, b = run.span()
        kind = kinds[a]
        if kind == "x":
            found = kinds.count("x", 0, a) if found is None else found
            _one(kind, objects[found], remap, expert)
            found += 1
        else:
            _one(kind, _text(block, a, b), remap, expert)


_RUNS = re.compile("o+|[^o]")       # in a block's kinds: runs of stdout text, the rest


def _text(block, a, b):
    """The text of events ``a:b`` of ``block``, as written."""
    ends, text = block[4], block[3]
    return text[ends[a - 1] if a else 0:ends[b - 1]]


def _payload(block, x):
    """Event ``x`` 's text, or its finding's object."""
    kinds, objects = block[2], block[5]
    if kinds[x] == "x":
        return objects[kinds.count("x", 0, x)]
    return _text(block, x, x + 1)


def _one(kind, payload, remap, expert):
    if kind == "o":
        sys.stdout.write(remap(payload))
    elif kind == "e":
        sys.stderr.write(remap(payload))
    else:
        _add(expert, ExpertInfo(payload.field, remap(payload.message), payload.frames,
                                remap(payload.stream), remap(payload.assoc)))


def _add(expert, info):
    expert.infos.append(info)
    for fr in info.frames:
        expert.by_frame.setdefault(fr, []).append(info)


def _result(parts, name, fmt, first_ts, kept, expert, host, remap, skipped):
    frames = sum(p.frames for p in parts)
    warnings = skipped + [w for p in parts for w in p.warnings]
    reader = _Reader(name=name, format=fmt, frames_read=frames, first_ts=first_ts,
                     warnings=warnings, truncated=sum(p.truncated for p in parts),
                     comments={}, interfaces=[])
    stats = LinkStats()
    stats.malformed = sum(p.malformed_count for p in parts)
    link = SimpleNamespace(malformed=[m for p in parts for m in p.malformed], stats=stats)
    errors = [e for p in parts for e in p.errors]
    result = Result(reader, link, [s for _k, s in kept], host, expert)
    result.warnings = list(warnings)
    result.source_problems = len(errors)          # the workers' plugin failures
    for w in warnings:
        expert.report("capture.damaged", w, frames=[frames or None])
    for frame, msg in link.malformed:
        expert.report("link.malformed", msg, frames=[frame or None])
    for text, frame in errors:
        expert.report("plugin.failed", remap(text), frames=[frame or None])
    return result
