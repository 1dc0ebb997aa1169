"""Plugin objects packed for ``--dask`` workers (:mod:`dicomwire.cluster`):
a plugin's state travels by value, what cannot (stdout, modules, the other
plugins it holds) by name or place, restored on the worker."""

from __future__ import annotations

import argparse
import pickle
import sys
import types


def pack(obj, plugins=()):
    """A plugin object for the workers: stdout, modules and the other
    ``plugins`` it holds (show's matcher) by name or place."""
    state = {}
    for name, value in vars(obj).items():
        if value is sys.stdout:
            value = "<stdout>"
        elif any(value is p for p in plugins):
            value = ("<plugin>", next(i for i, p in enumerate(plugins) if p is value))
        elif isinstance(value, types.ModuleType):
            value = ("<module>", value.__name__)
        elif isinstance(value, argparse.Namespace):      # the command line, less what
            value = argparse.Namespace(**{k: v for k, v in vars(value).items()  # stays here
                                          if _travels(v)})
        state[name] = value
    return type(obj), state


def _travels(value) -> bool:
    try:
        pickle.dumps(value)
        return True
    except Exception:
        return False


def unpack(packed) -> list:
    """The plugin objects of :func:`pack` ed ``packed``, one another's
    references restored."""
    import importlib
    objs = [cls.__new__(cls) for cls, _state in packed]
    for obj, (_cls, state) in zip(objs, packed):
        for name, value in state.items():
            if isinstance(value, tuple) and len(value) == 2 and value[0] == "<module>":
                value = importlib.import_module(value[1])
            elif isinstance(value, tuple) and len(value) == 2 and value[0] == "<plugin>":
                value = objs[value[1]]
            obj.__dict__[name] = value
    return objs
