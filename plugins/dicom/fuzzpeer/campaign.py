"""A campaign: probe, run the cases in turn, stop early when the peer is
dead or hung; the report, its files and its summary."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
from collections import Counter

from dicomwire.plugins.dicom.fuzzpeer.cases import KINDS, kind_order, make_case
from dicomwire.plugins.dicom.fuzzpeer.files import write_pcapng
from dicomwire.plugins.dicom.fuzzpeer.peer import (
    FAILING,
    VERDICT_MEANING,
    VERDICTS,
    Options,
    Target,
)
from dicomwire.plugins.dicom.fuzzpeer.probe import (
    CaseResult,
    Probe,
    probe_with_retry,
    run_steps,
    verdict,
    wait_recovery,
)

# Campaign
# ===========================================================================


@dataclasses.dataclass
class Report:
    target: str
    seed: int
    options: Options
    results: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None
    baseline: Probe | None = None

    def counts(self) -> Counter:
        return Counter(r.verdict for r in self.results)

    def by_kind(self) -> dict:
        out: dict = {}
        for r in self.results:
            out.setdefault(r.kind, Counter())[r.verdict] += 1
        return out

    def failing(self) -> list:
        return [r for r in self.results if r.verdict in FAILING]

    def as_dict(self) -> dict:
        o = self.options
        return {"target": self.target, "seed": self.seed, "cases": len(self.results),
                "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "timeout": o.timeout, "probe_timeout": o.probe_timeout,
                "outdir": o.outdir,
                "counts": {v: self.counts().get(v, 0) for v in VERDICTS},
                "by_kind": {k: dict(c) for k, c in sorted(self.by_kind().items())},
                "failing": [r.as_dict() for r in self.failing()],
                "results": [r.as_dict() for r in self.results]}


def run_campaign(target: Target, opts: Options) -> Report:
    """Probe the peer, then run the cases; stop at the count, the time
    limit, or when the peer is dead or hung (later cases would only time
    out).  Failing cases are written to ``opts.outdir``."""
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1 << 32)
    kinds = list(opts.kinds or KINDS)
    report = Report(str(target), seed, opts)
    t0 = time.monotonic()
    report.baseline = probe_with_retry(target, opts)
    if report.baseline.status != "ok":
        report.stopped = f"the peer failed the first probe: {report.baseline.detail}"
        report.seconds = time.monotonic() - t0
        return report
    total = max(opts.cases) + 1 if opts.cases else opts.count
    order = kind_order(seed, kinds, total)
    indices = sorted(set(opts.cases)) if opts.cases else range(opts.count)
    for i in indices:
        if time.monotonic() - t0 > opts.time_limit:
            report.stopped = f"time limit ({opts.time_limit:g} s) reached"
            break
        case = make_case(i, order[i], seed, opts)
        res = run_steps(target, case.steps, opts,
                        f"dicomwire fuzz: case {i} ({case.kind}), seed {seed}")
        res.index, res.kind = i, case.kind
        res.probe = probe_with_retry(target, opts)
        res.verdict = verdict(res, res.probe)
        if res.verdict in ("hang", "unhealthy"):
            res.recovered = wait_recovery(target, opts)
        if res.verdict in FAILING or opts.save_all:
            res.file = save_case(report, res)
        res.exchange = None
        res.probe.exchange = None
        report.results.append(res)
        if opts.progress:
            opts.progress(res, len(report.results), len(indices))
        if res.verdict == "dead":
            report.stopped = f"the peer is dead after case {i}"
            break
        if res.verdict in ("hang", "unhealthy") and res.recovered is None:
            report.stopped = f"the peer did not recover within {opts.recover:g} s " \
                             f"after case {i} ({res.verdict})"
            break
    report.seconds = time.monotonic() - t0
    return report


def save_case(report: Report, res: CaseResult) -> str:
    os.makedirs(report.options.outdir, exist_ok=True)
    path = os.path.join(report.options.outdir, f"case-{res.index:05d}-{res.kind}.pcapng")
    res.probe.exchange.label = f"dicomwire fuzz: probe after case {res.index}: " \
                               f"{res.probe.status} ({res.probe.detail})"
    write_pcapng(path, [res.exchange, res.probe.exchange], [
        f"dicomwire fuzz {report.target} case {res.index} ({res.kind}), seed {report.seed}: "
        f"verdict {res.verdict}",
        *(f"mutation: {n}" for n in res.notes),
        f"peer: {'; '.join(res.reaction) or 'nothing'}",
        f"probe: {res.probe.status} ({res.probe.detail})",
        f"replay: dicomwire fuzz {report.target} --replay {os.path.basename(path)}",
    ])
    return path


# ===========================================================================
# Summary
# ===========================================================================


def format_report(report: Report) -> str:
    o = report.options
    lines = [f"dicomwire fuzz {report.target}: {len(report.results)} case(s) in "
             f"{report.seconds:.1f} s, seed {report.seed} "
             f"(timeouts: answer {o.timeout:g} s, probe {o.probe_timeout:g} s)"]
    if report.baseline is not None and report.baseline.status == "ok":
        lines.append(f"first probe: {report.baseline.detail} "
                     f"({report.baseline.seconds * 1000:.0f} ms)")
    if report.stopped:
        lines.append(f"stopped: {report.stopped}")
    counts = report.counts()
    lines += ["", f"  {'verdict':<10} {'cases':>5}  meaning"]
    for v in VERDICTS:
        lines.append(f"  {v:<10} {counts.get(v, 0):>5}  {VERDICT_MEANING[v]}")
    bk = report.by_kind()
    if bk:
        w = max(len(k) for k in bk)
        lines += ["", f"  {'kind':<{w}} {'cases':>5} " + " ".join(f"{v:>9}" for v in VERDICTS)]
        for k in sorted(bk):
            c = bk[k]
            lines.append(f"  {k:<{w}} {sum(c.values()):>5} "
                         + " ".join(f"{c.get(v, 0) or '.':>9}" for v in VERDICTS))
    fails = report.failing()
    if fails:
        lines += ["", f"failing cases ({len(fails)}), written to {o.outdir}:"]
        for r in fails:
            rec = "" if r.verdict not in ("hang", "unhealthy") else \
                (f", recovered after {r.recovered:.1f} s" if r.recovered is not None
                 else ", did not recover")
            lines.append(f"  case {r.index} {r.kind}: {r.verdict}{rec}; "
                         f"peer: {'; '.join(r.reaction) or 'nothing'}; "
                         f"probe: {r.probe.status} ({r.probe.detail})")
            for n in r.notes:
                lines.append(f"      {n}")
            if r.file:
                lines.append(f"      {r.file}")
    elif report.results:
        lines += ["", "no failing case"]
    resets = [r for r in report.results if r.verdict == "reset"]
    if resets:
        lines += ["", f"reset by the peer ({len(resets)}; one again with "
                      f"--seed {report.seed} --case N --save-all):"]
        for r in resets[:20]:
            lines.append(f"  case {r.index} {r.kind}: {'; '.join(r.notes) or '-'}")
        if len(resets) > 20:
            lines.append(f"  ... {len(resets) - 20} more in summary.json")
    return "\n".join(lines) + "\n"


def write_summary(report: Report) -> tuple[str, str]:
    """summary.txt and summary.json in the output folder."""
    os.makedirs(report.options.outdir, exist_ok=True)
    txt = os.path.join(report.options.outdir, "summary.txt")
    js = os.path.join(report.options.outdir, "summary.json")
    with open(txt, "w") as f:
        f.write(format_report(report))
    with open(js, "w") as f:
        json.dump(report.as_dict(), f, indent=1)
        f.write("\n")
    return txt, js


def progress_printer(stream=sys.stderr):
    def show(res: CaseResult, n: int, total: int):
        stream.write(f"\r\033[Kcase {res.index} ({n}/{total}) {res.kind}: {res.verdict}")
        stream.flush()
        if n == total:
            stream.write("\n")
    return show
