"""dicomwire.gctune: the collector tuned for a pass; WhileTasks, a change
to a worker process made by its first task in and undone by its last out."""

import gc
import time

import pytest

from dicomwire import gctune

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


class Node:
    pass


def cycle():
    """A weak reference to a cycle with nothing else holding it."""
    import weakref
    node = Node()
    node.me = node
    return weakref.ref(node)


@pytest.fixture
def collector_off():
    """Nothing collects but the code under test."""
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def test_what_a_part_leaves_in_cycles_is_collected_as_it_ends(collector_off, monkeypatch):
    """Cycles made while a part runs are collected as it ends; the worker's
    heap, frozen meanwhile, is not walked then, nor at the start of a part
    within FULL_EVERY of the last full collection (a cycle it held is left
    for later), and is given back after."""
    monkeypatch.setattr(gctune, "_last_full", [time.monotonic()])
    older = cycle()
    with collector_tuned:
        made = cycle()
        assert made() is not None and gc.get_freeze_count() > 0
    assert made() is None                 # (a cycle: only a collection frees it)
    assert older() is not None and gc.get_freeze_count() == 0
    gc.collect()
    assert older() is None


def test_a_part_starts_with_a_full_collection_now_and_then(collector_off, monkeypatch):
    """What became garbage outside the parts is collected at a part's start
    when no full collection ran for FULL_EVERY s, or after a failed part."""
    monkeypatch.setattr(gctune, "_last_full", [time.monotonic() - gctune.FULL_EVERY])
    older = cycle()
    with collector_tuned:
        assert older() is None
    older = cycle()
    with collector_tuned:
        assert older() is not None        # (a full collection ran just now)
    gctune.collect_at_next_part()
    with collector_tuned:
        assert older() is None
