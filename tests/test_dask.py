"""``--dask`` (issue 18): a file set read on a real Dask cluster (a
``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, random
ports; and a LocalCluster) prints and exports what one process does, byte
for byte, on ring buffers cut from real captures with ``editcap -c``, where
streams and objects cross the files' and the workers' boundaries; bad
cluster input is one clear error."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peers import free_port
from support import ROOT, SAMPLE, dw, in_process_cluster

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.slow

CORPUS = ROOT / "tests" / "corpus" / "captures"
BIN = Path(sys.executable).parent
NOTE = "read in one process"


def _stop(procs, group=False):
    """Terminate the scheduler and workers, the last started first; one that
    does not go in 15 s is killed. ``group``: a process leading its own
    session is sent SIGTERM with its children (a nanny alone waited for its
    worker past the 15 s; killed, its named semaphores stayed in /dev/shm);
    killed, its children go with it."""
    for p in reversed(procs):
        if group and p.poll() is None and os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, signal.SIGTERM)     # the nanny and its worker at once
        else:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(p.pid, signal.SIGKILL)
            else:
                p.kill()
            p.wait()


def start_cluster(workers: int, out, env=None, worker_env=None, group=False):
    """A ``dask scheduler`` on a free loopback port and ``workers``
    single-threaded ``dask worker`` s (``worker_env``: their environment;
    ``group``: each leads its own session, see :func:`_stop`), their output
    to ``out``: (processes, address), once the workers have joined."""
    from dask.distributed import Client
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"],
                              stdout=out, stderr=out, env=env)]
    for _ in range(workers):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"],
                                      stdout=out, stderr=out, env=worker_env or env,
                                      start_new_session=group))
    try:
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(workers, timeout=60)
    except BaseException:
        _stop(procs, group=group)
        raise
    return procs, address


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a scheduler with two single-threaded workers."""
    log = open(tmp_path_factory.mktemp("dask") / "cluster.log", "w")
    try:
        procs, address = start_cluster(2, log)
        try:
            yield address
        finally:
            _stop(procs)
    finally:
        log.close()


def cut(src, folder: Path, every: int, drop: str | None = None, fmt: str = "pcapng") -> Path:
    """``src`` as a ring buffer of ``every`` frames a file (``editcap -c``);
    ``drop``: frames left out first (``editcap`` ranges), a lossy capture;
    ``fmt``: the files' format."""
    if not shutil.which("editcap"):
        pytest.skip("editcap (Wireshark) is not installed")
    folder.mkdir(parents=True)
    if drop:
        lossy = folder.parent / f"{folder.name}-lossy.pcap"
        subprocess.run(["editcap", "-F", "pcap", str(src), str(lossy), *drop.split()],
                       check=True)
        src = lossy
    subprocess.run(["editcap", "-F", fmt, "-c", str(every), str(src), str(folder / f"ring.{fmt}")],
                   check=True, capture_output=True)
    assert len(os.listdir(folder)) >= 3
    return folder


COMMANDS = (("show",), ("show", "-V"), ("expert", "--verbose"), ("expert", "-T", "json"),
            ("streams",), ("streams", "-T", "json"), ("export", "--list"), ("assoc",))
# One form of each merged output (lines and trees, findings, streams,
# associations; export below): the tests that cut a set many ways.
EACH_OUTPUT = (("show", "-V"), ("expert", "-T", "json"), ("streams", "-T", "json"), ("assoc",))


def outputs(cli, folder: Path, out: Path, *dask, commands=COMMANDS) -> dict:
    """What the commands print (and export writes) for the set in ``folder``."""
    got = {}
    for cmd in commands:
        r = cli(*cmd, folder, *dask)
        got[cmd] = (r.returncode, r.stdout, NOTE in r.stderr)
    r = cli("export", folder, "-o", out, *dask)
    got["export"] = (r.returncode, r.stdout.replace(str(out), "OUT"), NOTE in r.stderr)
    got["export stderr"] = (0, r.stderr.replace(str(out), "OUT"), NOTE in r.stderr)
    got["files"] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    return got


def compare(cli, folder, tmp_path, *dask, split=True, commands=COMMANDS):
    want = outputs(cli, folder, tmp_path / "one", commands=commands)
    got = outputs(cli, folder, tmp_path / "dask", *dask, commands=commands)
    assert got.keys() == want.keys()
    for key in want:
        if key == "files":
            assert got[key] == want[key]
            continue
        status, text, note = got[key]
        if key == "export stderr" and note:
            continue                              # the note: read in one process
        assert (status, text) == want[key][:2], key
        if split is not None:
            assert note is not split, (key, "the merge should (not) have been possible")
    assert not [n for n in os.listdir(tmp_path / "dask") if n.startswith(".dicomwire")]
    return want


# Real captures cut into files where streams, PDUs and objects cross boundaries.
# (capture, frames a file, frames left out first, merged from the workers'
# parts: None where the MPPS check's state, which crosses associations, has
# the commands that run it read in one process)
SETS = {
    "sample-7": (SAMPLE, 7, None, True),
    "sample-20": (SAMPLE, 20, None, True),
    "multi-ts": (CORPUS / "store_dcmtk_multi_ts.pcap", 9, None, True),
    "get-subops": (CORPUS / "get_with_subops.pcap", 11, None, True),
    "mid-stream": (SAMPLE, 7, "1-9", True),             # begins inside an association
    "lossy": (SAMPLE, 6, "12 13 40", True),            # gaps inside a data set
    "mpps-mid-stream": (CORPUS / "cut_start_mpps.pcap", 5, None, None),
}


@pytest.mark.parametrize("name", SETS)
def test_a_set_on_a_cluster_reads_as_in_one_process(cli, scheduler, tmp_path, name):
    src, every, drop, split = SETS[name]
    folder = cut(src, tmp_path / "set", every, drop)
    want = compare(cli, folder, tmp_path, "--dask", scheduler, split=split)
    assert want["files"] or name == "mpps-mid-stream"


@pytest.mark.parametrize("through", ["folder", "queue"])
@pytest.mark.parametrize("name", ["sample-7", "get-subops", "lossy"])
def test_streams_handed_over_across_several_runs(cli, scheduler, tmp_path, monkeypatch, name,
                                                 through):
    """As many runs as files (more than workers): a stream crosses several
    runs, closes in a later one, its last ACKs in the next; each part's
    output goes to the client ahead, in chunks of four events: through
    the client's folder (the workers are on this machine), or through the
    parts' queues when the workers do not see it (offered one they cannot
    find, as on another machine)."""
    from dicomwire import cluster, spooldir
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "99")
    monkeypatch.setenv("DICOMWIRE_DASK_CHUNK", "4")        # the output goes ahead in chunks
    files = []

    class Shared(spooldir.SharedDir):
        offer = property(lambda self: (self.path if through == "folder"
                                       else str(tmp_path / "elsewhere"), self.token))

        def close(self):
            files.extend(n for n in os.listdir(self.path) if n.startswith("part"))
            super().close()
    monkeypatch.setattr(cluster, "SharedDir", Shared)
    src, every, drop, _split = SETS[name]
    folder = cut(src, tmp_path / "set", max(3, every // 2), drop)
    compare(cli, folder, tmp_path, "--dask", scheduler, commands=EACH_OUTPUT)
    assert bool(files) == (through == "folder")


@pytest.mark.parametrize("name", ["sample-7", "get-subops", "lossy", "mid-stream"])
def test_runs_cut_inside_files(cli, scheduler, tmp_path, monkeypatch, name):
    """Classic pcap files cut between runs at a record (the runs' bytes
    even, one big file shared): one run ends before the first record that
    does not end by the cut, the next begins there, numbered on from the
    client's count; streams cross the cut as they cross a file's end."""
    from dicomwire import cluster, runplan
    monkeypatch.setattr(runplan, "MIN_PIECE", 1)         # the captures are small
    # The plan these sets were cut for: at 1/256 a C-GET's sub-operations
    # cross a run's end in get-subops, and the set is read in one process
    # (the output is the same; this test is about merged cuts).
    monkeypatch.setattr(runplan, "TAIL", 128)
    plans = []
    monkeypatch.setattr(cluster, "plan", lambda *a: plans.append(runplan.plan(*a)) or plans[-1])
    src, every, drop, _split = SETS[name]
    folder = cut(src, tmp_path / "set", every, drop, fmt="pcap")
    compare(cli, folder, tmp_path / "two", "--dask", scheduler)      # the plan for two workers
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "5")
    compare(cli, folder, tmp_path / "five", "--dask", scheduler, commands=EACH_OUTPUT)
    one = sorted(folder.iterdir())[0]
    compare(cli, one, tmp_path / "one", "--dask", scheduler,         # one file, five runs
            commands=EACH_OUTPUT)
    assert all(any(s is not None for s in stops) for _runs, stops in plans)


def test_a_file_the_count_reads_otherwise_than_the_reader(cli, scheduler, tmp_path,
                                                          monkeypatch):
    """A record over the reader's limit (16 MiB) that the count walks over
    (it only stops at 1 GiB): the run holding it reads fewer frames than
    counted, so the base of the next run, started beside it from the count,
    is wrong; the client sees that (framebase.Bases.check_seams) and reads
    the set in one process. (A run submitted after the one before ended is numbered
    from the frames that one read.)"""
    import struct
    from dicomwire.capsource import MAX_RECORD
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "3")
    data = SAMPLE.read_bytes()
    head, records, pos = data[:24], [], 24
    while pos < len(data):
        end = pos + 16 + struct.unpack_from("<I", data, pos + 8)[0]
        records.append(data[pos:end])
        pos = end
    folder = tmp_path / "set"
    folder.mkdir()
    third = len(records) // 3
    junk = struct.pack("<IIII", 0, 0, MAX_RECORD + 1, MAX_RECORD + 1) + bytes(MAX_RECORD + 1)
    # In the first file: the second run starts beside the first, from the count.
    parts = (records[:third] + [junk] + records[:5], records[third:2 * third],
             records[2 * third:])
    for i, recs in enumerate(parts):
        (folder / f"ring{i}.pcap").write_bytes(head + b"".join(recs))
    compare(cli, folder, tmp_path, "--dask", scheduler, split=False, commands=EACH_OUTPUT)
    assert "did not read the frames" in cli("show", folder, "--dask", scheduler).stderr


def test_a_later_run_counts_a_stream_it_sees_begin_mid_stream(cli, scheduler, tmp_path,
                                                               monkeypatch):
    """A stream a run sees begin mid-stream is parked there (counted, not
    dissected: the earlier run that follows it through dissects it once).
    One that no earlier run saw, here stream 2 with its handshake not
    captured and beginning in a later file, cannot be merged: the set is
    read in one process, with the same output. Streams no dissector may
    take (all of them for ``streams``) are not parked."""
    from dicomwire import merge
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "99")
    streams = merge._streams
    seen = []

    def noted(parts):
        seen.extend((p.part, s.first_frame, s.parked) for p in parts for s in p.streams)
        return streams(parts)
    monkeypatch.setattr(merge, "_streams", noted)
    compare(cli, cut(SAMPLE, tmp_path / "set", 3), tmp_path, "--dask", scheduler,
            commands=EACH_OUTPUT)
    parked = [x for x in seen if x[2]]
    assert parked and all(k > 0 for k, _f, _p in parked)
    folder = cut(SAMPLE, tmp_path / "lossy", 3, "56-58")
    compare(cli, folder, tmp_path / "lossy", "--dask", scheduler, split=None,
            commands=EACH_OUTPUT)
    assert NOTE in cli("show", folder, "--dask", scheduler).stderr
    # streams dissects nothing: nothing is parked, the parts are merged.
    assert NOTE not in cli("streams", folder, "--dask", scheduler).stderr


FILTERS = ("dicom.pdu.type == 4", 'PatientName contains "A"', "frame.time_relative > 0.3",
           "SOPClassUID", "dicom.cmd.field == 1 && frame.number > 20")


@pytest.mark.parametrize("name", ["sample-7", "mid-stream"])
def test_show_with_a_display_filter(cli, scheduler, tmp_path, name):
    """-Y on PDU, command, data set and frame fields (show's matcher travels
    with the renderer that holds it, its filter compiled again): the same
    PDUs as one process."""
    src, every, drop, _split = SETS[name]
    folder = cut(src, tmp_path / "set", every, drop)
    for text in FILTERS:
        want = cli("show", "-Y", text, folder)
        got = cli("show", "-Y", text, folder, "--dask", scheduler)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout), text
        assert NOTE not in got.stderr, text
    assert any(cli("show", "-Y", text, folder).stdout for text in FILTERS)


def test_export_options_and_folders(cli, scheduler, tmp_path):
    """--name with folders, --commands, --min-size 0, --no-meta: the same tree."""
    folder = cut(SAMPLE, tmp_path / "set", 9)
    opts = ("--name", "{calling}/{command}/{frame:06d}-{n}-{what}", "--commands",
            "--min-size", "0", "--no-meta")
    one = cli("export", folder, "-o", tmp_path / "one", *opts, ok=True)
    got = cli("export", folder, "-o", tmp_path / "dask", *opts, "--dask", scheduler, ok=True)
    assert got.stdout.replace("dask", "one") == one.stdout and NOTE not in got.stderr
    tree = {str(p.relative_to(tmp_path / "one")): p.read_bytes()
            for p in sorted((tmp_path / "one").rglob("*")) if p.is_file()}
    assert tree and tree == {str(p.relative_to(tmp_path / "dask")): p.read_bytes()
                             for p in sorted((tmp_path / "dask").rglob("*")) if p.is_file()}


def test_damaged_files_in_a_set(cli, scheduler, tmp_path):
    """A file that is no capture and one cut mid-record among the others:
    the same warnings, findings and exit status as one process."""
    folder = cut(SAMPLE, tmp_path / "set", 12)
    files = sorted(folder.iterdir())
    (folder / "junk.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 40)
    files[2].write_bytes(files[2].read_bytes()[:-9])
    args = [*files, folder / "junk.pcap"]
    for cmd in (("show",), ("expert", "-T", "json"), ("streams", "--fail-on", "problems")):
        want = cli(*cmd, *args)
        got = cli(*cmd, *args, "--dask", scheduler)
        assert (got.returncode, got.stdout, got.stderr) == \
            (want.returncode, want.stdout, want.stderr), cmd
        assert "junk.pcap" in got.stderr and "cut" in got.stderr


def test_a_cmove_across_runs_is_read_in_one_process(cli, scheduler, tmp_path, monkeypatch):
    """C-MOVE callbacks come on another association, which another worker
    may read: the qr check says so (dicomwire_handover_pending) and the set
    is read in one process, with the same output."""
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "99")         # a run ends inside the C-MOVE
    folder = cut(CORPUS / "move_with_callback.pcap", tmp_path / "set", 8)
    want = outputs(cli, folder, tmp_path / "one")
    got = outputs(cli, folder, tmp_path / "dask", "--dask", scheduler)
    assert {k: v[:2] for k, v in got.items() if k != "files"} == \
        {k: v[:2] for k, v in want.items() if k != "files"}
    assert got["files"] == want["files"]
    assert got[("show",)][2]                        # the note on stderr


def test_a_cmove_seen_while_following_a_stream_makes_its_run_unsafe(tmp_path, monkeypatch):
    """A run that follows an association through the next runs' files reads
    only that association there: a C-MOVE it sees then has callbacks it
    cannot see, so the run says so (dicomwire_handover_pending, asked again
    after the follow-through); the run whose files hold the C-MOVE parks
    that association and never sees it. In process, each run in turn."""
    from dicomwire import cli, handover, plugpack
    monkeypatch.setenv("DICOMWIRE_DASK_RUNS", "99")
    folder = cut(CORPUS / "move_with_callback.pcap", tmp_path / "set", 3)
    reasons = {}

    def submit(client, layout, workers, config, packed, first_ts, run_id, counting):
        runs, _stops = layout                    # (no cuts inside pcapng files)
        base = 0                                 # each run numbered on from the one before
        for k in range(len(runs)):
            task = dict(config=config, plugins=plugpack.unpack(packed), part=k, runs=runs,
                        first_ts=first_ts, run_id=run_id, queue=None, chunk=0, send=None,
                        base=base)
            part = handover.run_part(task)
            reasons[k], base = part.unsafe, base + part.frames
        raise KeyboardInterrupt                  # enough: the runs' own reasons are the test
                                                 # (the command line ends as on Ctrl-C)
    in_process_cluster(monkeypatch, submit, workers=2)
    cli.main(["expert", "-q", str(folder), "--dask", "tcp://127.0.0.1:1"])
    followed = [k for k, rs in reasons.items() if any("followed into the next run" in r
                                                      for r in rs)]
    assert followed, reasons


def test_a_local_cluster_without_address(cli, tmp_path):
    folder = cut(SAMPLE, tmp_path / "set", 15)
    want = cli("show", "-V", folder, ok=True).stdout
    r = cli("show", "-V", folder, "--dask", ok=True)
    assert r.stdout == want and NOTE not in r.stderr


LOCAL_START = """
import sys
sys.stdout.write("buffered before the workers start\\n")      # (a pipe: not yet written)
import dask
from dicomwire import cluster, localcluster
client = cluster.connect(cluster.LOCAL)
print(dask.config.get(localcluster.METHOD), len(client.scheduler_info()["workers"]))
cluster._close(client)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="forked on Linux only")
def test_a_local_clusters_workers_are_forked_and_write_nothing_twice():
    """The LocalCluster forks its workers (Dask's default spawns them), and
    what the command had buffered for stdout is written once, not again by
    each worker as it ends; a method the user chose is kept."""
    r = subprocess.run([sys.executable, "-c", LOCAL_START], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["buffered before the workers start",
                                     f"fork {os.cpu_count()}"]
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="spawn")
    r = subprocess.run([sys.executable, "-c", LOCAL_START], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.stdout.splitlines()[-1] == f"spawn {os.cpu_count()}", r.stderr


def test_bad_cluster_input_is_one_clear_error(cli, tmp_path, monkeypatch):
    folder = cut(SAMPLE, tmp_path / "set", 30)
    r = dw("show", folder, "--dask", f"tcp://127.0.0.1:{free_port()}")
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr
    assert not r.stdout
    for cmd in ("annotate", "report", "deidentify"):
        r = cli(cmd, SAMPLE if cmd in ("report", "deidentify") else folder, "-o",
                tmp_path / "x", "--dask")
        assert r.returncode == 2 and f"--dask is not supported by {cmd}" in r.stderr
    r = cli("expert", "-Y", "dicom.pdu.type == 4", folder, "--dask")
    assert r.returncode == 2 and "expert -Y needs one process" in r.stderr
    r = cli("show", "-Y", "dicom.assoc == 1", folder, "--dask")
    assert r.returncode == 2 and "-Y on dicom.stream or dicom.assoc" in r.stderr
    monkeypatch.setitem(sys.modules, "dask.distributed", None)      # not installed
    r = cli("show", folder, "--dask")
    assert r.returncode == 2 and "pip install 'dicomwire[dask]'" in r.stderr


def one_worker_cluster(tmp_path, plugin: str, source: str):
    """A scheduler and one worker whose environment sets DICOMWIRE_<PLUGIN>
    and can import the plugin module ``plugin`` (``source``, in tmp_path):
    (processes, address, the environment a client needs), once the worker
    has joined."""
    (tmp_path / f"{plugin}.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    procs, address = start_cluster(1, subprocess.DEVNULL, env=env, group=True,
                                   worker_env=dict(env, **{f"DICOMWIRE_{plugin.upper()}": "1"}))
    return procs, address, env


def test_a_worker_that_dies_is_one_clear_error(tmp_path):
    """A worker process killed during its run (a plugin that exits there):
    after Dask's retries, one error, status 2, nothing on stdout."""
    folder = cut(SAMPLE, tmp_path / "set", 30)
    procs, address, _env = one_worker_cluster(
        tmp_path, "killer", "import os\nfrom dicomwire.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef dicomwire_capture_start(capture):\n"
        "    if os.environ.get('DICOMWIRE_KILLER'):\n"
        "        os._exit(3)\n")
    try:
        r = dw("show", folder, "-p", "killer", "--dask", address,
               env={"PYTHONPATH": str(tmp_path)}, timeout=300)
    finally:
        _stop(procs, group=True)
    assert r.returncode == 2 and "worker was lost" in r.stderr
    assert not r.stdout


def test_a_scheduler_that_dies_is_one_clear_error(tmp_path):
    """The scheduler killed while a part runs (the worker's plugin waits
    there): the client does not wait on it (nor on giving its tick back),
    one error, status 2, nothing on stdout."""
    folder = cut(SAMPLE, tmp_path / "set", 30)
    started = tmp_path / "started"
    procs, address, env = one_worker_cluster(
        tmp_path, "waiter", "import os, pathlib, time\nfrom dicomwire.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef dicomwire_capture_start(capture):\n"
        "    if os.environ.get('DICOMWIRE_WAITER'):\n"
        f"        pathlib.Path({str(started)!r}).touch()\n"
        "        time.sleep(60)\n")
    client = None
    try:
        client = subprocess.Popen([sys.executable, "-m", "dicomwire", "show", str(folder),
                                   "-p", "waiter", "--dask", address],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        deadline = time.monotonic() + 60
        while not started.exists() and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), client.communicate()[1]
        procs[0].kill()
        procs[0].wait()
        t0 = time.monotonic()
        out, err = client.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        _stop(procs, group=True)
    assert client.returncode == 2 and "Traceback" not in err, err
    assert "the connection to the Dask scheduler was lost during the run" in err
    assert not out
    assert took < 45, took


def test_the_workers_watchers_run_again_after_a_run(cli, scheduler, tmp_path):
    """Dask's task profiler and tick monitor are paused while parts run
    (watchers.WATCHERS), on every worker and its nanny, and the
    scheduler's tick while the run is on; all given back after."""
    from dask.distributed import Client
    from dicomwire.watchers import WATCHERS
    folder = cut(SAMPLE, tmp_path / "set", 20)

    def pauses(dask_worker=None, dask_scheduler=None):
        return getattr(dask_worker or dask_scheduler, "dicomwire_pauses", 0)
    with Client(scheduler, timeout="30s") as c:
        before = c.run(pauses, nanny=True)
        scheduler_before = c.run_on_scheduler(pauses)
    cli("show", folder, "--dask", scheduler, ok=True)

    def running(dask_worker):
        return sorted(n for n in WATCHERS if n in dask_worker.periodic_callbacks
                      and dask_worker.periodic_callbacks[n].is_running())
    with Client(scheduler, timeout="30s") as c:
        workers = c.run(running)
        nannies = c.run(running, nanny=True)
        paused = c.run(pauses, nanny=True)
        ticking = c.run_on_scheduler(lambda dask_scheduler: (
            running(dask_scheduler), pauses(dask_scheduler=dask_scheduler),
            dask_scheduler.dicomwire_runs))
    assert ticking == (["tick", "ticks"], scheduler_before + 1, 0)
    assert workers and all(names == sorted(WATCHERS) for names in workers.values())
    assert len(nannies) == len(workers)
    assert all(names == ["tick", "ticks"] for names in nannies.values())   # (no profiler)
    # The nannies were paused during the run (each whose worker ran a part).
    assert sum(paused.values()) > sum(before.values())


def test_relative_paths_are_the_clients(cli, scheduler, tmp_path, monkeypatch):
    """Capture files and -o named relative to the client's folder: the
    workers (started elsewhere) read and write the same files, and the
    output names them as one process does."""
    cut(SAMPLE, tmp_path / "set", 9)
    monkeypatch.chdir(tmp_path)
    one = cli("export", "set", "-o", "one", ok=True)
    got = cli("export", "set", "-o", "one2", "--dask", scheduler, ok=True)
    assert got.stdout.replace("one2", "one") == one.stdout and NOTE not in got.stderr
    tree = {p.name: p.read_bytes() for p in sorted(Path("one").iterdir())}
    assert tree and tree == {p.name: p.read_bytes() for p in sorted(Path("one2").iterdir())}
    files = sorted(str(p) for p in Path("set").iterdir())
    shown = cli("show", *files, ok=True).stdout
    assert shown and cli("show", *files, "--dask", scheduler, ok=True).stdout == shown
    shown = cli("show", files[1], ok=True).stdout
    assert shown and cli("show", files[1], "--dask", scheduler, ok=True).stdout == shown
