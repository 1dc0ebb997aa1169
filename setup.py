"""The one compiled part, optional: dicomwire._fastwalk (core/_fastwalk.c),
the walk of dicomwire.fastpath over a capture's records in C (a 64-bit
compiler with __int128: gcc, clang). Where it cannot be
built (no C compiler, no Python headers) the install goes on without it and
the pure-Python walk, which gives the same results, runs instead. The rest
of the build is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("dicomwire._fastwalk", ["core/_fastwalk.c"], optional=True)])
