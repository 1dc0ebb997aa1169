"""Export DICOM objects as Part 10 files (PS3.10 7.1), as Wireshark's
"Export Objects > DICOM" does, but complete and exact.

The data set is written exactly as it crossed the wire (deflated stays
deflated): byte-identical to what a bit-preserving SCP stores. The File Meta
Information is built here (explicit VR little endian, PS3.10 7.1) with
Wireshark's implementation UID; real SOP UIDs for stored objects (C-STORE-RQ
data sets) only, Wireshark's artificial ones for everything else (command
sets, query identifiers, N-service data sets). A data set whose transfer
syntax is unknown (negotiation not captured, not proven by the data) is
written as NAME.dcm.unknown-ts, its meta naming no transfer syntax. File
names never come unsanitised from the capture and never overwrite each other.

Exported objects are for troubleshooting only, not for clinical use.
"""

from __future__ import annotations

import os
import re
import string
import struct
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from dicomwire import __version__
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.model import unknown_syntax_text, writev_all
from dicomwire.plugins.dicom.render import uid_name
from dicomwire.specs.dicom.tables import C_STORE_RQ, IMPLICIT_LE

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.427.10"      # Wireshark's, per the DICOM wiki
UNKNOWN_TS_SUFFIX = ".unknown-ts"     # NAME.dcm.unknown-ts: transfer syntax not proven
ARTIFICIAL_CLASS_UID = "1.2.826.0.1.3680043.8.427.11.1"
ARTIFICIAL_INSTANCE_ROOT = "1.2.826.0.1.3680043.8.427.11.2"
VERSION_NAME = f"DICOMWIRE_{__version__}"[:16]
DEFAULT_NAME = "{frame:06d}-{n}-{what}"
MAX_NAME = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._^=-]+")
_SAFE = re.compile(r"[A-Za-z0-9^=-][A-Za-z0-9._^=-]*(?<![._])")   # what safe_component keeps


def _element(group, elem, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 7.1.2)."""
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _text(value: str, vr: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    if len(raw) % 2:
        raw += b"\0" if vr == b"UI" else b" "      # PS3.5 6.2 padding
    return raw


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str | None,
              source_ae: str | None) -> bytes:
    """Preamble, 'DICM' and the File Meta Information group (PS3.10 7.1).
    ``transfer_syntax`` None (not negotiated in the capture, not proven by
    the data): no Transfer Syntax UID element, rather than a false one; such
    files are written marked (``.dcm.unknown-ts``)."""
    head, tail = _meta_parts(sop_class, transfer_syntax, source_ae)
    instance = _element(0x0002, 0x0003, b"UI", _text(sop_instance, b"UI"))
    return (_PREAMBLE + _element(0x0002, 0x0000, b"UL",
                                 struct.pack("<I", len(head) + len(instance) + len(tail)))
            + head + instance + tail)


_PREAMBLE = bytes(128) + b"DICM"
# New files only ("never overwrite": a name taken by an earlier run gets the next _k).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


@lru_cache(maxsize=256)
def _meta_parts(sop_class: str, transfer_syntax: str | None, source_ae: str | None):
    """The meta elements before and after the instance UID: the same for
    every object of a class, syntax and sender, so built once (per object
    they cost more than the write)."""
    head = (_element(0x0002, 0x0001, b"OB", b"\x00\x01")
            + _element(0x0002, 0x0002, b"UI", _text(sop_class, b"UI")))
    tail = b"".join(([_element(0x0002, 0x0010, b"UI", _text(transfer_syntax, b"UI"))]
                     if transfer_syntax else []) + [
        _element(0x0002, 0x0012, b"UI", _text(IMPLEMENTATION_UID, b"UI")),
        _element(0x0002, 0x0013, b"SH", _text(VERSION_NAME, b"SH")),
    ] + ([_element(0x0002, 0x0016, b"AE", _text(source_ae[:16], b"AE"))] if source_ae else []))
    return head, tail


def safe_component(value, limit: int = 64) -> str:
    """A file name component from capture data: no separators, no '..', bounded."""
    s = str(value or "")
    if not _SAFE.fullmatch(s):             # the usual UID or AE title: as it is
        s = _UNSAFE.sub("_", s).strip("._")
    return (s or "unknown")[:limit]


# The writer process: file creation is kernel work (about 0.05 ms a file on
# tmpfs, 0.3 ms on ext4) that another core can do while this one dissects.
WRITER_AFTER = 32            # files written here first: small exports never fork
WRITER_MAX = 4 << 20         # bigger objects (and spooled ones) are written here
_RECORD = struct.Struct("<IIQ")          # object index, name length, content length


class _Writer:
    """A forked child that creates and fills export files from a pipe, in
    order; it reports only the exceptions (a name taken meanwhile, an error)."""

    def __init__(self, pid, data_w, result_r):
        self.pid, self.data_w, self.result_r = pid, data_w, result_r
        self.sent: list = []                   # (index, name, size) of each file submitted

    @classmethod
    def start(cls, outdir):
        if not hasattr(os, "fork"):
            return None
        try:
            data_r, data_w = os.pipe()
            result_r, result_w = os.pipe()
        except OSError:
            return None
        try:
            import fcntl
            fcntl.fcntl(data_w, fcntl.F_SETPIPE_SZ, 1 << 20)    # slack for bursts
        except (ImportError, AttributeError, OSError):
            pass
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            for fd in (data_r, data_w, result_r, result_w):
                os.close(fd)
            return None
        if pid == 0:                                    # the child
            code = 0
            try:
                import signal
                signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides
                os.close(data_w)
                os.close(result_r)
                _writer_loop(outdir, data_r, result_w)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(data_r)
        os.close(result_w)
        return cls(pid, data_w, result_r)

    def submit(self, index: int, name: str, parts: list):
        raw = name.encode("utf-8", "surrogateescape")
        size = sum(map(len, parts))
        writev_all(self.data_w, [_RECORD.pack(index, len(raw), size), raw, *parts])
        self.sent.append((index, name, size))

    def finish(self, outdir) -> list:
        """Close the pipe, wait for the child: [(index, final name, error or None)]
        for the files not written as submitted."""
        try:
            os.close(self.data_w)
        except OSError:
            pass
        chunks = []
        while True:
            b = os.read(self.result_r, 1 << 16)
            if not b:
                break
            chunks.append(b)
        os.close(self.result_r)
        try:
            _pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = -1                        # reaped by someone else: assume the worst
        out = []
        for line in b"".join(chunks).decode("utf-8", "surrogateescape").splitlines():
            index, name, error = line.split("\t", 2)
            out.append((int(index), name, error or None))
        if status:
            # It died (killed, say): files it did not finish are missing, or
            # cut short (removed: a file that looks whole must be whole).
            reported = {i for i, _n, _e in out}
            for i, n, size in self.sent:
                if i in reported:
                    continue
                path = os.path.join(outdir, n)
                try:
                    if os.path.getsize(path) == size:
                        continue
                    os.remove(path)
                except OSError:
                    pass
                out.append((i, n, f"the writer process ended (status {status}) first"))
        return out


def _read_exact(fd, n: int) -> bytes:
    parts, left = [], n
    while left:
        b = os.read(fd, min(left, 1 << 20))
        if not b:
            raise EOFError
        parts.append(b)
        left -= len(b)
    return b"".join(parts)


def _writer_loop(outdir, data_r, result_w):
    """The child's side: records until the pipe closes; exceptions reported."""
    report = []
    while True:
        head = os.read(data_r, _RECORD.size)
        if not head:
            break
        if len(head) < _RECORD.size:
            head += _read_exact(data_r, _RECORD.size - len(head))
        index, nlen, size = _RECORD.unpack(head)
        name = _read_exact(data_r, nlen).decode("utf-8", "surrogateescape")
        body = _read_exact(data_r, size)
        final, k, error = name, 1, ""
        try:
            while True:
                try:
                    fd = os.open(os.path.join(outdir, final), _CREATE, 0o666)
                    break
                except FileExistsError:       # created meanwhile by someone else
                    k += 1
                    stem, dot, rest = name.partition(".dcm")
                    final = f"{stem}_{k}{dot}{rest}"
            try:
                writev_all(fd, [body])
            finally:
                os.close(fd)
        except OSError as e:
            error = (e.strerror or str(e)).replace("\t", " ").replace("\n", " ")
        if final != name or error:
            report.append(f"{index}\t{final}\t{error}\n")
    writev_all(result_w, [r.encode("utf-8", "surrogateescape") for r in report] or [b""])
    os.close(result_w)


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
    _writer: object = None                # a _Writer once started
    _fresh: bool | None = None            # outdir was empty at the start

    def __post_init__(self):
        if self.outdir is not None:
            try:
                with os.scandir(self.outdir) as it:
                    self._fresh = next(it, None) is None
            except OSError:
                self._fresh = False

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
        a = m.assoc
        if part == "dataset":
            size, frame = m.dataset_len, m.dataset_frame or m.last_frame
        else:
            size, frame = len(m.command_bytes), m.last_frame
        if size < self.min_size and not (part == "command" and self.commands):
            return
        n = self._per_frame[frame] = self._per_frame.get(frame, 0) + 1
        if part == "dataset":
            # Real SOP UIDs for stored objects only; identifiers and N-service
            # data sets get artificial ones (as Wireshark: DICOM wiki,
            # "Conformance statement"), never the command's UIDs.
            sop_class, sop_instance = _storage_uids(m)
            ts = m.transfer_syntax
        else:
            sop_class = sop_instance = None
            ts = IMPLICIT_LE                   # command sets always are (PS3.7 6.3.1)
        artificial = not (sop_class and sop_instance)
        if artificial:
            sop_class = ARTIFICIAL_CLASS_UID
            sop_instance = f"{ARTIFICIAL_INSTANCE_ROOT}.{frame}.{n}"
        if part == "command":
            content, what = m.name, m.name
        elif not artificial:
            content, what = _class_name(sop_class), sop_instance
        elif m.command is None:
            content, what = "Data Set (command not captured)", "dataset"
        else:
            content, what = f"{m.name} {_dataset_word(m)}", f"{m.name}-data"
        rel, name = self._file_name(m, frame, n, what, part, sop_instance)
        complete = m.complete or (part == "command" and m.command is not None)
        reason = "" if complete else "; ".join(m.problems) or "incomplete"
        unproven = ts is None
        if unproven:
            # Not negotiated in the capture, not proven by the data: never a
            # plain .dcm claiming a syntax; the meta names none.
            why = unknown_syntax_text(m)
            reason = f"{reason}; {why}" if reason else why
        ex = Exported(frame, n, a.label() if a else "? <-> ?", content, size, name, None,
                      complete, reason, unproven)
        self.objects.append(ex)
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
        if self._writer is None and self._written >= WRITER_AFTER and self._fresh:
            self._fresh = False                # one try
            self._writer = _Writer.start(self.outdir)
        if self._writer is not None:
            parts = [m.command_bytes] if part == "command" else m.memory_parts()
            if parts is not None and size <= WRITER_MAX:
                try:
                    self._writer.submit(len(self.objects) - 1, name + suffix, [head, *parts])
                    ex.name = name + suffix
                    ex.path = os.path.join(self.outdir, ex.name)
                    return
                except OSError:
                    self.finish()              # the writer is gone: on without it
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
        used = self._template_fields()
        a = m.assoc
        fields = {}
        for k in used:
            if k == "frame":
                fields[k] = frame
            elif k == "n":
                fields[k] = n
            elif k == "what":
                fields[k] = safe_component(what, 80)
            elif k == "calling":
                fields[k] = safe_component(a.calling_ae if a else None)
            elif k == "called":
                fields[k] = safe_component(a.called_ae if a else None)
            elif k == "sop":
                fields[k] = safe_component(sop)      # the Media Storage SOP Instance UID
            elif k == "command":
                fields[k] = safe_component(m.name)
            elif k == "part":
                fields[k] = part
            elif k in ("study", "series"):
                fields[k] = "unknown"
        if "study" in used or "series" in used:
            fields.update(_study_series(m) if part == "dataset" else {})
        try:
            base = self.name_template.format(**fields)
        except (KeyError, ValueError, IndexError) as e:
            raise ValueError(f"bad --name template {self.name_template!r}: {e}") from None
        # Templates may make folders ('/'); each component stays safe.
        parts = [safe_component(p, MAX_NAME) for p in base.split("/") if p not in ("", ".", "..")]
        rel = os.path.join(*parts) if parts else "object"
        rel = rel[:MAX_NAME] + ".dcm"
        if self.outdir is not None and len(parts) > 1:
            os.makedirs(os.path.join(self.outdir, os.path.dirname(rel)), exist_ok=True)
        return rel, self._claim(rel, 1)

    def _template_fields(self) -> set:
        if self._fields is None:
            self._fields = {name.split(".")[0].split("[")[0] for _t, name, _f, _c
                            in string.Formatter().parse(self.name_template) if name}
        return self._fields

    def _claim(self, rel: str, k: int) -> str:
        """``rel``, or ``rel`` with ``_k`` (k >= 2), not used in this run.
        Files left by earlier runs are found when opening (never overwritten)."""
        candidate = rel if k == 1 else f"{rel[:-4]}_{k}.dcm"
        while candidate in self._taken:
            k += 1
            candidate = f"{rel[:-4]}_{k}.dcm"
        self._taken.add(candidate)
        return candidate


def _class_name(uid) -> str:
    return uid_name(uid) or str(uid)


def _dataset_uids(m):
    """SOP Class UID, SOP Instance UID and Query/Retrieve Level from the top
    level of the data set (element headers walked, no pixels read, no
    pydicom); None for each one missing, or all if the syntax is unknown."""
    from dicomwire.specs.dicom.dataset import text
    found, _err = m.scan_dataset((0x00080016, 0x00080018, 0x00080052)) or ({}, None)
    return text(found.get(0x00080016)), text(found.get(0x00080018)), text(found.get(0x00080052))


def _storage_uids(m):
    """The SOP Class and Instance UID a data set is exported under, or
    (None, None) for the artificial ones. A C-STORE-RQ's object: its
    command's Affected SOP Class/Instance UID (else the data set's own). A
    data set whose command was not captured: its own top-level ones, if it
    has both, is no query identifier (no Query/Retrieve Level) and its class
    is no known non-storage one. Every other message (C-FIND / C-GET /
    C-MOVE identifiers, N-CREATE / N-SET / N-ACTION / N-EVENT-REPORT / N-GET
    data sets, responses): None, whatever UIDs its command or data set holds."""
    if m.command_field == C_STORE_RQ:
        cls, inst = m.sop_class_uid, m.sop_instance_uid
        if not (cls and inst):
            ds_class, ds_instance, _level = _dataset_uids(m)
            cls, inst = cls or ds_class, inst or ds_instance
        return cls, inst
    if m.command is None:
        cls, inst, level = _dataset_uids(m)
        if cls and inst and level is None and _storage_class(cls):
            return cls, inst
    return None, None


def _storage_class(uid: str) -> bool:
    """Not a registered UID of something other than a storage SOP class
    (Storage Commitment, an MPPS or a query model, say); private ones pass."""
    name = uid_name(uid)
    return not name or ("Storage" in name and not name.startswith("Storage "))


def _dataset_word(m) -> str:
    """What PS3.7 calls the data set of this message: the Identifier of
    C-FIND, C-GET and C-MOVE (9.1.2-9.1.4), else a data set."""
    return "identifier" if m.name.startswith(("C-FIND", "C-GET", "C-MOVE")) else "data set"


def _study_series(m) -> dict:
    try:
        ds = m.dataset()
        return dict(study=safe_component(ds.get("StudyInstanceUID")),
                    series=safe_component(ds.get("SeriesInstanceUID")))
    except Exception:
        return {}


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


class _Stop(Exception):
    pass


def iter_objects(source, config=None, *, keep_raw: bool = False, incomplete: bool = False):
    """Iterate the data sets of a capture as :class:`DicomObject` s (pydicom
    datasets with their association and frames), in one streaming pass.

    The pass runs in a worker thread that waits for the consumer, so memory
    holds one object at a time; leaving the loop early stops the pass.
    Objects with bytes missing are skipped unless ``incomplete``.
    """
    import queue
    import threading

    from dicomwire.pipeline import make_host, run

    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    class Feed:
        @hookimpl
        def dicomwire_message(self, message):
            m = message
            if stop.is_set() or not m.has_dataset or not (m.complete or incomplete):
                return
            try:
                ds = m.dataset()
            except Exception:
                return
            a = m.assoc
            obj = DicomObject(ds, m.name, m.message_id, m.transfer_syntax,
                              a.calling_ae if a else None, a.called_ae if a else None,
                              m.first_frame, m.last_frame, m.complete,
                              m.dataset_bytes() if keep_raw else None)
            while not stop.is_set():
                try:
                    q.put(obj, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def tap(*_frame):
        if stop.is_set():
            raise _Stop

    errors = []

    def work():
        from dicomwire.config import Config
        cfg = config or Config()
        host = make_host(cfg)
        host.register(Feed(), "iter_objects")
        try:
            run(source, cfg, host, tap=tap)
        except _Stop:
            pass
        except Exception as e:            # e.g. not a capture: re-raised in the consumer
            errors.append(e)
        finally:
            while True:
                try:
                    q.put(done, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    t = threading.Thread(target=work, name="dicomwire-iter-objects", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            yield item
        if errors:
            raise errors[0]
    finally:
        stop.set()
        try:
            q.get_nowait()
        except queue.Empty:
            pass
        t.join(timeout=30)
