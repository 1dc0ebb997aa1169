"""Fuzz target: command set and data set decoding. Input: one byte (bits
0-1: transfer syntax; bit 2: a command set rather than a data set), then
the bytes. Command sets: decode_command reports problems, never raises, and
its elements tile what it read. Data sets: the structure walk raises only
DataSetError and stays inside the buffer; the decoded tree of ``show -V``,
display filter values and export's SOP UIDs never raise."""

from __future__ import annotations

from dicomwire.exporters.part10 import dataset_uids
from dicomwire.plugins.dicom import render_dataset
from dicomwire.plugins.dicom.fields import message_values
from dicomwire.plugins.dicom.model import Association, Message
from dicomwire.specs.dicom import dataset
from dicomwire.specs.dicom.command import decode_command
from dicomwire.tcp import Stream

SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99")
KEYWORDS = ["PatientName", "Modality", "SOPInstanceUID", "ContentSequence"]
_STREAM = Stream(0, (b"\x7f\0\0\1", 40000), (b"\x7f\0\0\1", 104), 1, 0, True)


def command(data: bytes) -> None:
    fields, elements, problems = decode_command(data)
    pos = 0
    for tag, kw, vr, off, length, _value in elements:
        assert off == pos and length >= 8, (off, pos, length)
        pos += length
    assert pos <= len(data) and (pos == len(data) or problems)
    assert all(isinstance(p, str) for p in problems)
    assert set(fields) <= {kw for _t, kw, *_ in elements}


def data_set(ts: str, data: bytes) -> None:
    if ts != SYNTAXES[3]:
        implicit, little = ts == SYNTAXES[0], ts != SYNTAXES[2]
        try:
            for off, tag, vr, length, voff, depth in dataset.walk(data, implicit, little):
                assert 0 <= off < voff <= len(data) and 0 <= depth <= 64
        except dataset.DataSetError as e:
            assert 0 <= e.offset <= len(data), (e.offset, len(data))
        err = dataset.check(data, implicit, little)
        assert err is None or isinstance(err, dataset.DataSetError)
    a = Association(_STREAM, 0, True)
    a.context(1).transfer_syntax = ts
    m = Message(a, 0, 1, 1, 0)
    m.has_dataset = True
    m.add_data(data)
    try:
        text = render_dataset.dataset_tree(m, subtrees=bool(len(data) & 1), detail=bool(len(data) & 2))
        assert isinstance(text, str)
        message_values(m, KEYWORDS)
        dataset_uids(m)
    finally:
        m.release()


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 4:
        command(data[1:])
    else:
        data_set(SYNTAXES[data[0] & 3], data[1:])


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "dimse", *sys.argv[1:]])
