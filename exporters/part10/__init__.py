"""Export DICOM objects as Part 10 files (PS3.10 7.1), as Wireshark's
"Export Objects > DICOM" does, but complete and exact.

The data set is written exactly as it crossed the wire (deflated stays
deflated): byte-identical to what a bit-preserving SCP stores. The File Meta
Information is built with Wireshark's implementation UID (``meta.py``);
real SOP UIDs for stored objects (C-STORE-RQ data sets) only, Wireshark's
artificial ones for everything else (command sets, query identifiers,
N-service data sets: ``identity.py``). A data set whose transfer syntax is
unknown (negotiation not captured, not proven by the data) is written as
NAME.dcm.unknown-ts, its meta naming no transfer syntax. File names never
come unsanitised from the capture (``naming.py``) and never overwrite each
other. Past a few files a forked process creates them (``writer.py``).
:func:`iter_objects` (``objects.py``) gives the objects to a program
instead, as pydicom datasets.

This module holds the exporter plugin itself, :class:`Part10Exporter`, and
is the import for all of the above.

Exported objects are for troubleshooting only, not for clinical use.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.model import unknown_syntax_text, writev_all

from .identity import (
    ARTIFICIAL_CLASS_UID,
    ARTIFICIAL_INSTANCE_ROOT,
    dataset_uids,
    identify,
    storage_uids,
)
from .meta import IMPLEMENTATION_UID, VERSION_NAME, file_meta
from .naming import (
    DEFAULT_NAME,
    MAX_NAME,
    name_fields,
    safe_component,
    template_fields,
    template_path,
)
from .objects import DicomObject, iter_objects, object_kind
from .writer import Writer

UNKNOWN_TS_SUFFIX = ".unknown-ts"     # NAME.dcm.unknown-ts: transfer syntax not proven
# New files only ("never overwrite": a name taken by an earlier run gets the next _k).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)

# The writer process (writer.py) takes over file creation once a run has
# written this many files itself: small exports never fork.
WRITER_AFTER = 32
WRITER_MAX = 4 << 20         # bigger objects (and spooled ones) are written here

@dataclass
class Exported:
    """One object found by the exporter (written or only listed)."""
    frame: int
    n: int
    hosts: str            # "CALLING <-> CALLED"
    content: str          # SOP class name or command name
    size: int
    name: str             # file name (relative to the output folder)
    path: str | None      # where it was written, None with --list or when skipped
    complete: bool
    reason: str = ""      # why skipped or marked incomplete, or why the syntax is unknown
    unproven: bool = False  # transfer syntax not known: written as NAME.dcm.unknown-ts


@dataclass
class Part10Exporter:
    """Writes each DIMSE message's data set (and, with ``commands``, command
    sets) as a Part 10 file while the capture is read."""
    outdir: str | None                    # None: list only
    min_size: int = 10                    # Wireshark's "Min. item size in bytes to export"
                                          # (4096 there: small identifiers matter here)
    commands: bool = False                # command sets too (as with --min-size 0)
    meta: bool = True                     # Wireshark's "Create Meta Header on Export"
    keep_incomplete: bool = False
    name_template: str = DEFAULT_NAME
    filter: object = None                 # a DisplayFilter on message fields, or None
    objects: list = field(default_factory=list)
    _per_frame: dict = field(default_factory=dict)
    _taken: set = field(default_factory=set)
    _fields: set | None = None            # the fields the name template uses
    _written: int = 0                     # files written here (not by the writer)
    _writer: object = None                # a writer.Writer once started
    _fresh: bool | None = None            # outdir was empty at the start
    _clock: object = None                 # --dask worker: each object's place (handover)
    _stamps: list = field(default_factory=list)

    def __post_init__(self):
        # Where the output is for a --dask worker, whose folder is not ours.
        self._root = None if self.outdir is None else os.path.abspath(self.outdir)
        if self.outdir is not None:
            try:
                with os.scandir(self.outdir) as it:
                    self._fresh = next(it, None) is None
            except OSError:
                self._fresh = False

    # -- a --dask run (dicomwire.handover, dicomwire.merge; the moves: cluster.py) --

    def cluster_start(self, part, run_id, clock):
        """In a worker: write into a scratch folder inside the output, which
        the client empties into it; stamp each object with its place."""
        self._clock = clock
        if self.outdir is not None:
            self.outdir = os.path.join(self._root, f".dicomwire-{run_id}", str(part))
            os.makedirs(self.outdir, exist_ok=True)
            self._fresh = True

    def cluster_result(self):
        return self.objects, self._stamps, self.outdir

    def cluster_done(self, run_id):
        if self.outdir is not None and run_id:
            import shutil
            shutil.rmtree(os.path.join(self.outdir, f".dicomwire-{run_id}"), ignore_errors=True)

    def cluster_merge(self, values, keep, remap):
        from .cluster import merge_objects
        merge_objects(self, values, keep, remap)

    @hookimpl
    def dicomwire_capture_end(self):
        self.finish()

    def finish(self):
        """Wait for the writer's files; record what it could not write."""
        w, self._writer = self._writer, None
        if w is None:
            return
        for index, name, error in w.finish(self.outdir):
            ex = self.objects[index]
            ex.name = name
            if error:
                ex.path = None
                ex.reason = f"not written: {error}"
                print(f"dicomwire: warning: frame {ex.frame}: {name} not written: {error}",
                      file=sys.stderr)
            else:
                ex.path = os.path.join(self.outdir, name)

    @hookimpl
    def dicomwire_message(self, message):
        m = message
        if self.filter is not None:
            from dicomwire.plugins.dicom.fields import message_values
            keywords = [f for f in self.filter.fields if not f.startswith(("dicom.", "frame."))]
            if not self.filter(message_values(m, keywords)):
                return
        if m.has_dataset:
            self._export(m, "dataset")
        if (self.commands or self.min_size == 0) and m.command_bytes:
            self._export(m, "command")

    def _export(self, m, part):
        if part == "dataset":
            size, frame = m.dataset_len, m.dataset_frame or m.last_frame
        else:
            size, frame = len(m.command_bytes), m.last_frame
        if size < self.min_size and not (part == "command" and self.commands):
            return
        n = self._per_frame[frame] = self._per_frame.get(frame, 0) + 1
        sop_class, sop_instance, ts, content, what = identify(m, part, frame, n)
        rel, name = self._file_name(m, frame, n, what, part, sop_instance)
        complete = m.complete or (part == "command" and m.command is not None)
        reason = "" if complete else "; ".join(m.problems) or "incomplete"
        unproven = ts is None
        if unproven:
            # Not negotiated in the capture, not proven by the data: never a
            # plain .dcm claiming a syntax; the meta names none.
            why = unknown_syntax_text(m)
            reason = f"{reason}; {why}" if reason else why
        a = m.assoc
        ex = Exported(frame, n, a.label() if a else "? <-> ?", content, size, name, None,
                      complete, reason, unproven)
        self.objects.append(ex)
        if self._clock is not None:
            self._stamps.append(self._clock())
        marked = name + UNKNOWN_TS_SUFFIX if unproven else name
        suffix = (UNKNOWN_TS_SUFFIX if unproven else "") + ("" if complete else ".incomplete")
        if self.outdir is None:
            ex.name = marked                   # --list shows the name it would be written as
            return
        if not complete and not self.keep_incomplete:
            return
        if unproven:
            print(f"dicomwire: warning: frame {frame}: {content}: {why}: written as "
                  f"{name + suffix}, its File Meta Information without a Transfer Syntax UID",
                  file=sys.stderr)
        source = None
        if a is not None:
            source = a.calling_ae if m.direction == a.requestor else a.called_ae
        head = file_meta(sop_class, sop_instance, ts, source) if self.meta else b""
        if not self._submit(m, part, ex, name + suffix, head, size):
            self._write(m, part, ex, rel, name, suffix, head)

    def _submit(self, m, part, ex, name, head, size) -> bool:
        """Hand the file to the writer process (started once this run has
        written WRITER_AFTER files into a fresh folder); False: write it here."""
        if self._writer is None and self._written >= WRITER_AFTER and self._fresh:
            self._fresh = False                # one try
            self._writer = Writer.start(self.outdir, _CREATE)
        if self._writer is not None:
            parts = [m.command_bytes] if part == "command" else m.memory_parts()
            if parts is not None and size <= WRITER_MAX:
                try:
                    self._writer.submit(len(self.objects) - 1, name, [head, *parts])
                    ex.name = name
                    ex.path = os.path.join(self.outdir, ex.name)
                    return True
                except OSError:
                    self.finish()              # the writer is gone: on without it
        return False

    def _write(self, m, part, ex, rel, name, suffix, head):
        """Write the file here, under ``name + suffix`` or the next free ``_k``."""
        k = 1
        while True:
            # O_EXCL: never overwrite; a name taken by an earlier run gets the next _k.
            path = os.path.join(self.outdir, name + suffix)
            try:
                fd = os.open(path, _CREATE, 0o666)
                break
            except FileExistsError:
                k += 1
                name = self._claim(rel, k)
        ex.name = name + suffix
        try:
            # Meta header and data set in one writev: no file object, one system call.
            if part == "dataset":
                m.copy_dataset(fd, head)
            else:
                writev_all(fd, [head, m.command_bytes])
        finally:
            os.close(fd)
        ex.path = path
        self._written += 1

    def _file_name(self, m, frame, n, what, part, sop) -> tuple[str, str]:
        """(template result, a name not yet used in this run). Only the
        fields the template names are computed (per object, so it counts)."""
        if self._fields is None:
            self._fields = template_fields(self.name_template)
        rel, folders = template_path(self.name_template,
                                     name_fields(m, self._fields, frame, n, what, part, sop))
        if self.outdir is not None and folders:
            os.makedirs(os.path.join(self.outdir, os.path.dirname(rel)), exist_ok=True)
        return rel, self._claim(rel, 1)

    def _claim(self, rel: str, k: int) -> str:
        """``rel``, or ``rel`` with ``_k`` (k >= 2), not used in this run.
        Files left by earlier runs are found when opening (never overwritten)."""
        candidate = rel if k == 1 else f"{rel[:-4]}_{k}.dcm"
        while candidate in self._taken:
            k += 1
            candidate = f"{rel[:-4]}_{k}.dcm"
        self._taken.add(candidate)
        return candidate


__all__ = [
    "Part10Exporter", "Exported", "iter_objects", "DicomObject", "object_kind",
    "file_meta", "safe_component", "storage_uids", "dataset_uids",
    "IMPLEMENTATION_UID", "VERSION_NAME", "ARTIFICIAL_CLASS_UID", "ARTIFICIAL_INSTANCE_ROOT",
    "UNKNOWN_TS_SUFFIX", "DEFAULT_NAME", "MAX_NAME", "WRITER_AFTER", "WRITER_MAX",
]
