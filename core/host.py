"""The plugin host: pluggy, project ``dicomwire``, failures contained.

Built-ins are registered under short names (the tables of the
``dicomwire.builtins`` entry points), third-party plugins come from
the ``dicomwire`` entry-point group or ``-p module``; ``-p no:NAME`` blocks
any of them. Hooks are called through :meth:`PluginHost.call`, which runs
each implementation on its own: one that raises is recorded with the frame
being processed and the others still run.
"""

from __future__ import annotations

import importlib
import operator
import sys
import traceback
from dataclasses import dataclass

import pluggy

from dicomwire import hookspecs


class PluginLoadError(Exception):
    pass


#: Entry-point group of the tables of built-in plugins: each entry is a dict
#: short name -> module name (a pack's, e.g. ``dicomwire.plugins:BUILTIN``).
BUILTIN_GROUP = "dicomwire.builtins"


def builtin_plugins() -> dict[str, str]:
    """The built-in plugins, by short name: every table of the entry-point
    group :data:`BUILTIN_GROUP`, in the order of the entries' names. The
    engine names no pack: the installed packages declare them."""
    from importlib.metadata import entry_points
    out: dict[str, str] = {}
    for ep in sorted(entry_points(group=BUILTIN_GROUP), key=operator.attrgetter("name")):
        out.update(ep.load())
    if not out:
        # An install older than these entry points: say so, rather than
        # decode nothing.
        raise PluginLoadError(f"no built-in plugins: the {BUILTIN_GROUP!r} entry points are "
                              f"missing; reinstall dicomwire (pip install -e .)")
    return out


@dataclass
class PluginError:
    plugin: str
    hook: str
    frame: int
    error: str
    where: str          # innermost traceback line, for the report

    def __str__(self):
        at = f" at frame {self.frame}" if self.frame else ""
        return f"plugin {self.plugin!r} failed in {self.hook}{at}: {self.error} ({self.where})"


def _no_args(_kwargs):
    return ()


class PluginHost:
    MAX_ERRORS = 1000

    def __init__(self, builtins: dict[str, str] | None = None, *, blocked=(), load=(),
                 entry_points: bool = True, stderr=None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.errors: list[PluginError] = []
        self.error_count = 0
        self.frame = 0                 # the frame being processed, for reports
        self.stream = None             # the TCP stream whose bytes are (set by the dispatch)
        self.expert = None             # the run's ExpertLog (set by pipeline.run)
        self.stderr = stderr if stderr is not None else sys.stderr
        self._reported: set = set()
        self._cache: dict = {}         # hook name -> callers (see _callers)
        for name in blocked:
            self.pm.set_blocked(name)
        # Historic: every plugin registered from now on may add hook specs.
        self.pm.hook.dicomwire_addhooks.call_historic(kwargs=dict(pluginmanager=self.pm))
        if builtins is None:
            builtins = builtin_plugins()
        for name, modname in builtins.items():
            if not self.pm.is_blocked(name):
                self.register(importlib.import_module(modname), name)
        if entry_points:
            self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        for modname in load:
            if self.pm.is_blocked(modname):
                continue
            try:
                mod = importlib.import_module(modname)
            except Exception as e:      # a broken plugin is a usage error, not a crash
                raise PluginLoadError(f"cannot load plugin {modname!r}: "
                                      f"{type(e).__name__}: {e}") from None
            self.register(mod, modname)

    def register(self, plugin, name: str | None = None):
        self._cache.clear()
        try:
            name = self.pm.register(plugin, name)
        except (ValueError, pluggy.PluginValidationError) as e:
            raise PluginLoadError(f"cannot register plugin {name or plugin!r}: {e}") from None
        # Wrappers would need pluggy's own call loop, which cannot contain a
        # failing plugin; dicomwire hooks are plain notifications.
        for caller in self.pm.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and (impl.hookwrapper or getattr(impl, "wrapper", False)):
                    self.pm.unregister(plugin)
                    raise PluginLoadError(f"plugin {name!r}: hook wrappers are not "
                                          f"supported ({caller.name})")
        return name

    def names(self) -> list[str]:
        return [n for n, p in self.pm.list_name_plugin() if p is not None]

    def _callers(self, hook: str) -> list:
        """(function, argument getter, plugin name) per implementation, in
        pluggy's order (last registered or tryfirst first). Cached: hooks
        fire per protocol unit, and pluggy's lookup and argument lists cost more than
        a small plugin's work. register() clears the cache."""
        got = self._cache.get(hook)
        if got is None:
            got = []
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                names = tuple(impl.argnames)
                if len(names) == 1:
                    get = (lambda a: lambda kw: (kw[a],))(names[0])
                elif names:
                    get = operator.itemgetter(*names)
                else:
                    get = _no_args
                got.append((impl.function, get, impl.plugin_name))
            self._cache[hook] = got
        return got

    def _results(self, hook: str, kwargs):
        """(result, plugin name) of each implementation, failures contained."""
        for fn, get, name in self._callers(hook):
            try:
                r = fn(*get(kwargs))
            except BrokenPipeError:
                raise                   # the reader of our output left: stop, quietly
            except Exception as e:
                self.failed(name, hook, e)
                continue
            if r is not None:
                yield r, name

    def call(self, hook: str, **kwargs) -> list:
        """Call every implementation; return their non-None results."""
        out = []
        for fn, get, name in self._cache.get(hook) or self._callers(hook):
            try:
                r = fn(*get(kwargs))
            except BrokenPipeError:
                raise
            except Exception as e:
                self.failed(name, hook, e)
                continue
            if r is not None:
                out.append(r)
        return out

    def interest(self, config):
        """The streams any plugin may select, a
        :class:`dicomwire.hookspecs.StreamInterest` (the union of their
        ``dicomwire_stream_interest``), if every plugin that selects
        streams gave one; else None: every stream is asked about."""
        selecting = {name for _f, _g, name in self._callers("dicomwire_stream_dissector")}
        given = list(self._results("dicomwire_stream_interest", {"config": config}))
        if not selecting <= {name for _r, name in given}:
            return None
        ports, first = set(), set()
        for r, _name in given:
            ports |= r.ports
            first |= set(r.first)
        return hookspecs.StreamInterest(ports, bytes(sorted(first)))

    def call_first(self, hook: str, **kwargs):
        """Call implementations until one returns non-None: (result, plugin name)."""
        return next(self._results(hook, kwargs), (None, None))

    def call_select(self, hook: str, **kwargs):
        """:meth:`call_first` for a hook whose implementations may answer
        :data:`dicomwire.hookspecs.MORE` (undecided): the first other result
        wins; else MORE if one answered it; else None. (result, plugin name)."""
        more = None
        for r, name in self._results(hook, kwargs):
            if r is not hookspecs.MORE:
                return r, name
            if more is None:
                more = (r, name)
        return more or (None, None)

    def failed(self, plugin: str, hook: str, exc: BaseException):
        """Record a plugin failure; print the first of each kind on stderr."""
        self.error_count += 1
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
        err = PluginError(plugin, hook, self.frame, f"{type(exc).__name__}: {exc}", where)
        if len(self.errors) < self.MAX_ERRORS:
            self.errors.append(err)
        if (plugin, hook) not in self._reported:
            self._reported.add((plugin, hook))
            print(f"dicomwire: warning: {err}; continuing", file=self.stderr)
