"""The DICOM pack's commands: ``show``, ``fields``, ``assoc``, ``expert`` and
``fuzz``, and the DICOM options (``--ports``, ``--no-heuristic``,
``--show-secrets``), which ``prefs`` takes too. Registered as the built-in
``dicom-commands``; the engine's CLI asks it through ``dicomwire_addcommands``
and ``dicomwire_addoption``. Each handler imports what it needs when it runs:
the tool's start-up pays for no decoder and no fuzzer.
"""

from __future__ import annotations

import argparse
import json
import sys

from dicomwire import cli
from dicomwire.addr import format_endpoint
from dicomwire.hookspecs import hookimpl


def dicom_options() -> argparse.ArgumentParser:
    """Options of the commands that decode DICOM (a parent parser); each
    flag sets a preference (``dest`` is its ``Preference.flag``)."""
    p = argparse.ArgumentParser(add_help=False)
    _add_dicom_group(p)
    return p


def _add_dicom_group(p):
    g = p.add_argument_group("DICOM options")
    g.add_argument("--ports", default=None, metavar="LIST",
                   help="TCP ports decoded as DICOM, e.g. 104,3200,50000-51000 "
                        "(preference dicom.tcp.port, default 104,11112)")
    g.add_argument("--no-heuristic", dest="heuristic", action="store_const", const=False,
                   default=None, help="do not look for A-ASSOCIATE requests on other ports "
                                      "(preference dicom.heuristic)")
    g.add_argument("--show-secrets", action="store_true",
                   help="show user identity passcodes instead of masking them")


@hookimpl
def dicomwire_addcommands(subparsers, common, capture):
    dicom = dicom_options()
    _add_show(subparsers, common, capture, dicom)
    _add_assoc_expert(subparsers, common, capture, dicom)
    _add_fuzz(subparsers)
    return {"show": cmd_show, "fields": cmd_fields, "assoc": cmd_assoc, "expert": cmd_expert,
            "fuzz": cmd_fuzz}


def _add_show(sub, common, capture, dicom):
    s = sub.add_parser("show", parents=[common, capture, dicom],
                       help="one line per DICOM PDU, or its full tree (-V)",
                       description="Each DICOM PDU as Wireshark's Info column shows it: "
                                   "frame, time, source -> destination, summary.")
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
    s.add_argument("--empty-rows", action="store_true",
                   help="with -T fields: a row for every PDU, as tshark prints (default: "
                        "PDUs where every requested field other than frame.* and "
                        "dicom.summary is empty are left out)")

    s = sub.add_parser("fields", parents=[common, dicom],
                       help="field and expert info names (like tshark -G fields)",
                       description="Every field name with its type and description, then "
                                   "every expert info name with severity and group.")


def _add_assoc_expert(sub, common, capture, dicom):
    s = sub.add_parser("assoc", parents=[common, capture, dicom],
                       help="association negotiation dumps",
                       description="Each association's A-ASSOCIATE negotiation in the "
                                   "layout of DCMTK and pynetdicom debug logs.")

    s = sub.add_parser("expert", parents=[common, capture, dicom],
                       help="diagnostics summary (like tshark -z expert)",
                       description="What went wrong and where: every expert info of the "
                                   "capture, grouped by kind, most severe first.")
    s.add_argument("--verbose", action="store_true",
                   help="list every finding with its frames, stream and association")
    s.add_argument("--min-severity", choices=("chat", "note", "warn", "error"), default="chat",
                   help="leave out findings below this severity")
    s.add_argument("-Y", dest="filter", metavar="FILTER",
                   help="only findings on PDUs that match this display filter, or whose "
                        "expert.name / expert.severity / expert.group / expert.message match")
    s.add_argument("-T", dest="format", choices=("text", "json", "jsonl"), default="text",
                   help="output format (jsonl: one JSON object per finding, per line)")
    s.add_argument("--follow", action="store_true",
                   help="print each finding as it is reported (a line each, or a JSON "
                        "object with -T jsonl), no summary: for live capture, syslog, SIEM")


def _add_fuzz(sub):
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


@hookimpl
def dicomwire_addoption(parser, command):
    if command == "prefs":                # it shows what the preference flags do
        _add_dicom_group(parser)


def cmd_show(args) -> int:
    from dicomwire.plugins.dicom import show
    return show.cmd_show(args)


class _Associations:
    """Associations as they end; their dumps are printed in association
    order at the end. In a ``--dask`` run (:mod:`dicomwire.cluster`) each
    worker renders its dumps (ids as the merge's tokens) and the client
    puts the kept ones in order (``rendered``)."""

    def __init__(self, show_secrets=False):
        self.done = []
        self.show_secrets = show_secrets
        self.rendered = None

    @hookimpl
    def dicomwire_association_end(self, assoc):
        self.done.append(assoc)

    def dumps(self):
        if self.rendered is not None:
            return self.rendered
        return [_dump(a, self.show_secrets) for a in sorted(self.done, key=lambda a: a.id)]

    def cluster_start(self, part, run_id, clock):
        self.done = []

    def cluster_result(self):
        return [(a.id, int(a.stream.id), _dump(a, self.show_secrets)) for a in self.done]

    def cluster_merge(self, values, keep, remap):
        rows = [(remap(aid), remap(text)) for part, value in enumerate(values)
                for aid, sid, text in value or () if keep(part, sid)]
        self.rendered = [text for _aid, text in sorted(rows)]


def _dump(a, show_secrets) -> str:
    from dicomwire.plugins.dicom import render_assoc
    s = a.stream
    return (f"{format_endpoint(*s.client)} -> {format_endpoint(*s.server)} (TCP stream {s.id})\n"
            + render_assoc.association_dump(a, show_secrets=show_secrets) + "\n\n")


def cmd_assoc(args) -> int:
    col = _Associations(args.show_secrets)
    result = cli.run_capture(args, col)
    for text in col.dumps():
        sys.stdout.write(text)
    return cli.finish(args, result)


def cmd_fields(args) -> int:
    from dicomwire.expert import ENGINE_FIELDS
    from dicomwire.plugins.dicom.fields import FIELDS
    _config, host = cli.setup(args)
    out = sys.stdout
    for f in FIELDS:
        out.write(f"F\t{f.name}\t{f.type}\t{f.description}\n")
    experts = list(ENGINE_FIELDS)
    for table in host.call("dicomwire_expert_fields"):
        experts.extend(table)
    for e in experts:
        out.write(f"E\t{e.name}\t{e.severity}\t{e.group}\t{e.summary}\n")
    return cli.EXIT_OK


def cmd_expert(args) -> int:
    from dicomwire.plugins.dicom import follow, show
    from dicomwire.expert import SEVERITIES
    # Findings pass -Y by the frames of matching PDUs: no ranges needed.
    match = show.PDUMatchPlugin(show.compile_filter(args.filter), record=("frames",)) \
        if args.filter else None
    if args.follow or args.format == "jsonl":
        return follow.cmd_lines(args, match)
    result = cli.run_capture(args, *([match] if match else []))
    log = result.expert
    infos = log.at_least(args.min_severity)
    if match is not None:
        infos = [i for i in infos if follow.keep(match, i)]
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
        return cli.finish(args, result, findings=bool(infos))
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
    return cli.finish(args, result, findings=bool(infos))


def cmd_fuzz(args) -> int:
    # Imported here: the other commands never pay for the fuzzer's imports.
    from dicomwire.capture import CaptureError
    from dicomwire.plugins.dicom import fuzzpeer as fuzz
    if args.list_kinds:
        for name, (_build, doc) in fuzz.KINDS.items():
            sys.stdout.write(f"{name:<24} {doc}\n")
        return cli.EXIT_OK
    if not args.target:
        return cli.usage("fuzz needs HOST:PORT (or --list-kinds)")
    try:
        target = fuzz.resolve_target(args.target, args.allow_remote)
    except fuzz.TargetError as e:
        return cli.usage(str(e))
    if not 1 <= args.count <= 1_000_000:
        return cli.usage("--count must be between 1 and 1000000")
    for name in ("time_limit", "timeout", "probe_timeout", "recover"):
        if not 0 < getattr(args, name) <= 86400:
            return cli.usage(f"--{name.replace('_limit', '').replace('_', '-')} must be a "
                          f"positive number of seconds")
    for name in ("called_aet", "calling_aet"):
        if not 0 < len(getattr(args, name)) <= 16:
            return cli.usage(f"--{name.replace('_', '-')} must be 1 to 16 characters")
    kinds = None
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in fuzz.KINDS]
        if bad or not kinds:
            return cli.usage(f"unknown case kind {bad[0] if bad else args.kinds!r} "
                          f"(--list-kinds lists them)")
    if args.cases and not all(0 <= n < 1_000_000 for n in args.cases):
        return cli.usage("--case numbers run from 0 to 999999")
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
            return cli.usage(f"cannot replay {args.replay}: {e}")
        except fuzz.PeerDown as e:
            return cli.usage(f"{target} does not pass the probe before the replay: {e}")
        if args.format == "json":
            json.dump(res.as_dict(), out, indent=1)
            out.write("\n")
        else:
            out.write(f"replay of {args.replay} to {target}: {len(res.sent)} chunk(s) sent\n"
                      f"peer: {'; '.join(res.reaction) or 'nothing'}\n"
                      f"probe: {res.probe.status} ({res.probe.detail})\n"
                      f"verdict: {res.verdict} ({fuzz.VERDICT_MEANING[res.verdict]})\n")
        return cli.EXIT_FINDINGS if res.verdict in fuzz.FAILING else cli.EXIT_OK
    if not args.quiet and sys.stderr.isatty():
        opts.progress = fuzz.progress_printer(sys.stderr)
    report = fuzz.run_campaign(target, opts)
    if report.baseline.status != "ok":
        return cli.usage(f"{target} does not pass the probe (association for Verification, "
                      f"C-ECHO, release): {report.baseline.detail}")
    try:
        fuzz.write_summary(report)
    except OSError as e:
        return cli.usage(f"cannot write to {opts.outdir}: {e.strerror or e}")
    if args.format == "json":
        json.dump(report.as_dict(), out, indent=1)
        out.write("\n")
    else:
        out.write(fuzz.format_report(report))
    return cli.EXIT_FINDINGS if report.failing() else cli.EXIT_OK


