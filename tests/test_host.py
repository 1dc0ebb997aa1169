"""The plugin host: registration by name, blocking, entry points, -p, failures."""

import sys
import textwrap

import pytest

from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.host import PluginHost, PluginLoadError
from dicomwire.pipeline import run
from support import SAMPLE, dw


def write_module(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return name


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in [m for m in sys.modules if m.startswith("dwtest_")]:
        del sys.modules[m]


COUNTER = """
    from dicomwire.hookspecs import hookimpl
    seen = []

    @hookimpl
    def dicomwire_stream_close(stream):
        seen.append(stream.id)
"""


def test_builtin_registered_by_short_name_and_blocked(on_path):
    write_module(on_path, "dwtest_counter", COUNTER)
    host = PluginHost({"counter": "dwtest_counter"}, entry_points=False)
    assert "counter" in host.names()
    blocked = PluginHost({"counter": "dwtest_counter"}, blocked=["counter"], entry_points=False)
    assert "counter" not in blocked.names()


def test_builtin_plugin_sees_every_stream(on_path):
    write_module(on_path, "dwtest_counter", COUNTER)
    host = PluginHost({"counter": "dwtest_counter"}, entry_points=False)
    result = run(SAMPLE, host=host)
    mod = sys.modules["dwtest_counter"]
    assert sorted(mod.seen) == [s.id for s in result.streams]
    assert len(mod.seen) == 3


def test_dash_p_loads_module_and_no_blocks_it(on_path):
    write_module(on_path, "dwtest_counter", COUNTER)
    host = PluginHost({}, load=["dwtest_counter"], entry_points=False)
    assert "dwtest_counter" in host.names()
    cfg = Config(plugins=["dwtest_counter", "no:dwtest_counter"])
    host = PluginHost({}, blocked=cfg.blocked, load=cfg.load, entry_points=False)
    assert "dwtest_counter" not in host.names()


def test_entry_point_plugin_loaded_and_blockable(on_path):
    write_module(on_path, "dwtest_ep", COUNTER)
    dist = on_path / "dwtest_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dwtest-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dicomwire]\nepplug = dwtest_ep\n")
    host = PluginHost({})
    assert "epplug" in host.names()
    run(SAMPLE, host=host)
    assert len(sys.modules["dwtest_ep"].seen) == 3
    assert "epplug" not in PluginHost({}, blocked=["epplug"]).names()


def test_broken_module_is_a_load_error(on_path):
    write_module(on_path, "dwtest_broken", "raise RuntimeError('boom at import')\n")
    with pytest.raises(PluginLoadError, match="dwtest_broken.*boom at import"):
        PluginHost({}, load=["dwtest_broken"], entry_points=False)
    with pytest.raises(PluginLoadError, match="no_such_module"):
        PluginHost({}, load=["no_such_module_dw"], entry_points=False)


def test_hook_wrappers_are_refused():
    class Wrapper:
        @hookimpl(wrapper=True)
        def dicomwire_stream_close(self, stream):
            return (yield)

    host = PluginHost({}, entry_points=False)
    with pytest.raises(PluginLoadError, match="wrappers"):
        host.register(Wrapper(), "wrap")
    assert "wrap" not in host.names()


def test_failing_plugin_is_reported_with_frame_and_others_run(capsys):
    class Failing:
        @hookimpl
        def dicomwire_stream_close(self, stream):
            raise ValueError(f"bad stream {stream.id}")

        @hookimpl
        def dicomwire_stream_open(self, stream):
            raise KeyError("opening")

    class Good:
        closed = []

        @hookimpl
        def dicomwire_stream_close(self, stream):
            self.closed.append(stream.id)

    host = PluginHost({}, entry_points=False)
    host.register(Failing(), "failing")
    good = Good()
    host.register(good, "good")
    result = run(SAMPLE, host=host)
    assert good.closed == [0, 1, 2]
    assert host.error_count == 6                       # 3 opens + 3 closes
    opens = [e for e in host.errors if e.hook == "dicomwire_stream_open"]
    assert [e.frame for e in opens] == [s.first_frame for s in result.streams]
    assert all(e.plugin == "failing" for e in host.errors)
    closes = [str(e) for e in host.errors if e.hook == "dicomwire_stream_close"]
    assert "ValueError: bad stream 0" in closes[0]
    err = capsys.readouterr().err
    # Reported once per plugin and hook, not once per failure.
    assert err.count("failed in dicomwire_stream_close") == 1
    assert err.count("failed in dicomwire_stream_open") == 1


def test_failing_dissector_loses_its_stream_not_the_run():
    class Dissector:
        def __init__(self):
            self.calls = 0

        def data(self, direction, offset, payload, frame, ts):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("dissector bug")

        def gap(self, *a):
            pass

        def close(self):
            pass

    made = []

    class Selector:
        @hookimpl
        def dicomwire_stream_dissector(self, stream):
            made.append(Dissector())
            return made[-1]

    host = PluginHost({}, entry_points=False)
    host.register(Selector(), "selector")
    result = run(SAMPLE, host=host)
    assert len(made) == 3 and len(result.streams) == 3
    assert all(d.calls == 2 for d in made)           # stopped after the failure
    assert {e.hook for e in host.errors} == {"dissector.data"}
    assert {e.plugin for e in host.errors} == {"selector"}


def test_cli_bad_plugin_is_one_line_usage_error():
    p = dw("streams", "-p", "no_such_mod_dw", SAMPLE)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0
    assert "no_such_mod_dw" in p.stderr and "Traceback" not in p.stderr
