"""dicomwire.gctune: the collector tuned for a pass; WhileTasks, a change
to a worker process made by its first task in and undone by its last out."""

import gc

from dicomwire.gctune import TUNED_GC, WhileTasks, collector_tuned


def test_first_in_makes_the_change_last_out_undoes_it():
    calls = []
    change = WhileTasks(lambda: calls.append("enter") or "saved", calls.append)
    with change:
        with change:                     # a second task of the same worker
            assert calls == ["enter"]
        assert calls == ["enter"]
    assert calls == ["enter", "saved"]
    try:
        with change:
            raise ValueError             # a task that fails gives it back too
    except ValueError:
        pass
    assert calls == ["enter", "saved", "enter", "saved"]


def test_the_collector_is_tuned_only_while_parts_run():
    before = gc.get_threshold()
    with collector_tuned:
        assert gc.get_threshold() == TUNED_GC
    assert gc.get_threshold() == before


def test_what_parts_leave_in_cycles_is_collected_when_the_next_starts():
    """Cycles made while parts run are collected when the next part starts
    (the collector off here: nothing else collects them), before the
    worker's heap is frozen again."""
    import weakref

    class Node:
        pass
    was = gc.isenabled()
    gc.disable()
    try:
        with collector_tuned:
            node = Node()
            node.me = node
            gone = weakref.ref(node)
            del node
        assert gone() is not None        # (a cycle: only a collection frees it)
        with collector_tuned:
            assert gone() is None
    finally:
        if was:
            gc.enable()
