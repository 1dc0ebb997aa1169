"""The live capture options of the command line (``-i``, ``-f``, ``-a``,
``-w``) and the pass over a stream: a live capture (:mod:`dicomwire.live`,
imported only when one is asked for) or stdin.

A streamed input is read as it comes (:class:`dicomwire.live.PipeInput`):
the command's output is flushed whenever the pass waits for input, so
``show`` lines and ``expert --follow`` findings appear as they happen, while
a capture that pours in fast is still read and written in large blocks.
"""

from __future__ import annotations

import argparse
import sys

STOPS = {"duration": float, "packets": int, "filesize": int}


def autostop(text: str) -> tuple[str, float]:
    """``-a duration:SECONDS|packets:N|filesize:KB`` (an argparse type)."""
    name, _, value = text.partition(":")
    kind = STOPS.get(name)
    try:
        v = kind(value) if kind else None
    except ValueError:
        v = None
    if v is None or v <= 0:
        raise argparse.ArgumentTypeError(
            f"expected duration:SECONDS, packets:N or filesize:KB, got {text!r}")
    return name, v


def add_options(parser) -> None:
    g = parser.add_argument_group("live capture (needs root or capture rights; runs "
                                  "dumpcap, else tcpdump: preference capture.tool)")
    g.add_argument("-i", dest="interfaces", action="append", default=[], metavar="IFACE",
                   help="capture on this interface (repeatable) instead of reading files")
    g.add_argument("-f", dest="bpf", metavar="FILTER",
                   help="capture filter, BPF syntax (e.g. 'tcp port 104')")
    g.add_argument("-a", dest="autostop", action="append", default=[], type=autostop,
                   metavar="COND", help="stop after duration:SECONDS, packets:N or "
                                        "filesize:KB, the first reached (Ctrl-C stops too)")
    g.add_argument("-w", dest="write", metavar="FILE",
                   help="keep the raw capture too: write what is read (live or stdin) to FILE")


def check(args) -> str | None:
    """What is wrong with the live options of ``args``, or None."""
    live, files = getattr(args, "interfaces", None), getattr(args, "capture", None)
    if live and files:
        return "-i captures live: give no capture files with it"
    if not live and (getattr(args, "bpf", None) or getattr(args, "autostop", None)):
        return "-f and -a go with -i (a live capture)"
    if getattr(args, "write", None) and not live and files != ["-"]:
        return "-w keeps what a live capture (-i) or stdin (-) gives: files are kept already"
    if not live and not files:
        return "no capture given: name capture files, a folder or a glob, - for stdin, " \
               "or -i IFACE"
    return None


def streamed(args, source) -> bool:
    """Is the input a stream: live (-i) or stdin?"""
    return bool(getattr(args, "interfaces", None)) or source == "-"


def run_streamed(args, source, config, host, run, tap=None):
    """The pass over a live capture or stdin: ``run(source, config, host,
    tap=tap)`` with the stream as source (see the module's docstring)."""
    from dicomwire.capsource import CaptureError
    from dicomwire.live import LiveCapture, PipeInput

    def flush():
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    if not getattr(args, "interfaces", None):
        tee = _open_write(args.write) if getattr(args, "write", None) else None
        try:
            return run(PipeInput(sys.stdin.fileno(), "<stdin>", tee=tee, before_read=flush),
                       config, host, tap=tap)
        finally:
            if tee is not None:
                tee.close()
    retire = config.pref("tcp.retire_after", 60)
    if retire and config.retire_after is None:
        config.retire_after = retire        # days of monitoring: bounded memory
    cap = LiveCapture(args.interfaces, args.bpf, args.autostop, args.write,
                      tool=config.pref("capture.tool", "auto"), before_read=flush)
    if not args.quiet:
        print(f"dicomwire: capturing on {cap.label} with {cap.kind}"
              f"{' (filter: ' + args.bpf + ')' if args.bpf else ''}; Ctrl-C stops",
              file=sys.stderr)
    with cap:
        try:
            result = run(cap.stream, config, host, tap=tap)
        except CaptureError:
            problem = cap.failure()
            if problem:
                raise CaptureError(problem) from None
            if cap.interrupted:
                raise KeyboardInterrupt from None    # stopped before it wrote anything
            raise
    cap.report(result)
    return result


def _open_write(path):
    from dicomwire.capsource import CaptureError
    try:
        return open(path, "wb", buffering=0)
    except OSError as e:
        raise CaptureError(f"cannot write {path}: {e.strerror or e}") from None
