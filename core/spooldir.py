"""A ``--dask`` part's output through a folder the client and its worker
both see (issue 18), instead of through the scheduler.

The client makes a folder with a token in it (:class:`SharedDir`) and
offers it in every task. A worker that reads the same token there
(:func:`writer`: the same machine, or a file system both mount) appends
its chunks (:class:`dicomwire.outbox.Outbox`'s) to a file of its own in
it; the merge reads them back from that file
(:meth:`dicomwire.outbox.Spool.written`). A
worker that does not see it sends them through the part's Dask queue, as
before. On one machine this takes the scheduler off the output's way:
every chunk was received, kept and sent on by the scheduler, then received
and spooled by the client (`show` of 14 GB: 75 MB of chunks).

Each attempt writes a file of its own: a task Dask runs again (a worker
lost) writes another, and the part's result names the one its chunks are
in (``spooled``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from dicomwire.outbox import LENGTH, OutputLost

TOKEN_FILE = "token"
PREFIX = "dicomwire-spool-"
PID_FILE = "client"            # the client's process id: a folder it left behind is removed


class SharedDir:
    """The client's folder for the parts' chunk files (removed by
    :meth:`close`, with what the workers wrote). The files have names (the
    client's spools of the queue path have none): a client killed in its
    run leaves its folder, which the next client on the machine removes
    once that client's process is gone (:func:`remove_left`)."""

    def __init__(self):
        remove_left()
        self.path = tempfile.mkdtemp(prefix=PREFIX)
        self.token = os.urandom(16).hex()
        try:
            for name, text in ((PID_FILE, str(os.getpid())), (TOKEN_FILE, self.token)):
                with open(os.path.join(self.path, name), "w") as f:
                    f.write(text)
        except BaseException:
            self.close()
            raise

    @property
    def offer(self) -> tuple[str, str]:
        """What a task carries: (folder, token)."""
        return self.path, self.token

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def remove_left(folder: str | None = None) -> None:
    """Remove the folders of clients that ended without removing theirs
    (killed; their process id no longer runs here)."""
    folder = folder or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(os.path.join(path, PID_FILE)) as f:
                pid = int(f.read())
            os.kill(pid, 0)
        except ProcessLookupError:           # its client is gone
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):        # not ours to judge (another user's, being made)
            continue


def writer(offer, part: int):
    """A :class:`FileSend` of its own (a file per attempt) when this
    process sees the client's folder (``offer``: :attr:`SharedDir.offer`,
    or None), else None."""
    if not offer:
        return None
    folder, token = offer
    try:
        with open(os.path.join(folder, TOKEN_FILE)) as f:
            if f.read() != token:
                return None
        return FileSend(os.path.join(folder, f"part{part}-{os.urandom(8).hex()}"))
    except OSError:                       # not there, not readable: another machine
        return None


class FileSend:
    """A part's chunks appended to a file, each after its length. A write
    that fails (a full disk, the client's folder gone) is
    :class:`OutputLost`."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                          0o644)
        # (the folder is the client's own: 0700)

    def __call__(self, chunk: bytes):
        try:
            for data in (LENGTH.pack(len(chunk)), chunk):
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
        except OSError as e:
            raise OutputLost(f"output could not be written for the client ({e})") from e

    def close(self, raising: bool = True):
        """(As :meth:`dicomwire.outbox.SendAhead.close`: every chunk is
        written by the time a call returns.)"""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


