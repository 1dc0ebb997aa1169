"""Every hook of dicomwire, each docstring its contract (pytest's hookspec.py
is the model).

Hooks are called per capture, per stream and (from the protocol packs) per
protocol unit, message or session; never per frame or per field. Implement them in
a module or class decorated with :data:`hookimpl` and register it with
``-p module``, or through the ``dicomwire`` entry-point group::

    from dicomwire.hookspecs import hookimpl

    @hookimpl
    def dicomwire_stream_close(stream):
        ...

An implementation that raises does not stop the run: the host records the
plugin, the hook and the frame being processed, reports it, and goes on.
Implementations may declare any subset of a hook's arguments.
"""

import pluggy

PROJECT = "dicomwire"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``expert.state`` key, true while a ``--dask`` run follows its open streams
#: through the next runs' files, the other streams unread
#: (:func:`dicomwire_handover_pending`).
FOLLOWING = "handover.following"


class _More:
    __slots__ = ()

    def __repr__(self):
        return "dicomwire.hookspecs.MORE"


#: What :func:`dicomwire_stream_dissector` returns for "not yet: ask me again
#: when more bytes have arrived".
MORE = _More()

#: How long the engine keeps asking while an answer is :data:`MORE`: at most
#: this many calls per stream, while it holds fewer bytes than this.
PEEK_CALLS = 16
PEEK_BYTES = 4096


@hookspec(historic=True)
def dicomwire_addhooks(pluginmanager):
    """Called when a plugin is registered, so that a protocol pack can add
    its own hook specifications (``pluginmanager.add_hookspecs(module)``):
    the engine knows no protocol, each pack keeps its hooks in one module of
    its own."""


@hookspec
def dicomwire_expert_fields():
    """Return the :class:`dicomwire.expert.ExpertField` s this plugin reports
    (an iterable). Called once per run, before the capture is opened; every
    name must be unique across plugins (the same field twice is allowed)."""


@hookspec
def dicomwire_preferences():
    """Return the :class:`dicomwire.prefs.Preference` s this plugin reads (an
    iterable). The CLI applies defaults, the config file, ``-o NAME:VALUE``
    and flags to them before the run; unknown names are a usage error."""


@hookspec
def dicomwire_addcommands(subparsers, common, capture):
    """Add this plugin's commands to the ``dicomwire`` command line: for each,
    ``subparsers.add_parser(NAME, parents=[common, ...], help=..., ...)``
    (``common``: the parent parser of the options every command takes,
    ``-p``, ``-o``, ``-q``, ``--fail-on``; ``capture``: that of a command
    that reads a capture, the ``capture`` positional (files, a folder, a
    glob, ``-``) and the live capture options). Return ``{NAME: handler}``: the
    engine calls ``handler(args)`` with the parsed arguments and exits with
    what it returns (:mod:`dicomwire.cli` has the helpers: ``setup``,
    ``run_capture``, ``finish``, ``usage``). Asked of every built-in,
    entry-point and ``-p`` plugin, in registration order, whether or not
    ``-p no:NAME`` blocks it in the pass. Keep imports out of the module
    level of such a plugin: every start of the tool loads it."""


@hookspec
def dicomwire_addoption(parser, command):
    """Called for every command (``command`` its name, ``parser`` its
    argparse parser) once all commands exist: add options to commands
    that another plugin or the engine owns, as pytest plugins do in
    ``pytest_addoption``. A pack whose preferences have flags adds them to
    ``prefs``, so that ``dicomwire prefs`` shows their effect."""


@hookspec
def dicomwire_configure(config):
    """Called once, after every plugin is registered and before the capture
    is opened. ``config`` is the run's :class:`dicomwire.config.Config`:
    read options from it, or keep it for later hooks."""


@hookspec
def dicomwire_capture_start(capture):
    """Called once the capture is open and its format known, before the
    first frame. ``capture`` is the :class:`dicomwire.capture.CaptureReader`,
    or for several files the :class:`dicomwire.capset.CaptureSet` that reads
    like one (``name``, ``format``, ``first_ts``, ``interfaces``; ``comments``
    fills as frames are read)."""


@hookspec
def dicomwire_stream_open(stream):
    """Called when the first segment of a new TCP stream is seen (a SYN, or
    any segment when the capture started mid-stream). ``stream`` is a
    :class:`dicomwire.tcp.Stream`; its counters keep changing until
    :func:`dicomwire_stream_close`."""


@hookspec(firstresult=True)
def dicomwire_stream_dissector(stream, direction, payload, config, host):
    """Protocol selection: called with the first payload a stream carries
    (``direction`` 0 = client to server). Return a dissector for the stream,
    or None to leave it to other plugins; the first dissector returned wins
    and a stream with none is counted but not dissected. ``host`` is the
    :class:`dicomwire.host.PluginHost`; dissectors announce what they
    decode through ``host.call(hook, **kwargs)``, which contains failures.

    Return :data:`MORE` when the bytes so far are too few to tell (a header
    cut across segments): if no implementation returns a dissector, the
    engine holds the stream's bytes and calls again on each next payload,
    ``payload`` then being everything ``direction`` carried so far, for at
    most :data:`PEEK_CALLS` calls while it holds fewer than
    :data:`PEEK_BYTES` bytes. Past that, on a gap, or when an answer is None,
    the stream is not dissected and costs nothing more. A dissector chosen
    after waiting gets every held byte through ``data``, in the order and
    with the offsets and frames they came with, none lost or repeated.

    A dissector receives the stream's bytes directly, without further hook
    calls: ``data(direction, offset, payload, frame, ts)`` for in-order
    bytes (``payload`` a memoryview valid only during the call),
    ``gap(direction, offset, size, frame, ts)`` for bytes missing from the
    capture, and ``close()`` once at the end of the stream. The payload of
    this call is delivered again through ``data``."""


class StreamInterest:
    """What :func:`dicomwire_stream_interest` returns: the streams a plugin's
    :func:`dicomwire_stream_dissector` may take. ``ports``: TCP ports (a
    set of ints) whose streams it wants to see, the server's (either end's
    when the capture missed the SYN); ``first``: the bytes (a ``bytes``)
    one of which a client's first payload starts with when it may be ours
    on another port (``b""``: none)."""

    __slots__ = ("ports", "first")

    def __init__(self, ports, first: bytes = b""):
        self.ports = frozenset(ports)
        self.first = bytes(first)


@hookspec
def dicomwire_stream_interest(config):
    """Called once per run, after :func:`dicomwire_configure`: return a
    :class:`StreamInterest` promising that this plugin's
    :func:`dicomwire_stream_dissector` answers None (no side effects) for
    every stream outside it: on neither of its ports, and whose first
    payload is the server's or starts with a byte not in its ``first``.
    When every plugin that selects streams promises so, the engine leaves
    the other streams undissected without asking (a span port's many small
    flows, decided where the walk runs). Return None, or do not implement
    it, to be asked about every stream."""


@hookspec
def dicomwire_stream_close(stream):
    """Called once per stream after its last bytes were delivered: on FIN
    from both sides, RST, port reuse, or at the end of the capture
    (``stream.close_reason``: fin, rst, refused, reused, half-closed, open,
    or evicted when the flow table was full, see ``tcp.max_flows``).
    Counters are final."""


@hookspec
def dicomwire_tls(stream, event):
    """Called for each TLS record the engine's TLS layer
    (:class:`dicomwire.tls.TLSLayer`) reads in clear or opens: handshake
    messages, alerts, ChangeCipherSpec. ``event`` is a
    :class:`dicomwire.tls.handshake.TLSEvent` (``direction``, ``frame``,
    ``ts``, ``text`` such as ``Server Hello (TLS 1.3, TLS_AES_128_GCM_SHA256)``,
    ``kind``); ``stream.tls`` is the :class:`dicomwire.tls.Session`."""


@hookspec
def dicomwire_capture_end(result):
    """Called once after the last frame, after every stream was closed.
    ``result`` is the :class:`dicomwire.pipeline.Result` of the pass
    (reader, link statistics, streams, plugin errors)."""


@hookspec
def dicomwire_handover_pending(expert):
    """Called by a ``--dask`` worker at the end of its run of files (see
    :mod:`dicomwire.handover`): return reasons (strings) why what this
    plugin keeps across streams is not finished there, so the run's results
    cannot be merged exactly (a request whose answers come on another
    stream, which another worker may read); the client then reads the set in
    one process. Return nothing when all is settled. State kept per stream
    needs nothing: a stream is followed by the worker that saw it begin.
    It is called again after that follow-through, during which
    ``expert.state[FOLLOWING]`` (:data:`FOLLOWING`) is
    true: only the streams followed are read then, so a request seen then
    whose answers may come on another stream makes a reason too."""
