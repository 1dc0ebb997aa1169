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


def test_what_a_part_leaves_in_cycles_is_collected_as_it_ends():
    """Cycles made while a part runs are collected as it ends (the
    collector off here: nothing else collects them); the worker's heap,
    frozen meanwhile, is not walked then (a cycle it held is left to the
    worker's own collections), and is given back after."""
    import weakref

    class Node:
        pass

    def cycle():
        node = Node()
        node.me = node
        return weakref.ref(node)
    was = gc.isenabled()
    gc.disable()
    try:
        older = cycle()
        with collector_tuned:
            made = cycle()
            assert made() is not None and gc.get_freeze_count() > 0
        assert made() is None             # (a cycle: only a collection frees it)
        assert older() is not None and gc.get_freeze_count() == 0
        gc.collect()
        assert older() is None
    finally:
        if was:
            gc.enable()
