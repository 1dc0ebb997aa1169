"""The ``dicomwire`` command line: one tool, one pass, shared options.

Exit status: 0 ok; 1 when ``--fail-on`` asked for it and the input had
problems; 2 usage errors, including a capture that cannot be opened or is not
a capture at all.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys

from dicomwire import __version__
from dicomwire.addr import format_endpoint
from dicomwire.capture import CaptureError
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.host import PluginLoadError
from dicomwire.pipeline import Progress, Result, make_host, run

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


_PREF = re.compile(r"^[a-z][a-z0-9_.-]*:")


class _OptionOrOutput(argparse.Action):
    """-o NAME:VALUE sets a preference (tshark's -o); for commands that write
    (export, annotate), any other -o value is the output, as the brief's
    `dicomwire export CAPTURE -o DIR` has it."""

    def __call__(self, parser, namespace, value, option_string=None):
        if _PREF.match(value) or not hasattr(namespace, "outdir"):
            namespace.options = (namespace.options or []) + [value]
        else:
            namespace.outdir = value


def _common() -> argparse.ArgumentParser:
    """Options every command takes, with the same meaning everywhere."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("-p", dest="plugins", action="append", default=[], metavar="PLUGIN",
                   help="load plugin module PLUGIN; -p no:NAME blocks plugin NAME")
    g.add_argument("-o", dest="options", action=_OptionOrOutput, default=[],
                   metavar="NAME:VALUE", help="set a preference, as tshark's -o")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line and no warnings on stderr")
    g.add_argument("--fail-on", choices=("never", "problems"), default="never",
                   help="exit 1 if the input had problems (cut capture, malformed "
                        "frames, stream gaps, conflicting retransmissions)")
    return p


def _dicom() -> argparse.ArgumentParser:
    """Options of the commands that decode DICOM."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("DICOM options")
    g.add_argument("--ports", default=None, metavar="LIST",
                   help="TCP ports decoded as DICOM, e.g. 104,3200,50000-51000 "
                        "(preference dicom.tcp.port, default 104,11112)")
    g.add_argument("--no-heuristic", dest="heuristic", action="store_const", const=False,
                   default=None, help="do not look for A-ASSOCIATE requests on other ports "
                                      "(preference dicom.heuristic)")
    g.add_argument("--show-secrets", action="store_true",
                   help="show user identity passcodes instead of masking them")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    dicom = _dicom()
    parser = argparse.ArgumentParser(
        prog="dicomwire",
        description="Decode, diagnose and export DICOM network traffic from packet "
                    "captures (pcap, pcapng, gzip-compressed; '-' reads stdin).")
    parser.add_argument("--version", action="version", version=f"dicomwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("show", parents=[common, dicom],
                       help="one line per DICOM PDU, or its full tree (-V)",
                       description="Each DICOM PDU as Wireshark's Info column shows it: "
                                   "frame, time, source -> destination, summary.")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.add_argument("-V", dest="verbose", action="store_true",
                   help="the decoded tree of each PDU, with the data sets it completes")
    s.add_argument("--flat", dest="seq_tree", action="store_const", const=False, default=None,
                   help="with -V: no subtrees for sequences and items (Wireshark's "
                        "'Create subtrees for Sequences and Items' off)")
    s.add_argument("--tag-detail", dest="tag_tree", action="store_const", const=True,
                   default=None,
                   help="with -V: show each tag's value length (Wireshark's "
                        "'Create subtrees for DICOM Tags')")
    s.add_argument("-T", dest="format", choices=("text", "json", "jsonl", "fields"),
                   default="text", help="output format; fields: the -e fields, tab separated")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="display filter, Wireshark syntax: only PDUs that match "
                        "(e.g. 'dicom.cmd.name == \"C-STORE-RQ\" && Modality == CT')")
    s.add_argument("-e", dest="fields", action="append", default=[], metavar="FIELD",
                   help="with -T fields: a field to print (dicomwire fields lists them; "
                        "also frame.number, frame.time_relative)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("fields", parents=[common, dicom],
                       help="field and expert info names (like tshark -G fields)",
                       description="Every field name with its type and description, then "
                                   "every expert info name with severity and group.")
    s.set_defaults(func=cmd_fields)

    s = sub.add_parser("assoc", parents=[common, dicom],
                       help="association negotiation dumps",
                       description="Each association's A-ASSOCIATE negotiation in the "
                                   "layout of DCMTK and pynetdicom debug logs.")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.set_defaults(func=cmd_assoc)

    s = sub.add_parser(
        "export", parents=[common, dicom], help="DICOM objects as Part 10 files",
        description="Write every DICOM object that crossed the wire as a Part 10 file: the "
                    "data set exactly as sent, with a File Meta Information header. "
                    "Exported objects serve troubleshooting only and must not be used for "
                    "clinical purposes (captures may also hold patient data: handle them "
                    "accordingly).")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.add_argument("--output", dest="outdir", metavar="DIR",
                   help="folder to write to (created if missing); -o DIR works too: a -o "
                        "value that is not NAME:VALUE is the output")
    s.add_argument("--list", action="store_true",
                   help="only list what would be exported (Wireshark's export dialog)")
    s.add_argument("--min-size", dest="export_minsize", type=int, default=None,
                   metavar="BYTES",
                   help="leave out objects smaller than this; 0 also exports command sets "
                        "(preference dicom.export_minsize, Wireshark's 'Min. item size "
                        "in bytes to export'; default 10 here, 4096 in Wireshark, so "
                        "query identifiers and small objects are not hidden)")
    s.add_argument("--commands", action="store_true", help="export command sets too")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="display filter on the objects' messages (command fields, "
                        "association, data set keywords), e.g. 'Modality == CT'")
    s.add_argument("--no-meta", dest="export_header", action="store_const", const=False,
                   default=None,
                   help="write the bare data set, no File Meta Information")
    s.add_argument("--keep-incomplete", action="store_true",
                   help="write objects with bytes missing as NAME.dcm.incomplete "
                        "(default: skip and report them)")
    s.add_argument("--name", default="{frame:06d}-{n}-{what}", metavar="TEMPLATE",
                   help="file name template: {frame} {n} {what} (SOP Instance UID or "
                        "command) {sop} {command} {calling} {called} {study} {series}; "
                        "'/' makes folders (default: %(default)s)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "annotate", parents=[common, dicom], help="write a pcapng with DICOM packet comments",
        description="Copy the capture to a pcapng file whose DICOM frames carry packet "
                    "comments: the PDU summary, the association, every expert info. "
                    "Wireshark and tshark show them (frame.comment).")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.add_argument("--output", dest="outdir", metavar="OUT.pcapng",
                   help="the pcapng to write (-o OUT.pcapng works too)")
    s.add_argument("--only-dicom", action="store_true",
                   help="keep only the frames of DICOM streams")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="keep only the frames of the DICOM PDUs that match this display "
                        "filter (as tshark -Y with -w)")
    s.set_defaults(func=cmd_annotate)

    s = sub.add_parser("expert", parents=[common, dicom],
                       help="diagnostics summary (like tshark -z expert)",
                       description="What went wrong and where: every expert info of the "
                                   "capture, grouped by kind, most severe first.")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.add_argument("--verbose", action="store_true",
                   help="list every finding with its frames, stream and association")
    s.add_argument("--min-severity", choices=("chat", "note", "warn", "error"), default="chat",
                   help="leave out findings below this severity")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="only findings on PDUs that match this display filter, or whose "
                        "expert.name / expert.severity / expert.group / expert.message match")
    s.add_argument("-T", dest="format", choices=("text", "json"), default="text",
                   help="output format")
    s.set_defaults(func=cmd_expert)

    s = sub.add_parser("prefs", parents=[common, dicom],
                       help="effective preferences and where each comes from",
                       description="Every preference, its value and its source: default, "
                                   "config file (dicomwire.toml or [tool.dicomwire] in "
                                   "pyproject.toml), -o NAME:VALUE, or a flag.")
    s.set_defaults(func=cmd_prefs)

    s = sub.add_parser("streams", parents=[common],
                       help="TCP streams with fault counts (like tshark -z conv,tcp)",
                       description="One line per TCP stream: end points, frames and "
                                   "payload bytes each way, gaps, retransmissions, "
                                   "conflicting overlaps, start, duration and how it closed.")
    s.add_argument("capture", help="capture file, or - for stdin")
    s.add_argument("-T", dest="format", choices=("text", "json"), default="text",
                   help="output format")
    s.set_defaults(func=cmd_streams)

    s = sub.add_parser(
        "fuzz", help="fuzz a DICOM SCP over the network (loopback unless --allow-remote)",
        description="Association-level fuzzing of a DICOM SCP: each case sends valid or "
                    "mutated PDUs built from the spec pack (lengths off by one, overruns, "
                    "unknown items, odd AE titles and UIDs, bad PDV flags, fragments out of "
                    "order, PDUs beyond the negotiated maximum ...), then a probe (C-ECHO) "
                    "checks the peer still serves. Failing cases (crash, hang, reset, "
                    "garbage answers) are written as pcapng files, with a summary. Only "
                    "loopback targets unless --allow-remote: fuzz only systems you are "
                    "responsible for, never production or clinical ones.")
    s.add_argument("target", nargs="?", metavar="HOST:PORT",
                   help="the SCP, e.g. 127.0.0.1:11112 or [::1]:104")
    s.add_argument("-n", "--count", type=int, default=200, help="cases to run (default 200)")
    s.add_argument("--time", dest="time_limit", type=float, default=300.0, metavar="SECONDS",
                   help="start no case after this many seconds (default 300)")
    s.add_argument("--seed", type=int, help="seed of the cases (default: random, printed)")
    s.add_argument("--case", dest="cases", type=int, action="append", metavar="N",
                   help="run only case N of the seed (repeatable): reproduces one case")
    s.add_argument("--kinds", metavar="LIST",
                   help="comma-separated case kinds (default: all; --list-kinds shows them)")
    s.add_argument("--list-kinds", action="store_true", help="list the case kinds and exit")
    s.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="wait this long for each answer within a case (default 2)")
    s.add_argument("--probe-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="a probe answer slower than this means the peer hangs (default 5)")
    s.add_argument("--recover", type=float, default=60.0, metavar="SECONDS",
                   help="after a hang or failed probe, wait this long for the peer to serve "
                        "again before stopping (default 60)")
    s.add_argument("-o", "--output", dest="outdir", default="dicomwire-fuzz", metavar="DIR",
                   help="folder for failing cases (pcapng) and summary.txt / summary.json "
                        "(default: %(default)s)")
    s.add_argument("--save-all", action="store_true",
                   help="write every case, not only failing ones")
    s.add_argument("--replay", metavar="CASE.pcapng",
                   help="resend the client side of a case file to HOST:PORT, then probe")
    s.add_argument("--allow-remote", action="store_true",
                   help="allow a target that is not a loopback address")
    s.add_argument("--called-aet", default="ANY-SCP", help="called AE title (default ANY-SCP)")
    s.add_argument("--calling-aet", default="DICOMWIRE",
                   help="calling AE title (default DICOMWIRE)")
    s.add_argument("-T", dest="format", choices=("text", "json"), default="text",
                   help="summary format on stdout")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    s.set_defaults(func=cmd_fuzz)
    return parser


def _config(args) -> Config:
    opts = {}
    for o in args.options:
        name, sep, value = o.partition(":")
        if not sep or not name:
            raise SystemExit(_usage(f"-o expects NAME:VALUE, got {o!r}"))
        opts[name] = value
    return Config(plugins=args.plugins, options=opts,
                  progress=not args.quiet and sys.stderr.isatty())


def _setup(args):
    """Config and plugin host, preferences applied (defaults < file < -o < flags)."""
    from dicomwire.prefs import ENGINE_PREFS, PrefError, apply, load_file
    config = _config(args)
    host = make_host(config)
    prefs = list(ENGINE_PREFS)
    for table in host.call("dicomwire_preferences"):
        prefs.extend(table)
    flags = {p.name: getattr(args, p.flag, None) for p in prefs if p.flag}
    try:
        file_values, file_name = load_file()
        config.effective = apply(config, prefs, file_values, file_name, dict(config.options),
                                 flags)
    except (PrefError, ValueError) as e:
        raise SystemExit(_usage(str(e)))
    config.declared = prefs
    return config, host


def _usage(msg: str) -> int:
    print(f"dicomwire: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _run(args, *plugins, tap=None, setup=None) -> Result:
    config, host = setup or _setup(args)
    for p in plugins:
        host.register(p, type(p).__name__.lower())
    bar = Progress() if config.progress else None
    try:
        return run(args.capture, config, host, progress=bar, tap=tap)
    finally:
        if bar:
            bar.clear()


def _finish(args, result: Result, findings: bool = False) -> int:
    if not args.quiet:
        for w in result.warnings:
            print(f"dicomwire: warning: {w}", file=sys.stderr)
        bad = result.link.malformed
        if bad:
            print(f"dicomwire: warning: {result.link.stats.malformed} malformed frame(s); "
                  f"first: frame {bad[0][0]}: {bad[0][1]}", file=sys.stderr)
    if result.interrupted:
        return 130
    if args.fail_on == "problems" and (result.problems() or findings):
        return EXIT_FINDINGS
    return EXIT_OK


# -- streams ---------------------------------------------------------------------


def stream_rows(result: Result) -> list[dict]:
    t0 = result.first_ts or 0
    rows = []
    for s in result.streams:
        a, b = s.dirs
        rows.append({
            "stream": s.id,
            "client": format_endpoint(*s.client),
            "server": format_endpoint(*s.server),
            "client_known": s.client_known,
            "frames_c2s": a.frames, "bytes_c2s": a.bytes,
            "frames_s2c": b.frames, "bytes_s2c": b.bytes,
            "first_frame": s.first_frame, "last_frame": s.last_frame,
            "start": (s.first_ts - t0) / 1e9,
            "duration": (s.last_ts - s.first_ts) / 1e9,
            "gaps": a.gaps + b.gaps, "gap_bytes": a.gap_bytes + b.gap_bytes,
            "retransmissions": a.retrans + b.retrans,
            "out_of_order": a.ooo_segments + b.ooo_segments,
            "conflicts": a.conflicts + b.conflicts,
            "keepalives": a.keepalives + b.keepalives,
            "zero_windows_c2s": a.zero_windows, "zero_windows_s2c": b.zero_windows,
            "close": s.close_reason,
        })
    return rows


def cmd_streams(args) -> int:
    # A TCP-level table: protocol dissectors have nothing to add to it yet,
    # so they stay off and the pass runs at reassembly speed.
    setup = _setup(args)
    setup[0].dissect = False
    result = _run(args, setup=setup)
    rows = stream_rows(result)
    out = sys.stdout
    if args.format == "json":
        json.dump({"capture": result.reader.name, "format": result.reader.format,
                   "frames": result.frames, "streams": rows}, out, indent=1)
        out.write("\n")
        return _finish(args, result)
    out.write(f"TCP streams in {result.reader.name} ({result.reader.format}, "
              f"{result.frames} frames, {len(rows)} streams)\n")
    wa = max([len(r["client"]) for r in rows] + [6])
    wb = max([len(r["server"]) for r in rows] + [6])
    out.write(f"{'#':>4}  {'Client':<{wa}}    {'Server':<{wb}}  {'Frames->':>8} {'Bytes->':>11}"
              f"  {'<-Frames':>8} {'<-Bytes':>11}  {'Start':>9} {'Duration':>9}"
              f"  {'Gaps':>4} {'GapBytes':>9} {'Retrans':>7} {'OOO':>5} {'Conflict':>8}  Close\n")
    for r in rows:
        arrow = "->" if r["client_known"] else "~>"
        out.write(f"{r['stream']:>4}  {r['client']:<{wa}} {arrow} {r['server']:<{wb}}"
                  f"  {r['frames_c2s']:>8} {r['bytes_c2s']:>11}  {r['frames_s2c']:>8}"
                  f" {r['bytes_s2c']:>11}  {r['start']:>9.3f} {r['duration']:>9.3f}"
                  f"  {r['gaps']:>4} {r['gap_bytes']:>9} {r['retransmissions']:>7}"
                  f" {r['out_of_order']:>5} {r['conflicts']:>8}  {r['close']}\n")
    if any(not r["client_known"] for r in rows):
        out.write("~> the capture began after the handshake: client guessed from the ports\n")
    return _finish(args, result)


# -- show / assoc ---------------------------------------------------------------------


class _ShowPDUs:
    """Prints each PDU as it is decoded: output streams with the capture."""

    def __init__(self, args, out):
        from dicomwire.plugins.dicom import render
        self.render = render             # per PDU: no import statement in the hook
        self.args, self.out = args, out
        self.t0 = None               # the capture's first frame (ns): tshark's time origin
        self.capture = None
        self.items = []
        self.datasets = {}           # message -> rendered data set, until its PDU prints
        self.seen = set()            # expert infos already shown
        self.ends = {}               # (stream id, direction) -> (source, destination) text

    match = None                     # a _PDUMatch (registered beside us) for -Y

    @hookimpl
    def dicomwire_message(self, message):
        # Data set bytes live only during this hook: render them now.
        if self.args.verbose and self.args.format == "text" and message.has_dataset \
                and self.config.pref("dicom.pdv_reassemble"):
            from dicomwire.plugins.dicom import render
            self.datasets[id(message)] = render.dataset_tree(
                message, self.config.pref("dicom.seq_tree"), self.config.pref("dicom.tag_tree"))
        elif self.args.format == "fields" and message.has_dataset and any(
                f.startswith("dicom.tag") for f in self.args.fields):
            from dicomwire.plugins.dicom.fields import dataset_tag_values
            self.datasets[id(message)] = dataset_tag_values(message)

    @hookimpl
    def dicomwire_capture_start(self, capture):
        self.capture = capture

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
                    self.seen.add(id(i))
                    infos.append(i)
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
            t0 = self.t0 = _first_ts(self.capture, pdu)
        t = (pdu.last_ts - t0) / 1e9
        if self.match is not None and not self.match.accept(pdu):
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
                    text = self.datasets.pop(id(pdv.message), None) if not pdv.is_command else None
                    if text:
                        self.out.write("        " + text.replace("\n", "\n        ") + "\n")
            return
        if fmt == "fields":
            from dicomwire.plugins.dicom.fields import fmt_value, pdu_values
            vals = pdu_values(pdu)
            for pdv in pdu.pdvs:
                for k, v in self.datasets.pop(id(pdv.message), {}).items():
                    vals.setdefault(k, []).extend(v)
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


class _PDUMatch:
    """-Y on PDUs (show, annotate, expert): evaluates the filter on each PDU's
    fields and records the PDUs that match (stream, first frame, last frame)."""

    def __init__(self, dfilter):
        self.filter = dfilter
        self.keywords = [f for f in dfilter.fields
                         if not f.startswith(("dicom.", "frame.", "expert."))]
        from dicomwire.plugins.dicom.fields import pdu_values
        from dicomwire.plugins.dicom.render import pdu_summary
        self.pdu_values, self.pdu_summary = pdu_values, pdu_summary     # per PDU
        # dicom.tag* fields cover data set elements too: walk those sets.
        self.tags = any(f.startswith("dicom.tag") for f in dfilter.fields)
        self.kw = {}                 # message -> {keyword: [values]}, until its PDU
        self.ranges: dict[int, list] = {}        # stream id -> [(first, last)]
        self.frames: set = set()
        self.t0 = None
        self.capture = None

    @hookimpl
    def dicomwire_capture_start(self, capture):
        self.capture = capture

    @hookimpl
    def dicomwire_message(self, message):
        # Data set attributes are readable only now: keep those the filter names.
        if (self.keywords or self.tags) and message.has_dataset:
            from dicomwire.plugins.dicom.fields import dataset_tag_values, message_values
            vals = message_values(message, self.keywords)
            kept = {k: vals[k] for k in self.keywords if k in vals}
            if self.tags:
                kept.update(dataset_tag_values(message))
            self.kw[id(message)] = kept

    def accept(self, pdu) -> bool:
        """Does this PDU match? Called once per PDU (by show's renderer, or by
        :class:`_PDUMatchPlugin`'s hook)."""
        vals = self.pdu_values(pdu)
        vals["frame.number"] = [pdu.last_frame]
        t0 = self.t0
        if t0 is None:
            t0 = self.t0 = _first_ts(self.capture, pdu)
        vals["frame.time_relative"] = [(pdu.last_ts - t0) / 1e9]
        vals["dicom.summary"] = [self.pdu_summary(pdu)]
        for pdv in pdu.pdvs:
            for k, v in self.kw.pop(id(pdv.message), {}).items():
                vals.setdefault(k, []).extend(v)
        if not self.filter(vals):
            return False
        self.ranges.setdefault(pdu.stream.id, []).append((pdu.first_frame, pdu.last_frame))
        self.frames.update((pdu.first_frame, pdu.last_frame))
        return True


def _first_ts(capture, pdu) -> int:
    """The origin of relative times: the capture's first frame (read by
    the time any PDU is decoded), else the PDU's own first segment."""
    ts = getattr(capture, "first_ts", None)
    return pdu.first_ts if ts is None else ts


class _PDUMatchPlugin(_PDUMatch):
    """The matcher on its own (annotate, expert): evaluates every PDU."""

    @hookimpl
    def dicomwire_pdu(self, pdu):
        self.accept(pdu)


def _compile_filter(text):
    from dicomwire.filter import DisplayFilter, FilterError
    try:
        return DisplayFilter(text, _known_field)
    except FilterError as e:
        raise SystemExit(_usage(f"-Y: {e}"))


def _known_field(name: str) -> bool:
    from dicomwire.plugins.dicom.fields import NAMES
    if name in NAMES or name in ("frame.number", "frame.time_relative", "dicom.summary"):
        return True
    if name in EXPERT_FILTER_FIELDS:
        return True
    from pydicom.datadict import tag_for_keyword
    return tag_for_keyword(name) is not None


def cmd_show(args) -> int:
    from dicomwire.plugins.dicom.fields import NAMES
    match = _PDUMatch(_compile_filter(args.filter)) if args.filter else None
    if args.format == "fields":
        if not args.fields:
            return _usage("-T fields needs at least one -e FIELD")
        bad = [f for f in args.fields if f not in NAMES
               and f not in ("frame.number", "frame.time_relative")]
        if bad:
            return _usage(f"unknown field {bad[0]!r} (dicomwire fields lists them)")
    setup = _setup(args)
    shower = _ShowPDUs(args, sys.stdout)
    shower.config = setup[0]
    shower.match = match
    result = _run(args, shower, *([match] if match else []), setup=setup)
    if args.format == "json":
        json.dump(shower.items, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return _finish(args, result)


class _Associations:
    def __init__(self):
        self.done = []

    @hookimpl
    def dicomwire_association_end(self, assoc):
        self.done.append(assoc)


def cmd_assoc(args) -> int:
    from dicomwire.plugins.dicom import render
    col = _Associations()
    result = _run(args, col)
    for a in sorted(col.done, key=lambda a: a.id):
        s = a.stream
        sys.stdout.write(f"{format_endpoint(*s.client)} -> {format_endpoint(*s.server)} "
                         f"(TCP stream {s.id})\n")
        sys.stdout.write(render.association_dump(a, show_secrets=args.show_secrets) + "\n\n")
    return _finish(args, result)


EXPORT_SKIPS = ("dicom-expert", "dicom-qr", "dicom-nservice", "dicom-expert-ts")


def cmd_export(args) -> int:
    from dicomwire.exporters.part10 import Part10Exporter
    if not args.list and not args.outdir:
        return _usage("export needs -o DIR (or --list)")
    outdir = None if args.list else args.outdir
    if outdir:
        try:
            os.makedirs(outdir, exist_ok=True)
        except OSError as e:
            return _usage(f"cannot create {outdir}: {e.strerror or e}")
    try:
        "".join([args.name]).format(frame=0, n=0, what="", sop="", command="", calling="",
                                     called="", study="", series="", part="")
    except (KeyError, ValueError, IndexError) as e:
        return _usage(f"bad --name template {args.name!r}: {e}")
    dfilter = _compile_filter(args.filter) if args.filter else None
    # Export reports objects, not findings: the built-in checks (what `expert`
    # and `show` report) are left out, unless named with -p (-p dicom-expert).
    keep = [name for name in EXPORT_SKIPS if name in args.plugins]
    args.plugins = [p for p in args.plugins if p not in keep] + \
        [f"no:{name}" for name in EXPORT_SKIPS if name not in keep]
    setup = _setup(args)
    config = setup[0]
    exp = Part10Exporter(outdir, min_size=config.pref("dicom.export_minsize"), commands=args.commands,
                         meta=config.pref("dicom.export_header"), keep_incomplete=args.keep_incomplete,
                         name_template=args.name, filter=dfilter)
    result = _run(args, exp, setup=setup)
    out = sys.stdout
    if args.list:
        out.write(f"{'Packet':>7}  {'Hostname':<34}  {'Content Type':<40}  {'Size':>10}  Filename\n")
        for o in exp.objects:
            flag = "" if o.complete else "  (incomplete)"
            if o.unproven:
                flag += "  (transfer syntax not proven)"
            out.write(f"{o.frame:>7}  {o.hosts[:34]:<34}  {o.content[:40]:<40}  {o.size:>10}  "
                      f"{o.name}{flag}\n")
    else:
        written = [o for o in exp.objects if o.path]
        skipped = [o for o in exp.objects if not o.complete and not o.path]
        out.write(f"{len(written)} object(s) written to {outdir}\n")
        for o in skipped:
            print(f"dicomwire: warning: frame {o.frame}: {o.content} not exported, bytes "
                  f"are missing ({o.reason}); --keep-incomplete writes it anyway",
                  file=sys.stderr)
    return _finish(args, result, findings=any(not o.complete for o in exp.objects))


def cmd_annotate(args) -> int:
    from dicomwire.exporters.annotate import Annotator
    if not args.outdir:
        return _usage("annotate needs -o OUT.pcapng")
    try:
        out = open(args.outdir, "wb")
    except OSError as e:
        return _usage(f"cannot write {args.outdir}: {e.strerror or e}")
    match = _PDUMatchPlugin(_compile_filter(args.filter)) if args.filter else None
    with out:
        ann = Annotator(out, only_dicom=args.only_dicom, match=match)
        result = _run(args, ann, *([match] if match else []), tap=ann.tap)
    sys.stdout.write(f"{ann.written} frame(s) written to {args.outdir}, "
                     f"{ann.commented} with DICOM comments\n")
    return _finish(args, result)


def cmd_fields(args) -> int:
    from dicomwire.expert import ENGINE_FIELDS
    from dicomwire.plugins.dicom.fields import FIELDS
    _config, host = _setup(args)
    out = sys.stdout
    for f in FIELDS:
        out.write(f"F\t{f.name}\t{f.type}\t{f.description}\n")
    experts = list(ENGINE_FIELDS)
    for table in host.call("dicomwire_expert_fields"):
        experts.extend(table)
    for e in experts:
        out.write(f"E\t{e.name}\t{e.severity}\t{e.group}\t{e.summary}\n")
    return EXIT_OK


def cmd_prefs(args) -> int:
    config, _host = _setup(args)
    w = max(len(p.name) for p in config.declared)
    for p in sorted(config.declared, key=lambda p: p.name):
        value, source = config.effective[p.name]
        shown = str(value).upper() if isinstance(value, bool) else value
        sys.stdout.write(f"{p.name:<{w}}  {shown!s:<14}  {source:<10}  {p.help}\n")
    return EXIT_OK


def cmd_expert(args) -> int:
    from dicomwire.expert import SEVERITIES
    match = _PDUMatchPlugin(_compile_filter(args.filter)) if args.filter else None
    result = _run(args, *([match] if match else []))
    log = result.expert
    infos = log.at_least(args.min_severity)
    if match is not None:
        def keep(i):
            own = {"expert.name": [i.field.name], "expert.severity": [i.field.severity],
                   "expert.group": [i.field.group], "expert.message": [i.message]}
            return bool(match.frames.intersection(i.frames)) or match.filter(own)
        infos = [i for i in infos if keep(i)]
        log.infos = infos                  # the summary table counts what is shown
    out = sys.stdout
    if args.format == "json":
        json.dump({"capture": result.reader.name,
                   "summary": [dict(severity=sev, group=grp, name=name, summary=summ,
                                    count=n, frames=frames)
                               for sev, grp, name, summ, n, frames in
                               log.summary(args.min_severity)],
                   "infos": [i.as_dict() for i in infos]}, out, indent=1)
        out.write("\n")
        return _finish(args, result, findings=bool(infos))
    rows = log.summary(args.min_severity)
    if not rows:
        out.write(f"No expert infos at or above '{args.min_severity}' in {result.reader.name}\n")
    for sev in reversed(SEVERITIES):
        these = [r for r in rows if r[0] == sev]
        if not these:
            continue
        total = sum(r[4] for r in these)
        title = {"error": "Errors", "warn": "Warnings", "note": "Notes", "chat": "Chats"}[sev]
        out.write(f"\n{title} ({total})\n" + "=" * (len(title) + len(str(total)) + 3) + "\n")
        out.write(f"  {'Count':>5}  {'Group':<13}  {'Name':<30}  Summary\n")
        for _sev, grp, name, summ, n, _frames in these:
            out.write(f"  {n:>5}  {grp:<13}  {name:<30}  {summ}\n")
            mine = [i for i in infos if i.field.name == name]
            shown = mine if args.verbose else list({i.message: i for i in mine}.values())[:3]
            for i in shown:
                where = f"frame {', '.join(map(str, i.frames))}" if i.frames else "capture"
                ctx = "".join([f", stream {i.stream}" if i.stream is not None else "",
                               f", association {i.assoc}" if i.assoc is not None else ""])
                out.write(f"           {where}{ctx}: {i.message}\n")
            if not args.verbose and len(mine) > len(shown):
                out.write(f"           ... {len(mine) - len(shown)} more (--verbose lists all)\n")
    return _finish(args, result, findings=bool(infos))


def cmd_fuzz(args) -> int:
    # Imported here: the other commands never pay for the fuzzer's imports.
    from dicomwire.plugins.dicom import fuzzpeer as fuzz
    if args.list_kinds:
        for name, (_build, doc) in fuzz.KINDS.items():
            sys.stdout.write(f"{name:<24} {doc}\n")
        return EXIT_OK
    if not args.target:
        return _usage("fuzz needs HOST:PORT (or --list-kinds)")
    try:
        target = fuzz.resolve_target(args.target, args.allow_remote)
    except fuzz.TargetError as e:
        return _usage(str(e))
    if not 1 <= args.count <= 1_000_000:
        return _usage("--count must be between 1 and 1000000")
    for name in ("time_limit", "timeout", "probe_timeout", "recover"):
        if not 0 < getattr(args, name) <= 86400:
            return _usage(f"--{name.replace('_limit', '').replace('_', '-')} must be a "
                          f"positive number of seconds")
    for name in ("called_aet", "calling_aet"):
        if not 0 < len(getattr(args, name)) <= 16:
            return _usage(f"--{name.replace('_', '-')} must be 1 to 16 characters")
    kinds = None
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in fuzz.KINDS]
        if bad or not kinds:
            return _usage(f"unknown case kind {bad[0] if bad else args.kinds!r} "
                          f"(--list-kinds lists them)")
    if args.cases and not all(0 <= n < 1_000_000 for n in args.cases):
        return _usage("--case numbers run from 0 to 999999")
    if not fuzz.is_loopback(target.addr) and not args.quiet:
        print(f"dicomwire: warning: fuzzing {target}, which is not loopback (--allow-remote)",
              file=sys.stderr)
    opts = fuzz.Options(count=args.count, time_limit=args.time_limit, seed=args.seed,
                        timeout=args.timeout, probe_timeout=args.probe_timeout,
                        recover=args.recover, kinds=kinds, cases=args.cases,
                        outdir=args.outdir, save_all=args.save_all,
                        called=args.called_aet, calling=args.calling_aet)
    out = sys.stdout
    if args.replay:
        try:
            res = fuzz.replay(target, args.replay, opts)
        except (OSError, ValueError, CaptureError) as e:
            return _usage(f"cannot replay {args.replay}: {e}")
        except fuzz.PeerDown as e:
            return _usage(f"{target} does not pass the probe before the replay: {e}")
        if args.format == "json":
            json.dump(res.as_dict(), out, indent=1)
            out.write("\n")
        else:
            out.write(f"replay of {args.replay} to {target}: {len(res.sent)} chunk(s) sent\n"
                      f"peer: {'; '.join(res.reaction) or 'nothing'}\n"
                      f"probe: {res.probe.status} ({res.probe.detail})\n"
                      f"verdict: {res.verdict} ({fuzz.VERDICT_MEANING[res.verdict]})\n")
        return EXIT_FINDINGS if res.verdict in fuzz.FAILING else EXIT_OK
    if not args.quiet and sys.stderr.isatty():
        opts.progress = fuzz.progress_printer(sys.stderr)
    report = fuzz.run_campaign(target, opts)
    if report.baseline.status != "ok":
        return _usage(f"{target} does not pass the probe (association for Verification, "
                      f"C-ECHO, release): {report.baseline.detail}")
    try:
        fuzz.write_summary(report)
    except OSError as e:
        return _usage(f"cannot write to {opts.outdir}: {e.strerror or e}")
    if args.format == "json":
        json.dump(report.as_dict(), out, indent=1)
        out.write("\n")
    else:
        out.write(fuzz.format_report(report))
    return EXIT_FINDINGS if report.failing() else EXIT_OK


def _block_buffered_stdout():
    """Output to a file or pipe goes out in 64 kB blocks, whatever
    PYTHONUNBUFFERED says: a write per summary line costs more than the
    decoding (25k PDUs: about a second). A terminal stays line-buffered."""
    out = sys.stdout
    if out is not sys.__stdout__ or out is None:
        return                        # replaced (tests capture it): leave it alone
    try:
        if out.isatty():
            return
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):
        return
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False),
                                                    1 << 16),
                                  encoding=out.encoding, errors=out.errors)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _block_buffered_stdout()
    try:
        try:
            return args.func(args)
        finally:
            sys.stdout.flush()
    except CaptureError as e:
        return _usage(str(e))
    except PluginLoadError as e:
        return _usage(str(e))
    except BrokenPipeError:
        # `dicomwire ... | head`: the reader went away; that is not an error.
        try:
            sys.stdout = open("/dev/null", "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
