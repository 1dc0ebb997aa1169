"""dicomwire.merge: the parts' events put in one-pass order a run at a
time (the blocks of dicomwire.outbox.block, cut where parts overlap)."""

import heapq
import random
from types import SimpleNamespace

from dicomwire import merge
from dicomwire.outbox import columns, events_of


def _part(k, events, chunk, frames=0, opened=None):
    """A PartResult-like part whose first events came in spooled chunks;
    ``frames``: its run's own (the parts' frames before part k, + 1, is
    the least frame its events have); ``opened`` notes when its spool is
    first read."""
    sent = [events[i:i + chunk] for i in range(0, len(events) - len(events) % chunk, chunk)]

    def blocks(tag):
        if opened is not None:
            opened.append(k)
        yield from (columns(c) for c in sent)
    tail = columns(sorted(events[len(sent) * chunk:], key=lambda e: e[0]))   # as the worker
                                                                            # sends it
    return SimpleNamespace(part=k, spool=SimpleNamespace(blocks=blocks), tag=b"",
                           events=tail, frames=frames)


def test_runs_follow_frame_then_part_then_own_order():
    rnd = random.Random(7)
    for trial in range(200):
        parts = []
        for k in range(rnd.randint(1, 4)):
            frames = sorted(rnd.randint(1, 40) for _ in range(rnd.randint(0, 30)))
            if frames and trial % 3 == 0:        # payloads replayed with earlier frames
                at = rnd.randrange(len(frames))
                frames.insert(at, max(1, frames[at] - rnd.randint(1, 9)))
            events = [(f, rnd.randint(0, 3), "o", f"{seq}\n") for seq, f in enumerate(frames)]
            parts.append(_part(k, events, rnd.randint(1, 8)))
        got = [(block[0][x], k, _own(block, x)) for k, block, i, e in merge._in_order(parts)
               for x in range(i, e)]
        # What heapq.merge of the parts gave: each part's chunks in their
        # order, then its tail sorted (a part's own order kept).
        keyed = []
        for p in parts:
            sent = [e for b in p.spool.blocks(b"") for e in events_of(b)]
            tail = list(events_of(p.events))
            keyed.append([(e[0], p.part, int(e[3])) for e in sent + tail])
        assert got == list(heapq.merge(*keyed)), trial


def _own(block, x):
    """An event's place in its part (its text, in these tests)."""
    return int(merge._payload(block, x))


def test_a_run_is_written_whole_and_dropped_streams_left_out(capsys):
    block = columns([(1, 5, "o", "a\ue000s0.1\ue001 "), (2, 6, "o", "b "), (3, 5, "o", "c\n")])
    remap = lambda t: t.replace("\ue000s0.1\ue001", "7")
    merge._emit(block, 0, 3, None, remap, None)
    merge._emit(block, 0, 3, {6}, remap, None)
    assert capsys.readouterr().out == "a7 b c\na7 c\n"


def test_a_parts_blocks_are_read_when_the_merge_reaches_it():
    """Parts of 100 frames each, each following a stream 30 frames into
    the next's: the merge reads a part's first block only once it is at
    that part's frames, so it holds the blocks of two parts at most."""
    opened, parts, keyed = [], [], []
    for k in range(6):
        own = [(100 * k + f, 0, "o", f"{f}\n") for f in range(1, 101, 3)]
        follow = [(100 * k + 100 + f, 1, "o", f"{100 + f}\n") for f in range(1, 31, 4)]
        events = own + follow if k < 5 else own
        parts.append(_part(k, events, 5, frames=100, opened=opened))
        keyed.append([(e[0], k, int(e[3])) for e in events])
    got, seen_at = [], []
    for k, block, i, e in merge._in_order(parts):
        got += [(block[0][x], k, _own(block, x)) for x in range(i, e)]
        seen_at.append((block[0][i], list(opened)))
    assert got == list(heapq.merge(*keyed))
    for first, opened_then in seen_at:       # parts opened by then: up to the next one
        assert max(opened_then) <= first // 100 + 1


def test_findings_between_text_keep_their_objects_in_any_range(capsys):
    """A block's findings are its objects in order: whichever range of
    the block the merge writes (a part cut where another's events come
    between), each finding is reported with its own object, in place."""
    from dicomwire.expert import ExpertInfo
    reported = []
    expert = SimpleNamespace(infos=reported, by_frame={})
    found = [ExpertInfo("f", f"finding {n}", [n], None, None) for n in range(3)]
    block = columns([(1, 0, "o", "a\n"), (2, 0, "x", found[0]), (3, 0, "o", "b\n"),
                     (4, 0, "x", found[1]), (5, 0, "e", "note\n"), (6, 0, "x", found[2]),
                     (7, 0, "o", "c\n")])
    for i, e in ((0, 3), (3, 5), (5, 7)):
        merge._emit(block, i, e, None, lambda t: t, expert)
    assert [info.message for info in reported] == ["finding 0", "finding 1", "finding 2"]
    out = capsys.readouterr()
    assert out.out == "a\nb\nc\n" and out.err == "note\n"
