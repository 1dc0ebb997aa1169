"""dicomwire.merge: the parts' events put in one-pass order a run at a
time (the blocks of dicomwire.outbox.columns, cut where parts overlap)."""

import random
from types import SimpleNamespace

from dicomwire import merge
from dicomwire.outbox import columns


def _part(k, events, chunk):
    """A PartResult-like part whose first events came in spooled chunks."""
    sent = [events[i:i + chunk] for i in range(0, len(events) - len(events) % chunk, chunk)]
    spool = SimpleNamespace(blocks=lambda tag: iter([columns(c) for c in sent]))
    tail = events[len(sent) * chunk:]
    random.shuffle(tail)                     # the tail comes in any order
    return SimpleNamespace(part=k, spool=spool, tag=b"", events=tail)


def test_runs_follow_frame_then_part_then_own_order():
    rnd = random.Random(7)
    for trial in range(200):
        parts, want = [], []
        for k in range(rnd.randint(1, 4)):
            frames = sorted(rnd.randint(0, 40) for _ in range(rnd.randint(0, 30)))
            events = [(f, seq, rnd.randint(0, 3), "o", f"{k}:{f}:{seq}\n")
                      for seq, f in enumerate(frames)]
            want += [(f, k, seq, e) for e in events for f, seq in [(e[0], e[1])]]
            parts.append(_part(k, events, rnd.randint(1, 8)))
        got = [(block[0][x], k, block[1][x]) for k, block, i, e in merge._in_order(parts)
               for x in range(i, e)]
        assert got == [w[:3] for w in sorted(want)], trial


def test_a_run_is_written_whole_and_dropped_streams_left_out(capsys):
    block = columns([(1, 0, 5, "o", "a\ue000s0.1\ue001 "), (2, 1, 6, "o", "b "),
                     (3, 2, 5, "o", "c\n")])
    remap = lambda t: t.replace("\ue000s0.1\ue001", "7")
    merge._emit(block, 0, 3, None, remap, None)
    merge._emit(block, 0, 3, {6}, remap, None)
    assert capsys.readouterr().out == "a7 b c\na7 c\n"
