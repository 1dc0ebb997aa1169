"""``dicomwire show`` and the display filter on PDUs (``-Y``) that
``show``, ``expert`` and ``annotate`` share.

:class:`ShowPDUs` prints each PDU as it is decoded (summary line, ``-V``
tree, JSON, ``-T fields``); :class:`PDUMatch` evaluates a filter on each
PDU's fields and records the frames of those that match.
"""

from __future__ import annotations

import json
import sys
import weakref

from dicomwire import cli
from dicomwire.addr import format_endpoint
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom import render
from dicomwire.plugins.dicom.fields import (
    NAMES,
    dataset_tag_values,
    fmt_value,
    message_values,
    pdu_values,
)
from dicomwire.plugins.dicom.render_dataset import dataset_tree


class _PerMessage(weakref.WeakKeyDictionary):
    """What a plugin holds for a message until its PDU: weak, since a message
    cut short reaches none (kept for ever otherwise, over days of live
    capture); it travels to --dask workers as a new, empty one."""

    def __reduce__(self):
        return _PerMessage, ()

    def add_to(self, vals: dict, pdu):
        """Field values held for the PDU's messages ({field: [values]}) given
        up into ``vals``."""
        for pdv in pdu.pdvs:
            if pdv.message is not None:
                for k, v in self.pop(pdv.message, {}).items():
                    vals.setdefault(k, []).extend(v)


# Fields every PDU has: they alone do not make a -T fields row worth printing.
ALWAYS_PRESENT = ("frame.number", "frame.time_relative", "dicom.summary")


class ShowPDUs:
    """Prints each PDU as it is decoded: output streams with the capture."""

    def __init__(self, args, out):
        self.render = render             # per PDU: a module attribute, not a global lookup
        self.args, self.out = args, out
        self.t0 = None               # the capture's first frame (ns): tshark's time origin
        self.capture = None
        self.items = []
        self.datasets = _PerMessage()    # message -> rendered data set, until its PDU
        self.seen = {}               # id -> expert info already shown (kept: ids stay unique)
        self.ends = {}               # (stream id, direction) -> (source, destination) text
        # -T fields: the requested fields a PDU may lack (a row needs one of them)
        self.row_fields = [f for f in getattr(args, "fields", ()) or ()
                           if f not in ALWAYS_PRESENT]

    match = None                     # a PDUMatch (registered beside us) for -Y

    @hookimpl
    def dicomwire_message(self, message):
        # Data set bytes live only during this hook: render them now.
        if self.args.verbose and self.args.format == "text" and message.has_dataset \
                and self.config.pref("dicom.pdv_reassemble"):
            self.datasets[message] = dataset_tree(
                message, self.config.pref("dicom.seq_tree"), self.config.pref("dicom.tag_tree"))
        elif self.args.format == "fields" and message.has_dataset and any(
                f.startswith("dicom.tag") for f in self.args.fields):
            self.datasets[message] = dataset_tag_values(message)

    @hookimpl
    def dicomwire_capture_start(self, capture):
        self.capture = capture

    @hookimpl
    def dicomwire_tls(self, stream, event):
        """TLS handshake records and alerts of DICOM-TLS streams, in text
        output without a filter (-Y selects PDUs)."""
        if self.args.format != "text" or self.match is not None:
            return
        src = format_endpoint(*stream.endpoint(event.direction))
        dst = format_endpoint(*stream.endpoint(1 - event.direction))
        if self.t0 is None:
            ts = getattr(self.capture, "first_ts", None)
            self.t0 = event.ts if ts is None else ts
        t = (event.ts - self.t0) / 1e9
        self.out.write(f"{event.frame:>7} {t:>11.6f} {src} -> {dst} TLS {event.text}\n")

    @hookimpl
    def dicomwire_stream_close(self, stream):
        self.ends.pop((stream.id, 0), None)       # bounded over days of live capture
        self.ends.pop((stream.id, 1), None)

    @hookimpl(trylast=True)          # after the checks, so their findings show here
    def dicomwire_pdu(self, pdu, expert):
        render = self.render
        infos = []
        # Findings point at the frames where PDUs and messages start or end.
        by_frame = expert.by_frame
        for fr in ((pdu.first_frame, pdu.last_frame) if pdu.first_frame != pdu.last_frame
                   else (pdu.last_frame,)):
            for i in by_frame.get(fr, ()):
                if id(i) not in self.seen:
                    self.seen[id(i)] = i
                    infos.append(i)
        if len(self.seen) > 2 * len(expert.infos) + 1024:
            # A live run forgot older findings (ExpertLog.retain): so do we.
            kept = {id(i) for i in expert.infos}
            self.seen = {k: i for k, i in self.seen.items() if k in kept}
        s = pdu.stream
        ends = self.ends.get((s.id, pdu.direction))
        if ends is None:
            ends = self.ends[(s.id, pdu.direction)] = (
                format_endpoint(*s.endpoint(pdu.direction)),
                format_endpoint(*s.endpoint(1 - pdu.direction)))
        src, dst = ends
        # The time of the frame shown (the one that completed the PDU), as
        # tshark's frame.time_relative: since the capture's first frame.
        t0 = self.t0
        if t0 is None:
            t0 = self.t0 = first_ts(self.capture, pdu)
        t = (pdu.last_ts - t0) / 1e9
        if self.match is not None and not self.match.accept(pdu, expert):
            return
        fmt = self.args.format
        if fmt == "text":
            # The line marks warnings and errors; -V spells out every finding.
            marks = "".join(f" [{i.field.severity}: {i.field.name}]" for i in infos
                            if i.field.severity in ("warn", "error")) if infos else ""
            self.out.write(f"{pdu.last_frame:>7} {t:>11.6f} {src} -> {dst} "
                           f"{render.pdu_summary(pdu)}{marks}\n")
            if self.args.verbose:
                self.out.write(render.pdu_tree(pdu, show_secrets=self.args.show_secrets))
                self.out.write("\n")
                for i in infos:
                    self.out.write(f"    [Expert Info ({i.field.severity}/{i.field.group}): "
                                   f"{i.message}]\n")
                for pdv in pdu.pdvs:
                    text = self.datasets.pop(pdv.message, None) \
                        if not pdv.is_command and pdv.message is not None else None
                    if text:
                        self.out.write("        " + text.replace("\n", "\n        ") + "\n")
            return
        if fmt == "fields":
            vals = pdu_values(pdu)
            self.datasets.add_to(vals, pdu)
            if not self.args.empty_rows and self.row_fields and not any(
                    vals.get(name) for name in self.row_fields):
                return                  # nothing of what was asked for is in this PDU
            vals["frame.number"] = [pdu.last_frame]
            vals["frame.time_relative"] = [f"{t:.9f}"]
            vals["dicom.summary"] = [render.pdu_summary(pdu)]
            self.out.write("\t".join(",".join(fmt_value(name, v) for v in vals.get(name, ()))
                                     for name in self.args.fields) + "\n")
            return
        doc = render.pdu_json(pdu, t0, src, dst, show_secrets=self.args.show_secrets)
        doc["expert"] = [i.as_dict() for i in infos]
        if fmt == "jsonl":
            self.out.write(json.dumps(doc) + "\n")
        else:
            self.items.append(doc)


EXPERT_FILTER_FIELDS = ("expert.name", "expert.severity", "expert.group", "expert.message")


class PDUMatch:
    """-Y on PDUs (show, annotate, expert): evaluates the filter on each PDU's
    fields and records the PDUs that match, as ``record`` asks: their first
    and last ``frames`` (a finding on one passes -Y), their frame ``ranges``
    per stream; show needs neither. A live run (the expert log keeps its
    latest findings, ``ExpertLog.retain``) keeps the frames of about as many
    matching PDUs as findings, the latest."""

    def __init__(self, dfilter, record=("frames", "ranges")):
        self.filter = dfilter
        self.keywords = [f for f in dfilter.fields
                         if not f.startswith(("dicom.", "frame.", "expert."))]
        self.pdu_values, self.pdu_summary = pdu_values, render.pdu_summary     # per PDU
        # dicom.tag* fields cover data set elements too: walk those sets.
        self.tags = any(f.startswith("dicom.tag") for f in dfilter.fields)
        self.kw = _PerMessage()      # message -> {keyword: [values]}, until its PDU
        self.record_frames, self.record_ranges = "frames" in record, "ranges" in record
        self.ranges: dict[int, list] = {}        # stream id -> [(first, last)]
        self.frames: set = set()
        self.order: list = []        # live runs: the frames recorded, oldest first
        self.t0 = None
        self.capture = None

    @hookimpl
    def dicomwire_capture_start(self, capture):
        self.capture = capture

    @hookimpl
    def dicomwire_message(self, message):
        # Data set attributes are readable only now: keep those the filter names.
        if (self.keywords or self.tags) and message.has_dataset:
            vals = message_values(message, self.keywords)
            kept = {k: vals[k] for k in self.keywords if k in vals}
            # The message's command fields go with its data set to the PDU that
            # completes it, so "C-STORE of a CT" matches there (the command
            # came in an earlier PDU); Wireshark shows reassembled fields so.
            kept.update((k, v) for k, v in vals.items() if k.startswith("dicom.cmd."))
            if self.tags:
                kept.update(dataset_tag_values(message))
            self.kw[message] = kept

    def accept(self, pdu, expert=None) -> bool:
        """Does this PDU match? Called once per PDU (by show's renderer, or by
        :class:`PDUMatchPlugin`'s hook)."""
        vals = self.pdu_values(pdu)
        vals["frame.number"] = [pdu.last_frame]
        t0 = self.t0
        if t0 is None:
            t0 = self.t0 = first_ts(self.capture, pdu)
        vals["frame.time_relative"] = [(pdu.last_ts - t0) / 1e9]
        vals["dicom.summary"] = [self.pdu_summary(pdu)]
        self.kw.add_to(vals, pdu)
        if not self.filter(vals):
            return False
        if self.record_ranges:
            self.ranges.setdefault(pdu.stream.id, []).append((pdu.first_frame, pdu.last_frame))
        if self.record_frames:
            self.frames.update((pdu.first_frame, pdu.last_frame))
            retain = getattr(expert, "retain", None)
            if retain is not None:
                self.order += (pdu.first_frame, pdu.last_frame)
                if len(self.order) > 4 * retain:
                    self._forget_oldest()
        return True

    def _forget_oldest(self):
        """Live runs: the oldest half of the frames recorded, out (a frame
        that a later PDU shares stays)."""
        half = len(self.order) // 2
        old, self.order = self.order[:half], self.order[half:]
        self.frames.difference_update(set(old).difference(self.order))


def first_ts(capture, pdu) -> int:
    """The origin of relative times: the capture's first frame (read by
    the time any PDU is decoded), else the PDU's own first segment."""
    ts = getattr(capture, "first_ts", None)
    return pdu.first_ts if ts is None else ts


class PDUMatchPlugin(PDUMatch):
    """The matcher on its own (annotate, expert): evaluates every PDU."""

    @hookimpl
    def dicomwire_pdu(self, pdu, expert):
        self.accept(pdu, expert)


def compile_filter(text):
    """``-Y`` text -> a DisplayFilter over the DICOM fields; a bad one exits
    with a usage error."""
    from dicomwire.filter import DisplayFilter, FilterError    # builds a grammar: only for -Y
    try:
        return DisplayFilter(text, known_field)
    except FilterError as e:
        raise SystemExit(cli.usage(f"-Y: {e}"))


def known_field(name: str) -> bool:
    if name in NAMES or name in ("frame.number", "frame.time_relative", "dicom.summary"):
        return True
    if name in EXPERT_FILTER_FIELDS:
        return True
    from pydicom.datadict import tag_for_keyword
    return tag_for_keyword(name) is not None


#: Fields whose values a ``--dask`` worker knows only as tokens (numbered at
#: the merge, dicomwire.handover.LateId): a filter on them needs one process.
LATE_FIELDS = ("dicom.stream", "dicom.assoc")


def show_match(text) -> PDUMatch:
    """show's -Y: it prints what matches and keeps nothing of it (days of
    live capture)."""
    return PDUMatch(compile_filter(text), record=())


def cmd_show(args) -> int:
    match = show_match(args.filter) if args.filter else None
    if match and getattr(args, "dask", None) and set(match.filter.fields) & set(LATE_FIELDS):
        return cli.usage(f"--dask: -Y on {' or '.join(LATE_FIELDS)} needs one process "
                         "(the cluster numbers streams and associations at the end)")
    if args.format == "fields":
        if not args.fields:
            return cli.usage("-T fields needs at least one -e FIELD")
        bad = [f for f in args.fields if f not in NAMES
               and f not in ("frame.number", "frame.time_relative")]
        if bad:
            return cli.usage(f"unknown field {bad[0]!r} (dicomwire fields lists them)")
    prepared = cli.setup(args)
    shower = ShowPDUs(args, sys.stdout)
    shower.config = prepared[0]
    shower.match = match
    result = cli.run_capture(args, shower, *([match] if match else []), prepared=prepared)
    if args.format == "json":
        json.dump(shower.items, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return cli.finish(args, result)
