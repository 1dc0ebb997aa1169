"""The fuzz targets of fuzz/ (issue 8), in CI without atheris: every
committed seed replayed, then a bounded number of hypothesis examples per
target (random bytes, and seeds with bytes flipped, inserted or cut). A
target's ``one_input`` raises only on a bug, so each example passing is the
check. Longer, coverage-guided runs: ``python fuzz/run.py all`` (README).

Below them, one regression test per crash the fuzzers found, named after
what it found, replaying the input that found it.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
if str(FUZZ) not in sys.path:
    sys.path.insert(0, str(FUZZ))

import harness  # noqa: E402
from support import SAMPLE, Recorder, record  # noqa: E402

# pydicom warns about what it reads in fuzzed data sets: expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Examples per target, so that all of them take about 10 s on the CI
# machine kind; atheris does the long runs.
EXAMPLES = {"capture": 100, "link": 150, "tcp": 120, "pdu": 100, "pdv": 80, "dimse": 80,
            "filter": 100}


def test_every_target_has_seeds_and_the_corpus_stays_small():
    total = 0
    for target in harness.TARGETS:
        seeds = harness.seeds(target)
        assert seeds, f"no seeds for {target}: run python fuzz/make_seeds.py"
        total += sum(map(len, seeds))
    assert total < 200_000, total


@pytest.mark.parametrize("target", harness.TARGETS)
def test_seed_corpus_replays(target):
    mod = harness.module(target)
    for seed in harness.seeds(target):
        mod.one_input(seed)


@st.composite
def _inputs(draw, target):
    """Random bytes, or a seed mutated the way libFuzzer would start to."""
    seeds = harness.seeds(target)
    if not seeds or draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=600))
    buf = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        op = draw(st.integers(0, 3))
        if op == 0:
            buf[i] = draw(st.integers(0, 255))
        elif op == 1:
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            del buf[i:i + draw(st.integers(1, 16))]
        else:
            buf[i] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        buf = buf[:draw(st.integers(0, len(buf)))]
    return bytes(buf)


def _fuzz_test(target):
    mod = harness.module(target)

    @settings(max_examples=EXAMPLES[target], deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_inputs(target))
    def run(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod.one_input(data)

    return run


@pytest.mark.parametrize("target", harness.TARGETS)
def test_target_under_hypothesis(target):
    _fuzz_test(target)()


def test_runner_replays_and_documents_itself(tmp_path):
    seed = tmp_path / "one"
    seed.write_bytes(b'dicom.pdu.type == 4')
    p = subprocess.run([sys.executable, str(FUZZ / "run.py"), "filter", "--replay", str(seed)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("ok"), p.stdout + p.stderr
    p = subprocess.run([sys.executable, str(FUZZ / "run.py"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "python fuzz/run.py all" in p.stdout


# --------------------------------------------------------------------------
# Regressions: one per crash found, named after what it found
# --------------------------------------------------------------------------

def test_filter_malformed_string_escape_is_a_usage_error(capsys):
    # fuzz_filter, atheris, within a minute: 'called == "M]u15dcNCHElling =\N{\"Q\""'
    # A malformed escape in a string (\N{..., \x, \u12) escaped DisplayFilter
    # as lark's VisitError wrapping UnicodeDecodeError: a traceback from -Y.
    import fuzz_filter
    from dicomwire.cli import main
    from dicomwire.filter import DisplayFilter, FilterError
    found = b'dicom.assoce.a.called == "M]u15dcNCHElling =\\N{\\"Q\\""'
    fuzz_filter.one_input(found)
    for text, col in (('a == "\\x"', 6), ('dicom.summary matches "\\u12"', 23),
                      ('a == "\\N{NO SUCH NAME}"', 6)):
        with pytest.raises(FilterError) as e:
            DisplayFilter(text)
        assert e.value.column == col and "bad escape in string" in str(e.value)
    with pytest.raises(SystemExit) as ex:          # a usage error, as any bad -Y
        main(["show", "-Y", 'dicom.summary == "\\x"', str(SAMPLE)])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dicomwire: error: -Y: bad escape in string") and "Traceback" not in err


def test_filter_string_beyond_ascii_is_not_mojibake():
    # Seen while fixing the crash above: the same decoding turned "Ü" into
    # "Ã\x9c" (UTF-8 bytes read as Latin-1), so non-ASCII AE titles or
    # names never matched. Escapes still work, and mean the same character.
    from dicomwire.filter import DisplayFilter
    f = DisplayFilter('dicom.assoc.ae.calling == "MÜNCHEN_Ω"')
    assert f({"dicom.assoc.ae.calling": ["MÜNCHEN_Ω"]})
    assert DisplayFilter('x == "M\\u00dcNCHEN_\\u03a9"')({"x": ["MÜNCHEN_Ω"]})
    assert DisplayFilter('x == "tab\\there \\"q\\" back\\\\slash"')(
        {"x": ['tab\there "q" back\\slash']})


def _command_field_of_two_values():
    """A C-ECHO-RQ command set whose Command Field (US, one value) is 4
    bytes long: two values."""
    import struct

    from dicomwire.specs.dicom.command import encode_command
    good = encode_command(dict(CommandField=0x0030, MessageID=1,
                               AffectedSOPClassUID="1.2.840.10008.1.1",
                               CommandDataSetType=0x0101))
    at = good.index(struct.pack("<HHI", 0, 0x0100, 2))
    body = good[12:at] + struct.pack("<HHIHH", 0, 0x0100, 4, 0x0030, 0x8030) + good[at + 10:]
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def test_command_field_of_two_values_no_longer_kills_the_stream(tmp_path):
    # fuzz_pdv, atheris, within a minute: a US command element of the wrong
    # length decoded as a list; Message.is_response did list & 0x8000 and the
    # dissector raised, so the pipeline dropped the rest of the stream.
    import capgen as g
    from dicomgen import AC, ECHO_RQ, RELEASE_RQ, RQ, pdata
    from dicomwire.specs.dicom.command import decode_command
    bad = _command_field_of_two_values()
    at = bad.index(b"\x00\x00\x00\x01\x04\x00\x00\x00")
    fields, elements, problems = decode_command(bad)
    assert fields["CommandField"] == 0x0030 and fields["MessageID"] == 1
    assert problems == [f"element (0000,0100) CommandField: value length 4, not 2 (one US) "
                        f"at offset {at}"]
    pk = g.conversation("10.0.0.1", "10.0.0.2", 40000, 104,
                        [RQ, pdata((1, 3, bad)), pdata((1, 3, ECHO_RQ)), RELEASE_RQ], [AC])
    cap = tmp_path / "cf.pcap"
    cap.write_bytes(g.pcap([(i * 1000, g.ethernet(p)) for i, p in enumerate(pk)]))
    rec = Recorder(message=lambda m: (m.name, list(m.problems)))
    result = record(cap, rec)                      # no plugin error
    assert "plugin.failed" not in {i.field.name for i in result.expert.infos}
    names = rec.messages
    assert [n for n, _p in names] == ["C-ECHO-RQ", "C-ECHO-RQ"]
    assert names[0][1] == problems and names[1][1] == []
