"""The commands that write files with the exporters: ``export`` (Part 10
objects, :mod:`dicomwire.exporters.part10`), ``annotate`` (an annotated
pcapng, :mod:`dicomwire.exporters.annotate`) and ``deidentify`` (the
capture without patient data, :mod:`dicomwire.exporters.deidentify`). Registered as the built-in
``dicom-exporters``; each handler imports its exporter when it runs. The
DICOM options come from the pack (:func:`dicomwire.plugins.dicom.commands.dicom_options`).
"""

from __future__ import annotations

import os
import sys

from dicomwire import cli, cluster
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.commands import dicom_options

#: Export reports objects, not findings: these built-in checks (what
#: `expert` and `show` report) are left out, unless named with -p.
EXPORT_SKIPS = ("dicom-expert", "dicom-qr", "dicom-nservice", "dicom-expert-ts")


@hookimpl
def dicomwire_addcommands(subparsers, common, capture):
    sub, dicom = subparsers, dicom_options()
    s = sub.add_parser(
        "export", parents=[common, capture, dicom], help="DICOM objects as Part 10 files",
        description="Write every DICOM object that crossed the wire as a Part 10 file: the "
                    "data set exactly as sent, with a File Meta Information header. "
                    "Exported objects serve troubleshooting only and must not be used for "
                    "clinical purposes (captures may also hold patient data: handle them "
                    "accordingly).")
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

    s = sub.add_parser(
        "annotate", parents=[common, capture, dicom], help="write a pcapng with DICOM packet comments",
        description="Copy the capture to a pcapng file whose DICOM frames carry packet "
                    "comments: the PDU summary, the association, every expert info. "
                    "Wireshark and tshark show them (frame.comment).")
    s.add_argument("--output", dest="outdir", metavar="OUT.pcapng",
                   help="the pcapng to write (-o OUT.pcapng works too)")
    s.add_argument("--only-dicom", action="store_true",
                   help="keep only the frames of DICOM streams")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="keep only the frames of the DICOM PDUs that match this display "
                        "filter (as tshark -Y with -w)")

    _add_report(sub, common, dicom)
    _add_deidentify(sub, common, dicom)
    return {"export": cmd_export, "annotate": cmd_annotate, "report": cmd_report,
            "deidentify": cmd_deidentify}


def _add_report(sub, common, dicom):
    s = sub.add_parser(
        "report", parents=[common, dicom], help="one self-contained HTML page of the capture",
        description="Write one HTML page that shows the capture as DICOM engineers draw "
                    "it: summary, timeline of the associations, a ladder diagram per "
                    "association (frame numbers on every arrow), negotiation tables, "
                    "response time, throughput and idle charts, C-FIND queries, and the "
                    "findings linked to their place in the ladder. Everything is inline: "
                    "the page fetches nothing (works offline, attachable to a ticket). "
                    "No patient data unless --phi.")
    s.add_argument("capture", help="capture file, or - for stdin")
    cluster.add_option(s)                  # refused with a clear error (cluster.check)
    s.add_argument("--output", dest="outdir", metavar="FILE",
                   help="the HTML file to write (-o FILE works too)")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="only the associations with a DICOM PDU that matches this display "
                        "filter (their matching arrows marked)")
    s.add_argument("--phi", action="store_true",
                   help="add patient identifiers (C-FIND key values, patient and study keys "
                        "of stored objects, SOP Instance UIDs); without it the page names "
                        "AE titles, SOP classes, sizes and statuses only")


def _add_deidentify(sub, common, dicom):
    from dicomwire.specs.dicom.deid_table import EDITION, OPTIONS
    s = sub.add_parser(
        "deidentify", parents=[common, dicom],
        help="copy the capture without patient data (PS3.15 Annex E)",
        description="Copy the capture with every DICOM data set and command set "
                    "de-identified per the PS3.15 Annex E Basic Application Level "
                    f"Confidentiality Profile (Table E.1-1, {EDITION}): UIDs replaced "
                    "consistently, names and IDs by pseudonyms, dates by dummies (or shifted: "
                    "--date-shift), private "
                    "attributes blanked, values kept at their length so the traffic keeps "
                    "its PDUs and TCP sequence numbers. Then the output is decoded again and "
                    "searched for every original value: exit status 1 if one is found.")
    s.add_argument("capture", help="capture file, or - for stdin (kept in a temporary file "
                                   "beside the output: the capture is read twice)")
    cluster.add_option(s)                  # refused with a clear error (cluster.check)
    s.add_argument("--output", dest="outdir", metavar="OUT.pcapng",
                   help="the capture to write: pcapng, or pcap when it ends in .pcap "
                        "(-o OUT works too)")
    s.add_argument("--key", metavar="SECRET",
                   help="secret for the mapping of UIDs and pseudonyms: the same key maps "
                        "the same values the same way across captures (default: a random "
                        "key per run)")
    s.add_argument("--option", dest="profile_options", action="append",
                   choices=sorted(OPTIONS), metavar="NAME",
                   help="a profile option of Table E.1-1 (repeatable): "
                        + ", ".join(sorted(OPTIONS)))
    s.add_argument("--date-shift", type=int, metavar="DAYS",
                   help="move dates by DAYS (negative: back) instead of replacing them, "
                        "times of day kept: the retain-long-modified-dates option with "
                        "this offset (that option alone: a whole number of weeks, 1 to "
                        "10 years back, from --key, else random per run)")
    s.add_argument("--blank-pixels", action="store_true",
                   help="zero the pixel data too (burned-in annotations); the summary "
                        "names the SOP classes known to carry burned-in text either way")
    s.add_argument("--hosts", action="store_true",
                   help="pseudonymise the hosts as well: AE titles (A-ASSOCIATE, Move "
                        "Destination, Move Originator) and the IP and MAC addresses of every "
                        "frame's headers, by class (loopback, private, link-local stay so), "
                        "consistently; other protocols' payloads are not rewritten")
    s.add_argument("--keep-comments", action="store_true",
                   help="keep the capture's packet comments (dropped by default: they may "
                        "name patients)")
    s.add_argument("--timing", action="store_true", help="print the time of each step")


def cmd_deidentify(args) -> int:
    from dicomwire.exporters.deidentify.command import cmd_deidentify as run
    return run(args)


def cmd_export(args) -> int:
    from dicomwire.exporters.part10 import Part10Exporter
    from dicomwire.plugins.dicom import show
    if not args.list and not args.outdir:
        return cli.usage("export needs -o DIR (or --list)")
    outdir = None if args.list else args.outdir
    if outdir:
        try:
            os.makedirs(outdir, exist_ok=True)
        except OSError as e:
            return cli.usage(f"cannot create {outdir}: {e.strerror or e}")
    try:
        "".join([args.name]).format(frame=0, n=0, what="", sop="", command="", calling="",
                                     called="", study="", series="", part="")
    except (KeyError, ValueError, IndexError) as e:
        return cli.usage(f"bad --name template {args.name!r}: {e}")
    dfilter = show.compile_filter(args.filter) if args.filter else None
    # Export reports objects, not findings: the built-in checks (what `expert`
    # and `show` report) are left out, unless named with -p (-p dicom-expert).
    keep = [name for name in EXPORT_SKIPS if name in args.plugins]
    args.plugins = [p for p in args.plugins if p not in keep] + \
        [f"no:{name}" for name in EXPORT_SKIPS if name not in keep]
    prepared = cli.setup(args)
    config = prepared[0]
    exp = Part10Exporter(outdir, min_size=config.pref("dicom.export_minsize"),
                         commands=args.commands, meta=config.pref("dicom.export_header"),
                         keep_incomplete=args.keep_incomplete, name_template=args.name,
                         filter=dfilter)
    result = cli.run_capture(args, exp, prepared=prepared)
    out = sys.stdout
    if args.list:
        out.write(f"{'Packet':>7}  {'Hostname':<34}  {'Content Type':<40}  {'Size':>10}  "
                  f"Filename\n")
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
    return cli.finish(args, result, findings=any(not o.complete for o in exp.objects))


def cmd_annotate(args) -> int:
    from dicomwire.exporters.annotate import Annotator
    from dicomwire.plugins.dicom import show
    if not args.outdir:
        return cli.usage("annotate needs -o OUT.pcapng")
    try:
        out = open(args.outdir, "wb")
    except OSError as e:
        return cli.usage(f"cannot write {args.outdir}: {e.strerror or e}")
    match = show.PDUMatchPlugin(show.compile_filter(args.filter)) if args.filter else None
    with out:
        ann = Annotator(out, only_dicom=args.only_dicom, match=match)
        result = cli.run_capture(args, ann, *([match] if match else []), tap=ann.tap)
    sys.stdout.write(f"{ann.written} frame(s) written to {args.outdir}, "
                     f"{ann.commented} with DICOM comments\n")
    return cli.finish(args, result)


def cmd_report(args) -> int:
    from dicomwire.exporters.report import ReportCollector, write_report
    from dicomwire.plugins.dicom import show
    if not args.outdir:
        return cli.usage("report needs -o FILE.html")
    match = show.PDUMatchPlugin(show.compile_filter(args.filter)) if args.filter else None
    try:
        out = open(args.outdir, "wb")
    except OSError as e:
        return cli.usage(f"cannot write {args.outdir}: {e.strerror or e}")
    with out:
        col = ReportCollector(phi=args.phi, match=match, filter_text=args.filter)
        result = cli.run_capture(args, col, *([match] if match else []))
        if col.model is None:                  # the pass stopped before its end
            col.dicomwire_capture_end(result)
        size = write_report(col.model, out)
    s = col.model["summary"]
    sys.stdout.write(f"report of {s['associations']} association(s) and "
                     f"{sum(s['findings'].values())} finding(s) written to {args.outdir} "
                     f"({size:,} bytes)\n")
    return cli.finish(args, result)
