"""The library face of export: :func:`iter_objects` gives the data sets of
a capture as pydicom datasets with their association and frames, in one
streaming pass, without writing files.

Apart from the exporter because it shares no state with it: a pass run in
a worker thread that hands the consumer one object at a time (a queue of
one), stops when the consumer stops, and re-raises the pass's errors.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from dicomwire.hookspecs import hookimpl


def object_kind(message_name: str | None) -> str:
    """What a message's data set is: ``instance`` (a composite object a
    C-STORE carries: it has a SOP Instance UID), ``identifier`` (the keys of
    a C-FIND, C-MOVE or C-GET request or response), ``attributes`` (the
    attribute list of an N-service: MPPS, Storage Commitment, ...), or
    ``other``."""
    name = message_name or ""
    if name == "C-STORE-RQ":
        return "instance"
    if name.startswith(("C-FIND", "C-MOVE", "C-GET")):
        return "identifier"
    if name.startswith("N-"):
        return "attributes"
    return "other"


@dataclass
class DicomObject:
    """One object that crossed the wire, for :func:`iter_objects`."""
    dataset: object           # pydicom Dataset
    message: str              # e.g. "C-STORE-RQ"
    message_id: int | None
    transfer_syntax: str | None
    calling_ae: str | None
    called_ae: str | None
    first_frame: int
    last_frame: int
    complete: bool
    raw: bytes | None         # the data set's wire bytes (with keep_raw=True)
    kind: str = "instance"    # object_kind(message)


class _Stop(Exception):
    pass


_DONE = object()


class _Pass:
    """The pass in the worker thread: a plugin that queues each object for
    the consumer, and stops the pass (the tap raises) once told to."""

    def __init__(self, keep_raw: bool, incomplete: bool, kinds):
        self.keep_raw, self.incomplete = keep_raw, incomplete
        self.kinds = None if kinds is None else frozenset(kinds)
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.errors: list = []

    @hookimpl
    def dicomwire_message(self, message):
        m, stop = message, self.stop
        if stop.is_set() or not m.has_dataset or not (m.complete or self.incomplete):
            return
        kind = object_kind(m.name)
        if self.kinds is not None and kind not in self.kinds:
            return
        try:
            ds = m.dataset()
        except Exception:
            return
        a = m.assoc
        obj = DicomObject(ds, m.name, m.message_id, m.transfer_syntax,
                          a.calling_ae if a else None, a.called_ae if a else None,
                          m.first_frame, m.last_frame, m.complete,
                          m.dataset_bytes() if self.keep_raw else None, kind)
        while not stop.is_set():
            try:
                self.queue.put(obj, timeout=0.1)
                return
            except queue.Full:
                continue

    def work(self, source, config):
        from dicomwire.config import Config
        from dicomwire.pipeline import make_host, run
        stop = self.stop

        def tap(*_frame):
            if stop.is_set():
                raise _Stop

        cfg = config or Config()
        host = make_host(cfg)
        host.register(self, "iter_objects")
        try:
            run(source, cfg, host, tap=tap)
        except _Stop:
            pass
        except Exception as e:            # e.g. not a capture: re-raised in the consumer
            self.errors.append(e)
        finally:
            while True:
                try:
                    self.queue.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break


def iter_objects(source, config=None, *, keep_raw: bool = False, incomplete: bool = False,
                 kinds=("instance",)):
    """Iterate the objects of a capture as :class:`DicomObject` s (pydicom
    datasets with their association and frames), in one streaming pass.

    By default only the composite instances C-STOREs carried (each has a
    SOP Instance UID); ``kinds`` picks others by :func:`object_kind`
    (``("instance", "identifier", "attributes", "other")``, or None for
    every data set). The pass runs in a worker thread that waits for the
    consumer, so memory holds one object at a time; leaving the loop early
    stops the pass. Objects with bytes missing are skipped unless
    ``incomplete``.
    """
    p = _Pass(keep_raw, incomplete, kinds)
    t = threading.Thread(target=p.work, args=(source, config), name="dicomwire-iter-objects",
                         daemon=True)
    t.start()
    try:
        while True:
            item = p.queue.get()
            if item is _DONE:
                break
            yield item
        if p.errors:
            raise p.errors[0]
    finally:
        p.stop.set()
        try:
            p.queue.get_nowait()
        except queue.Empty:
            pass
        t.join(timeout=30)
