"""The run's configuration: the engine's settings, and the preferences of
every plugin as one mapping.

Packs read their preferences by name, ``config.pref("mllp.port")``;
values are filled from the declarations (``dicomwire_preferences``), the
config file, ``-o NAME:VALUE`` and the commands' flags by the CLI
(:func:`dicomwire.prefs.apply`), and from the declared defaults by
:func:`dicomwire.pipeline.run` for library callers that skip the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomwire.tcp import MAX_FLOWS, MAX_OOO

_MISSING = object()


@dataclass
class Config:
    plugins: list[str] = field(default_factory=list)   # -p: modules to load, no:NAME to block
    options: dict[str, str] = field(default_factory=dict)  # -o name:value, raw
    preferences: dict = field(default_factory=dict)    # preference name -> value
    max_ooo: int = MAX_OOO      # out-of-order bytes held per direction before a gap
    max_flows: int = MAX_FLOWS  # TCP flows tracked at once; beyond, the idlest are evicted
    state: dict = field(default_factory=dict)   # per-run scratch space for plugins
    declared: list = field(default_factory=list)   # every known Preference (after set-up)
    effective: dict = field(default_factory=dict)  # name -> (value, source)
    progress: bool = False      # progress line on stderr
    dissect: bool | str = True  # False: TCP only, no dissectors; "tls": TLS handshakes only (streams)
    fast_path: bool = True      # dicomwire.fastpath: the walk and the bulk lanes (tests turn it off)
    # Live runs: seconds of capture time after which a closed stream leaves
    # the stream list, its counts kept in totals (Reassembler.retired); None keeps all.
    retire_after: float | None = None

    @property
    def blocked(self) -> list[str]:
        return [p[3:] for p in self.plugins if p.startswith("no:")]

    @property
    def load(self) -> list[str]:
        return [p for p in self.plugins if not p.startswith("no:")]

    def pref(self, name: str, default=_MISSING):
        """The value of preference ``name``; ``default`` (if given) when
        nothing set or declared it, else KeyError."""
        try:
            return self.preferences[name]
        except KeyError:
            if default is not _MISSING:
                return default
            raise KeyError(f"preference {name!r} is not declared by any plugin") from None

    def declare(self, tables) -> None:
        """Give every preference of ``tables`` (iterables of
        :class:`dicomwire.prefs.Preference`, as ``dicomwire_preferences``
        returns them) its default, unless it has a value already."""
        for table in tables:
            for p in table:
                if p.attr is None:
                    self.preferences.setdefault(p.name, p.default)
