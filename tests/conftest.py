"""Shared fixtures. The plain helpers they build on (SAMPLE, dw, Recorder,
record) are in support.py, importable where a fixture cannot go.

Tiers: markers ``slow`` (over about 2 s), ``interop`` (real peers:
pynetdicom, DCMTK, tcpdump) and ``root`` (packet capture, network
namespaces), registered in pyproject.toml and enforced (--strict-markers).
``make test-fast`` leaves the three out; ``make test`` runs everything."""

import pytest
from hypothesis import settings

import support

# Hypothesis times each example (200 ms by default): on a loaded machine
# that fails tests for the machine's sake. Speed is benchmarks' business.
settings.register_profile("dicomwire", deadline=None)
settings.load_profile("dicomwire")


@pytest.fixture
def cli(capsys):
    """``cli(*args, ok=False)``: run the command line in this process; its
    (status, stdout, stderr). A traceback fails the test; ``ok=True``: so
    does a status other than 0. See :func:`support.run_main`."""
    def cli(*args, ok=False):
        return support.run_main(capsys, *args, ok=ok)
    return cli
