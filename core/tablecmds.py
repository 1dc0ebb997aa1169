"""The engine's own commands, which know no protocol: ``prefs`` (every
preference, its value and where it comes from) and ``streams`` (a TCP-level
table, like ``tshark -z conv,tcp``). :mod:`dicomwire.cli` adds them to the
parser beside the packs' commands."""

from __future__ import annotations

import json
import sys

from dicomwire.addr import format_endpoint
from dicomwire.pipeline import Result


def engine_commands(sub, common, capture) -> dict:
    sub.add_parser("prefs", parents=[common],
                   help="effective preferences and where each comes from",
                   description="Every preference, its value and its source: default, "
                               "config file (dicomwire.toml or [tool.dicomwire] in "
                               "pyproject.toml), -o NAME:VALUE, or a flag.")
    s = sub.add_parser("streams", parents=[common, capture],
                       help="TCP streams with fault counts (like tshark -z conv,tcp)",
                       description="One line per TCP stream: end points, frames and "
                                   "payload bytes each way, gaps, retransmissions, "
                                   "conflicting overlaps, start, duration and how it closed.")
    s.add_argument("-T", dest="format", choices=("text", "json"), default="text",
                   help="output format")
    return {"prefs": cmd_prefs, "streams": cmd_streams}


def cmd_prefs(args) -> int:
    from dicomwire.cli import EXIT_OK, setup
    config, _host = setup(args)
    w = max(len(p.name) for p in config.declared)
    for p in sorted(config.declared, key=lambda p: p.name):
        value, source = config.effective[p.name]
        shown = str(value).upper() if isinstance(value, bool) else value
        sys.stdout.write(f"{p.name:<{w}}  {shown!s:<14}  {source:<10}  {p.help}\n")
    return EXIT_OK


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
            "tls": s.tls.describe() if s.tls else None,
        })
    return rows


def cmd_streams(args) -> int:
    # A TCP-level table: protocol dissectors have nothing to add to it, so
    # they stay off and the pass runs at reassembly speed; only TLS
    # handshakes are read (which streams are TLS, version, suite).
    from dicomwire.cli import finish, run_capture, setup
    prepared = setup(args)
    prepared[0].dissect = "tls"
    result = run_capture(args, prepared=prepared)
    rows = stream_rows(result)
    out = sys.stdout
    retired = result.retired if result.retired is not None and result.retired.streams else None
    if args.format == "json":       # (a live run: the streams closed earlier, as totals)
        json.dump({"capture": result.reader.name, "format": result.reader.format,
                   "frames": result.frames, "streams": rows,
                   **({"retired": retired.as_dict()} if retired else {})}, out, indent=1)
        out.write("\n")
        return finish(args, result)
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
                  f" {r['out_of_order']:>5} {r['conflicts']:>8}  {r['close']}"
                  + (f"  {r['tls']}" if r["tls"] else "") + "\n")
    if any(not r["client_known"] for r in rows):
        out.write("~> the capture began after the handshake: client guessed from the ports\n")
    if retired:
        out.write(f"{retired}\n")
    return finish(args, result)
