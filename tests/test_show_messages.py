"""show's -Y and -T fields as users write them (issue 19): filters about a
message ("a C-STORE of a CT") match where its data set completes, with its
command fields carried over; -T fields leaves out PDUs that carry none of
the requested fields unless --empty-rows."""

from support import SAMPLE


def test_a_filter_on_command_and_data_set_matches_the_completing_pdu(cli):
    rc, out, _ = cli("show", "-Y", 'dicom.cmd.name == "C-STORE-RQ" && Modality == CT', SAMPLE,
                     ok=True)
    lines = out.splitlines()
    assert len(lines) == 1 and "Data Set" in lines[0]
    rc, mr, _ = cli("show", "-Y", 'dicom.cmd.name == "C-STORE-RQ" && Modality == MR', SAMPLE,
                    ok=True)
    rc, every, _ = cli("show", "-Y", "Modality", SAMPLE, ok=True)
    assert mr and len(mr.splitlines()) + 1 <= len(every.splitlines())
    # Command fields alone keep selecting the command PDUs only.
    rc, cmds, _ = cli("show", "-Y", 'dicom.cmd.name == "C-STORE-RQ"', SAMPLE, ok=True)
    assert all("C-STORE-RQ" in line for line in cmds.splitlines())


def test_fields_rows_skip_pdus_without_any_requested_field(cli):
    args = ("show", "-T", "fields", "-e", "frame.number", "-e", "dicom.cmd.name", SAMPLE)
    rc, out, _ = cli(*args, ok=True)
    rows = [r.split("\t") for r in out.splitlines()]
    assert rows and all(r[1] for r in rows)
    rc, every, _ = cli(*args, "--empty-rows", ok=True)
    assert len(every.splitlines()) > len(rows)
    assert any(r.split("\t")[1] == "" for r in every.splitlines())
    # Only always-present fields asked for: every PDU is a row.
    rc, frames, _ = cli("show", "-T", "fields", "-e", "frame.number", SAMPLE, ok=True)
    assert len(frames.splitlines()) == len(every.splitlines())
