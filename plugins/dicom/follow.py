"""``expert --follow`` and ``expert -T jsonl``: findings one per line, for a
terminal, syslog or a SIEM. With ``--follow`` each is printed as it is
reported (during a live capture: as it happens; the command line flushes
its output whenever the pass waits for input); without, after the pass.

``-Y`` keeps a finding whose own fields match (``expert.name``, ...) or that
points at a frame of a matching PDU: with ``--follow`` the findings wait for
the end of the PDU being decoded (its match is known then), or of the pass.
"""

from __future__ import annotations

import json

from dicomwire.expert import SEVERITIES
from dicomwire.hookspecs import hookimpl


def keep(match, info) -> bool:
    """Does ``info`` pass ``-Y`` (``match``: a PDUMatch, or None)?"""
    if match is None:
        return True
    own = {"expert.name": [info.field.name], "expert.severity": [info.field.severity],
           "expert.group": [info.field.group], "expert.message": [info.message]}
    return bool(match.frames.intersection(info.frames)) or match.filter(own)


def line(info, jsonl: bool) -> str:
    if jsonl:
        return json.dumps(info.as_dict()) + "\n"
    where = f"frame {', '.join(map(str, info.frames))}" if info.frames else "capture"
    ctx = "".join([f", stream {info.stream}" if info.stream is not None else "",
                   f", association {info.assoc}" if info.assoc is not None else ""])
    return f"{info.field.severity:<5}  {info.field.name}  {where}{ctx}: {info.message}\n"


class FollowFindings:
    """Prints each finding of the run's expert log as it is reported (at
    or above ``min_severity``, passing ``match``)."""

    def __init__(self, host, out, min_severity="chat", match=None, jsonl=False):
        self.host, self.out, self.match, self.jsonl = host, out, match, jsonl
        self.rank = SEVERITIES.index(min_severity)
        self.pending = []
        self.printed = 0

    @hookimpl
    def dicomwire_capture_start(self):
        self.host.expert.listeners.append(self.reported)

    def reported(self, info):
        if SEVERITIES.index(info.field.severity) < self.rank:
            return
        if self.match is None:
            self._print(info)
        else:
            self.pending.append(info)

    @hookimpl(trylast=True)             # after the PDUMatch decided on this PDU
    def dicomwire_pdu(self):
        self.flush()

    @hookimpl(trylast=True)
    def dicomwire_capture_end(self):
        self.flush()

    def flush(self):
        pending, self.pending = self.pending, []
        for info in pending:
            if keep(self.match, info):
                self._print(info)

    def _print(self, info):
        self.out.write(line(info, self.jsonl))
        self.printed += 1


def cmd_lines(args, match) -> int:
    """expert --follow, or -T jsonl: findings one per line."""
    import sys

    from dicomwire import cli
    prepared = cli.setup(args)
    jsonl = args.format == "jsonl"
    if args.follow:
        follower = FollowFindings(prepared[1], sys.stdout, args.min_severity, match, jsonl)
        result = cli.run_capture(args, follower, *([match] if match else []), prepared=prepared)
        return cli.finish(args, result, findings=bool(follower.printed))
    result = cli.run_capture(args, *([match] if match else []), prepared=prepared)
    infos = [i for i in result.expert.at_least(args.min_severity) if keep(match, i)]
    for i in infos:
        sys.stdout.write(line(i, jsonl))
    return cli.finish(args, result, findings=bool(infos))
