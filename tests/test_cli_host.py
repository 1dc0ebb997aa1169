"""The command line is a host: packs contribute commands, options and
preferences through hooks; built-ins come from the packs' tables."""

from __future__ import annotations

import sys
import textwrap

import pytest

from dicomwire.cli import build_parser, main
from dicomwire.config import Config
from dicomwire.host import builtin_plugins
from dicomwire.pipeline import make_host, run
from support import SAMPLE

PACK = '''
from dicomwire import cli
from dicomwire.hookspecs import hookimpl
from dicomwire.prefs import Preference

@hookimpl
def dicomwire_addcommands(subparsers, common):
    s = subparsers.add_parser("hello", parents=[common], help="say hello")
    s.add_argument("capture")
    s.add_argument("--loud", dest="loud", action="store_const", const=True, default=None)
    return {"hello": cmd_hello}

@hookimpl
def dicomwire_addoption(parser, command):
    if command == "prefs":
        parser.add_argument("--loud", dest="loud", action="store_const", const=True,
                            default=None)

@hookimpl
def dicomwire_preferences():
    return [Preference("hello.loud", "bool", False, "Shout", flag="loud")]

def cmd_hello(args):
    config, host = cli.setup(args)
    result = cli.run_capture(args, prepared=(config, host))
    word = "HELLO" if config.pref("hello.loud") else "hello"
    print(f"{word}: {result.frames} frames")
    return cli.finish(args, result)
'''


@pytest.fixture
def pack(tmp_path, monkeypatch):
    (tmp_path / "hellopack.py").write_text(textwrap.dedent(PACK))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "hellopack"
    sys.modules.pop("hellopack", None)


def test_a_plugin_adds_a_command_its_options_and_preference(pack, cli):
    assert cli("hello", "-p", pack, SAMPLE, ok=True).stdout == "hello: 76 frames\n"
    assert cli("hello", f"-p{pack}", "--loud", SAMPLE, ok=True).stdout == "HELLO: 76 frames\n"
    assert cli("hello", "-p", pack, "-o", "hello.loud:true", SAMPLE,
               ok=True).stdout.startswith("HELLO")
    out = cli("prefs", "-p", pack, "--loud", ok=True).stdout
    line = [x for x in out.splitlines() if x.startswith("hello.loud")]
    assert line and line[0].split()[1:3] == ["TRUE", "flag"]


def test_without_the_plugin_there_is_no_such_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["hello", str(SAMPLE)])
    assert e.value.code == 2 and "invalid choice: 'hello'" in capsys.readouterr().err


def test_blocking_a_pack_keeps_its_commands(cli):
    # -p no:NAME takes a plugin's hooks out of the pass, not its commands.
    expert = cli("expert", "-q", "-p", "no:dicom", SAMPLE, ok=True).stdout
    show = cli("show", "-q", "-p", "no:dicom", SAMPLE, ok=True).stdout
    assert (expert + show).count(" -> ") == 0


def test_every_command_has_a_handler():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"show", "fields", "assoc", "expert", "fuzz", "export",
                                "annotate", "deidentify", "report", "prefs", "streams"}
    assert all(callable(p.get_default("handler")) for p in sub.choices.values())


def test_builtins_come_from_the_packs_tables():
    from dicomwire.exporters import BUILTIN as exporters
    from dicomwire.plugins import BUILTIN as plugins
    assert builtin_plugins() == {**plugins, **exporters}
    assert list(builtin_plugins())[0] == "dicom"


def test_library_callers_get_the_declared_defaults():
    config = Config()
    with pytest.raises(KeyError):
        config.pref("dicom.tcp.port")
    assert config.pref("dicom.tcp.port", None) is None
    run(str(SAMPLE), config, make_host(config))
    assert config.pref("dicom.tcp.port") == "104,11112" and config.pref("dicom.heuristic")
    kept = Config(preferences={"dicom.tcp.port": "4242"})
    run(str(SAMPLE), kept, make_host(kept))
    assert kept.pref("dicom.tcp.port") == "4242"


def test_an_install_without_the_tables_says_so(monkeypatch):
    import importlib.metadata

    from dicomwire.host import PluginHost, PluginLoadError
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [])
    with pytest.raises(PluginLoadError, match="reinstall"):
        PluginHost()
