"""The commands that write files with the exporters: ``export`` (Part 10
objects, :mod:`dicomwire.exporters.part10`) and ``annotate`` (an annotated
pcapng, :mod:`dicomwire.exporters.annotate`). Registered as the built-in
``dicom-exporters``; each handler imports its exporter when it runs. The
DICOM options come from the pack (:func:`dicomwire.plugins.dicom.commands.dicom_options`).
"""

from __future__ import annotations

import os
import sys

from dicomwire import cli
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

    return {"export": cmd_export, "annotate": cmd_annotate}


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
