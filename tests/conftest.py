"""Shared fixtures. The plain helpers they build on (SAMPLE, dw, ...) are
in support.py, importable where a fixture cannot go."""

import pytest

import support


@pytest.fixture
def cli(capsys):
    """``cli(*args, ok=False)``: run the command line in this process; its
    (status, stdout, stderr). A traceback fails the test; ``ok=True``: so
    does a status other than 0. See :func:`support.run_main`."""
    def cli(*args, ok=False):
        return support.run_main(capsys, *args, ok=ok)
    return cli
