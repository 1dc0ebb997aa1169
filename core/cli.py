"""The ``dicomwire`` command line: a host for the commands of the packs.

The engine builds the parser and the options every command shares, asks
every plugin for its commands (``dicomwire_addcommands``) and for options on
the others' commands (``dicomwire_addoption``), as pytest asks its plugins
with ``pytest_addoption``, then runs the chosen command's handler. The
commands that know no protocol, ``prefs`` and ``streams``, are in
:mod:`dicomwire.tablecmds`. The
helpers a handler needs are here: :func:`setup` (config, plugin host,
preferences applied), :func:`run_capture` (the one pass), :func:`finish`
(warnings, exit status), :func:`usage`.

Exit status: 0 ok; 1 when ``--fail-on`` asked for it and the input had
problems; 2 usage errors, including a capture that cannot be opened or is not
a capture at all.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import sys

from dicomwire import __version__, cluster, liveopts, tablecmds
from dicomwire.capture import CaptureError
from dicomwire.config import Config
from dicomwire.host import PluginHost, PluginLoadError
from dicomwire.gctune import end_gc, tune_gc
from dicomwire.outbox import OutputLost
from dicomwire.pipeline import Progress, Result, make_host, run

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

DESCRIPTION = ("Decode, diagnose and export DICOM network traffic from packet captures "
               "(pcap, pcapng, gzip-compressed; '-' reads stdin).")

_PREF = re.compile(r"^[a-z][a-z0-9_.-]*:")


class _OptionOrOutput(argparse.Action):
    """-o NAME:VALUE sets a preference (tshark's -o); for commands that write
    (those with an ``outdir``), any other -o value is the output, as
    `dicomwire export CAPTURE -o DIR` has it. A path with a colon
    (``-o out:1.pcap``) reads as NAME:VALUE here; :func:`_output_option`
    takes it back as the output when NAME is no preference."""

    def __call__(self, parser, namespace, value, option_string=None):
        if _PREF.match(value) or not hasattr(namespace, "outdir"):
            namespace.options = (namespace.options or []) + [value]
        else:
            namespace.outdir = value


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, with the same meaning everywhere (a
    parent parser: ``add_parser(NAME, parents=[common, ...])``)."""
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


def capture_options() -> argparse.ArgumentParser:
    """The capture a command reads (a parent parser, as :func:`common_options`,
    given to ``dicomwire_addcommands`` as ``capture``): files, a folder or a
    glob read as one capture in time order, or ``-`` for stdin."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("capture", nargs="*", metavar="CAPTURE",
                   help="capture file, or several (a ring buffer's files, a folder, a glob: "
                        "one capture in time order), or - for stdin")
    liveopts.add_options(p)
    cluster.add_option(p)
    return p


def _plugin_args(argv) -> list[str]:
    """The -p values of a command line, before it is parsed: plugins loaded
    with -p may add commands."""
    out = []
    for i, tok in enumerate(argv):
        if tok == "-p" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif tok.startswith("-p") and len(tok) > 2 and not tok.startswith("--"):
            out.append(tok[2:])
    return out


def command_host(plugins=()) -> PluginHost:
    """The plugins that contribute commands: every built-in and entry-point
    plugin, ``-p no:NAME`` notwithstanding (blocking takes a plugin's hooks
    out of the pass, not its commands), and the ``-p`` modules that import;
    one that does not is reported when the command runs."""
    host = PluginHost()
    for name in plugins:
        if name.startswith("no:") or host.pm.has_plugin(name):
            continue
        try:
            host.register(importlib.import_module(name), name)
        except Exception:
            pass
    return host


def build_parser(plugins=()) -> argparse.ArgumentParser:
    """The parser of every command; ``plugins``: the -p values, whose
    modules may add commands. Each subparser's default ``handler`` is the
    function that runs its command."""
    common, capture = common_options(), capture_options()
    parser = argparse.ArgumentParser(prog="dicomwire", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"dicomwire {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    host = command_host(plugins)
    handlers = {}
    kwargs = {"subparsers": sub, "common": common, "capture": capture}
    for impl in host.pm.hook.dicomwire_addcommands.get_hookimpls():   # registration order
        try:
            handlers.update(impl.function(*(kwargs[a] for a in impl.argnames)) or {})
        except Exception as e:          # a broken plugin loses its commands, not the tool
            host.failed(impl.plugin_name, "dicomwire_addcommands", e)
    handlers.update(tablecmds.engine_commands(sub, common, capture))
    for name, command in sub.choices.items():
        if name in handlers:
            command.set_defaults(handler=handlers[name])
        host.call("dicomwire_addoption", parser=command, command=name)
    parser.set_defaults(command_host=host)
    return parser


def _output_option(args):
    """For a command that writes and was given no output: a ``-o NAME:VALUE``
    whose NAME is no preference is the output (a path with a colon, such as
    ``out:1.pcap``). Two such values: a usage error naming them."""
    if not hasattr(args, "outdir") or args.outdir or not args.options:
        return None
    from dicomwire.prefs import ENGINE_PREFS
    known = {p.name for p in ENGINE_PREFS}
    for table in args.command_host.call("dicomwire_preferences"):
        known.update(p.name for p in table)
    paths = [o for o in args.options if o.partition(":")[0] not in known]
    if len(paths) > 1:
        return usage(f"-o {paths[0]!r} and -o {paths[1]!r}: neither names a preference, "
                     f"and only one can be the output (--output OUT says which)")
    if paths:
        args.outdir = paths[0]
        args.options = [o for o in args.options if o != paths[0]]
    return None


# -- what a command handler uses ---------------------------------------------------


def _config(args) -> Config:
    opts = {}
    for o in args.options:
        name, sep, value = o.partition(":")
        if not sep or not name:
            raise SystemExit(usage(f"-o expects NAME:VALUE, got {o!r}"))
        opts[name] = value
    return Config(plugins=args.plugins, options=opts,
                  progress=not args.quiet and sys.stderr.isatty())


def setup(args):
    """``(config, host)`` for ``args``: the plugin host of ``-p``, and every
    preference applied (defaults < file < -o < flags). Bad values exit with
    a usage error."""
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
        raise SystemExit(usage(str(e)))
    config.declared = prefs
    return config, host


def usage(msg: str) -> int:
    """Print a usage error; returns :data:`EXIT_USAGE`."""
    print(f"dicomwire: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def run_capture(args, *plugins, tap=None, prepared=None) -> Result:
    """Register ``plugins`` (objects with hooks) and run the pass over
    ``args.capture``; ``prepared``: a :func:`setup` result to reuse."""
    config, host = prepared or setup(args)
    for p in plugins:
        host.register(p, type(p).__name__.lower())
    source = capture_source(args)
    if getattr(args, "dask", None):
        return cluster.run(args, source, config, host, plugins,
                           lambda: run(source, config, host, tap=tap))
    if liveopts.streamed(args, source):
        return liveopts.run_streamed(args, source, config, host, run, tap=tap)
    bar = Progress() if config.progress else None
    try:
        return run(source, config, host, progress=bar, tap=tap)
    finally:
        if bar:
            bar.clear()


def capture_source(args):
    """What ``run`` reads for ``args.capture``: one name, or the list of
    several (files, folders, globs: one capture); none is a usage error."""
    cap = args.capture
    if isinstance(cap, (list, tuple)):
        if not cap and not getattr(args, "interfaces", None):
            raise SystemExit(usage(liveopts.check(args)))
        return cap[0] if len(cap) == 1 else (list(cap) or None)
    return cap


def finish(args, result: Result, findings: bool = False) -> int:
    """Warnings on stderr (unless -q), then the exit status: 130 when
    interrupted, 1 for --fail-on problems with problems or ``findings``."""
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


# -- prefs, streams ------------------------------------------------------------------


def _block_buffered_stdout():
    """Output to a file or pipe goes out in 64 kB blocks, whatever
    PYTHONUNBUFFERED says: a write per summary line costs more than the
    decoding (25k lines: about a second). A terminal stays line-buffered."""
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


def _parse(parser, argv):
    """parse_args, but capture names after options are taken too
    (``show a.pcap -V b.pcap``: argparse leaves ``b.pcap`` over)."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "capture", None), list) and \
            not any(a.startswith("-") and a != "-" for a in extra):
        args.capture += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None) -> int:
    if argv is not None:
        return _main(list(argv))
    tune_gc()                           # the program, not a caller's process
    try:
        return _main(sys.argv[1:])
    finally:
        end_gc()


def _main(argv: list) -> int:
    parser = build_parser(_plugin_args(argv))
    args = _parse(parser, argv)
    problem = _output_option(args)
    if problem is not None:
        return problem
    problem = liveopts.check(args) if hasattr(args, "interfaces") else None
    if not problem and getattr(args, "dask", None):
        problem = cluster.check(args)
    if problem:
        return usage(problem)
    _block_buffered_stdout()
    try:
        try:
            return args.handler(args)
        finally:
            sys.stdout.flush()
    except CaptureError as e:
        return usage(str(e))
    except (PluginLoadError, cluster.ClusterError, OutputLost) as e:
        return usage(str(e))            # (OutputLost: a broken pipe that is no quiet end)
    except BrokenPipeError:
        # `dicomwire ... | head`: the reader went away; that is not an error.
        try:
            sys.stdout = open("/dev/null", "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
