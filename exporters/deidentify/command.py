"""``dicomwire deidentify CAPTURE -o OUT``: the first pass, the rewrite, the
self-check and the summary (the parser is in :mod:`dicomwire.exporters.commands`)."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from dicomwire import cli
from dicomwire.exporters.deidentify import Deidentifier, check
from dicomwire.exporters.deidentify.dates import derived_shift
from dicomwire.capture import CaptureError
from dicomwire.exporters.deidentify.plan import (MALFORMED_DATES, MODIFIED_DATES, Profile,
                                                 option_problem)
from dicomwire.exporters.deidentify.selfcheck import ParallelCheck, check_file
from dicomwire.exporters.deidentify.values import Mapper

EXIT_LEAK = 1


def _writer(out, path, interfaces):
    from dicomwire.pcapng_writer import DEFAULT_SNAPLEN, PcapngWriter, PcapWriter
    if path.endswith(".pcap"):
        links = {i.linktype for i in interfaces}
        if len(links) > 1:
            raise ValueError(f"the capture has {len(links)} link types; pcap holds one: "
                             f"write .pcapng")
        w = PcapWriter(out)
        itfs = interfaces[:1]
    else:
        w = PcapngWriter(out, application="dicomwire deidentify")
        itfs = interfaces
    for i in itfs:
        w.add_interface(i.linktype, i.snaplen or DEFAULT_SNAPLEN, None)
    return w


def cmd_deidentify(args) -> int:
    if not args.outdir:
        return cli.usage("deidentify needs -o OUT.pcapng (or OUT.pcap)")
    problem = option_problem(args.profile_options, args.date_shift)
    if problem:
        return cli.usage(problem)
    if args.capture != "-":
        if _same_file(args.outdir, args.capture):
            return cli.usage(f"the output {args.outdir} is the input (the same file, or a link "
                             f"to it): it would be destroyed; write elsewhere")
        return _deidentify(args)
    # Two passes read the capture twice: stdin is kept in a file first, beside
    # the output (room for the output is room for it), removed at the end.
    try:
        path = _spool_stdin(args.outdir)
    except OSError as e:
        return cli.usage(f"cannot keep stdin beside {args.outdir}: {e.strerror or e}")
    if not args.quiet:
        sys.stderr.write(f"stdin kept in {path} for the two passes (removed at the end)\n")
    args.capture, args.spooled = path, path
    try:
        return _deidentify(args)
    except CaptureError as e:                   # named as the user named it: -
        return cli.usage(str(e).replace(path, "- (stdin)"))
    finally:
        os.unlink(path)


def _same_file(out: str, capture: str) -> bool:
    """``out`` names the input: the same path, or a symbolic or hard link
    to it (the same inode)."""
    if os.path.abspath(out) == os.path.abspath(capture):
        return True
    try:
        return os.path.samefile(out, capture)
    except OSError:                      # one of them does not exist (yet)
        return False


def _partial(out: str) -> str:
    """Where the output is written until it is checked: beside it, hidden
    (a folder read as a capture skips it)."""
    head, tail = os.path.split(os.path.abspath(out))
    return os.path.join(head, f".{tail}.partial")


def _settle(partial: str, out: str, failed: bool) -> str:
    """The checked output renamed to ``out``; one that failed the
    self-check to ``out.failed`` instead, and an older ``out`` removed: no
    file under the requested name may look ready to send. The name used."""
    name = out + ".failed" if failed else out
    os.replace(partial, name)
    if failed and os.path.lexists(out):
        os.unlink(out)
    return name


def _spool_stdin(out: str) -> str:
    import shutil
    import tempfile
    fd, path = tempfile.mkstemp(prefix=".dicomwire-stdin-", suffix=".capture",
                                dir=os.path.dirname(os.path.abspath(out)))
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _deidentify(args) -> int:
    key = args.key.encode() if args.key else None
    mapper = Mapper(key)
    options = list(args.profile_options or ())
    if args.date_shift is not None and MODIFIED_DATES not in options:
        options.append(MODIFIED_DATES)
    shift = args.date_shift if args.date_shift is not None else derived_shift(mapper.key)
    profile = Profile(options, blank_pixels=args.blank_pixels, hosts=args.hosts,
                      date_shift=shift)
    t0 = time.perf_counter()
    prepared = cli.setup(args)
    config = prepared[0]
    plan, sig = Deidentifier(profile, mapper), check.Signature()
    result = cli.run_capture(args, plan, sig, prepared=prepared)
    t1 = time.perf_counter()
    from dicomwire.rewrite import Rewriter
    rewriter = Rewriter(result.streams, plan.edits)
    headers = tap = None
    if args.hosts:
        from dicomwire.exporters.deidentify.hosts import header_mapper
        headers, tap = header_mapper(mapper.key)
    partial = _partial(args.outdir)
    try:
        return _write_check(args, result, plan, sig, rewriter, config, partial, headers,
                            tap, (t0, t1))
    finally:
        if os.path.lexists(partial):             # an error or an interruption: not kept
            os.unlink(partial)


def _write_check(args, result, plan, sig, rewriter, config, partial, headers, tap, times):
    """The rewrite into ``partial``, checked, then settled under its name."""
    from dicomwire.capture import open_capture
    from dicomwire.rewrite import rewrite_capture
    t0, t1 = times
    planned = check.Planned(plan.edits, plan.lengths)
    originals, also_kept = check.searchable(plan.tally.originals, plan.tally.kept)
    try:
        with open(partial, "wb", buffering=1 << 20) as out:
            tee = ParallelCheck(out, config, originals, planned, tap)
            writer = _writer(tee, args.outdir, result.reader.interfaces)
            reader = open_capture(args.capture)
            try:
                frames = rewrite_capture(reader, rewriter, writer,
                                         comments=args.keep_comments, headers=headers)
            finally:
                reader.close()
            t2 = time.perf_counter()
            verdict = tee.result()
    except (OSError, ValueError) as e:
        return cli.usage(f"cannot write {args.outdir}: {getattr(e, 'strerror', None) or e}")
    if verdict is None:                         # no second process: check the file now
        verdict = check_file(partial, config, originals, planned, tap)
    t3 = time.perf_counter()
    before = sig.digest()
    verdict["findings"], verdict["findings_blanked"] = check.compare_findings(
        Counter(i.field.name for i in result.expert.infos), verdict["findings"],
        blanked=bool(plan.blank_counts))
    verdict["missed"] = check.unapplied(result.streams, plan.edits, plan.where)
    verdict.update(pdus=check.compare_pdus(before, verdict["pdus"]),
                   leaks=verdict["hits"], searched=len(originals), also_kept=also_kept,
                   pdu_count=sum(n for n, _h in before.values()), headers=headers)
    if headers is not None:
        from dicomwire.exporters.deidentify.hosts import leaks
        verdict["address_leaks"] = leaks(headers, verdict["addresses"])
    # Findings that differ: the rewrite changed what the traffic says (issue 17).
    # Nothing read as DICOM while streams with payload were copied: nothing
    # was de-identified, which is no success.
    unread = not plan.edits and _copied(result, plan)
    failed = verdict["leaks"] or verdict["pdus"] or verdict["findings"] or \
        verdict["missed"] or verdict.get("address_leaks") or unread
    requested = args.outdir
    try:
        args.outdir = _settle(partial, requested, bool(failed))
    except OSError as e:
        return cli.usage(f"cannot write {requested}: {e.strerror or e}")
    _summary(args, result, plan, rewriter, frames, verdict, (t1 - t0, t2 - t1, t3 - t2))
    if failed:
        sys.stdout.write(f"self-check failed: the output is kept as {args.outdir} for "
                         f"inspection, not as {requested}: do not send it\n")
    spooled = getattr(args, "spooled", None)
    if spooled:                                 # warnings name the capture as given: -
        result.warnings[:] = [w.replace(spooled, "- (stdin)") for w in result.warnings]
    status = cli.finish(args, result)
    return EXIT_LEAK if failed else status


def _summary(args, result, plan, rewriter, frames, verdict, times):
    out = sys.stdout
    dicom = {k[0] for k in plan.edits}
    other = sum(1 for s in result.streams if s.id not in dicom and s.id not in plan.tls_streams)
    out.write(f"{frames} frame(s) written to {args.outdir}, {rewriter.rewritten} rewritten; "
              f"{len(dicom)} DICOM stream(s) de-identified")
    if plan.tls_streams:
        out.write(f", {len(plan.tls_streams)} TLS stream(s) copied as they are (encrypted: "
                  f"nothing readable to replace)")
    if other:
        out.write(f", {other} other TCP stream(s) copied as they are")
    copied = _copied(result, plan)
    if copied:
        out.write(f"\nwarning: {len(copied)} TCP stream(s) with payload copied as they are, "
                  f"not read as DICOM: they may hold patient data (DICOM on a port not "
                  f"recognised: name it with --ports)")
        for s, n in copied[:10]:
            out.write(f"\n  stream {s.id}: port {s.client[1]} -> {s.server[1]}, {n} bytes")
        if len(copied) > 10:
            out.write(f"\n  ... {len(copied) - 10} more")
    out.write(f"\nprofile: PS3.15 E.1-1 Basic Application Level Confidentiality Profile"
              f"{''.join(' + ' + o for o in plan.profile.options)}"
              f"{', pixel data blanked' if plan.profile.blank_pixels else ''}"
              f"{', hosts pseudonymised (AE titles, IP and MAC addresses)' if plan.profile.hosts else ''}\n")
    counts = dict(plan.tally.counts)
    malformed = counts.pop(MALFORMED_DATES, 0)
    if counts:
        out.write("replaced: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                  + "\n")
    if plan.profile.date_shift is not None:
        out.write("dates shifted by a whole number of weeks (weekdays kept), times of day "
                  "kept" if args.date_shift is None else
                  f"dates shifted by {args.date_shift} day(s), times of day kept")
        out.write(" (Retain Longitudinal Temporal Information with Modified Dates)\n")
    if malformed:
        out.write(f"blanked: {malformed} x date or time not valid in its VR\n")
    out.write(f"UIDs mapped: {len(plan.mapper.uids)}\n")
    if plan.lengths.laid:
        out.write(f"deflated data sets: {plan.lengths.laid} deflated again, PDV and PDU "
                  f"lengths rebuilt (streams moved by {plan.lengths.moved} byte(s) in all)\n")
    for why, n in sorted(plan.blank_counts.items()):
        out.write(f"blanked: {n} x {why}\n")
    frags = rewriter.frags
    if frags.datagrams:
        out.write(f"IP fragments: {frags.datagrams} datagram(s) rewritten whole and laid back "
                  f"into their fragments\n")
    for why, n in sorted(frags.blanked.items()):
        out.write(f"blanked: {n} x IP fragment of a DICOM stream, payload zeroed: {why}\n")
    _burned_in(out, plan)
    _verdict(out, verdict)
    if copied and not dicom:
        out.write("FAILED: no stream was read as DICOM: nothing was de-identified, and the "
                  "self-check had nothing to look for\n")
    if verdict["headers"] is not None:
        from dicomwire.exporters.deidentify.hosts import write_summary
        write_summary(out, verdict["headers"], verdict["address_leaks"])
    if args.timing:
        out.write("time: first pass %.2f s, rewrite (checked beside it) %.2f s, "
                  "rest of the self-check %.2f s\n" % times)


def _copied(result, plan) -> list:
    """``[(stream, payload bytes)]`` of the TCP streams with payload that
    were neither de-identified nor TLS: copied as they are, unread."""
    dicom = {k[0] for k in plan.edits}
    return [(s, s.dirs[0].bytes + s.dirs[1].bytes) for s in result.streams
            if s.id not in dicom and s.id not in plan.tls_streams
            and s.dirs[0].bytes + s.dirs[1].bytes]


def _burned_in(out, plan):
    """SOP classes known to carry burned-in text, or data sets that say so
    (:mod:`dicomwire.specs.dicom.burned_in`)."""
    if not plan.burned_in:
        return
    from dicomwire.specs.dicom.uids import UID_NAMES
    names: Counter = Counter()
    for uid, n in plan.burned_in.items():
        names[UID_NAMES.get(uid, uid or "SOP Class not named")] += n
    listed = ", ".join(f"{name} {n}" for name, n in sorted(names.items()))
    total = sum(names.values())
    if plan.profile.blank_pixels:
        out.write(f"burned-in text likely (pixel data blanked): {listed}\n")
    else:
        out.write(f"warning: {total} data set(s) of SOP classes known to carry burned-in "
                  f"text, or marked Burned In Annotation YES: {listed}; their pixel data may "
                  f"show patient names and is kept: --blank-pixels zeroes it\n")


def _verdict(out, v):
    pdus = ("identical" if not v["pdus"] else "DIFFERENT: " + "; ".join(v["pdus"][:5]))
    findings = ("DIFFER: " + "; ".join(v["findings"]) if v["findings"] else
                "identical" + (" but where bytes were blanked: " + "; ".join(
                    v["findings_blanked"]) if v["findings_blanked"] else ""))
    out.write(f"self-check: PDU sequence {pdus} ({v['pdu_count']} PDUs); findings "
              f"{findings}\n")
    if v["pdus"] or v["findings"]:
        out.write("self-check FAILED: the output does not read as the input did\n")
    if v["missed"]:
        out.write(f"self-check FAILED: planned replacements not written (a frame the "
                  f"rewrite could not place keeps the original bytes):\n")
        for m in v["missed"]:
            out.write(f"  {m}\n")
    if v["leaks"]:
        out.write(f"self-check FAILED: {len(v['leaks'])} original value(s) found in the "
                  f"output:\n")
        for name, value, at in v["leaks"]:
            where = f"at byte {at}" if isinstance(at, int) else f"in {at}"
            out.write(f"  {name}: {value.decode('latin-1')!r} {where}\n")
    else:
        out.write(f"self-check: none of {v['searched']} original values found in the output"
                  + (f" ({v['also_kept']} more also appear in attributes the profile keeps "
                     f"or as new values: not searched)" if v["also_kept"] else "") + "\n")
