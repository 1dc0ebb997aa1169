"""Preferences: Wireshark's DICOM names, config file, -o, flags, precedence."""

import re

import pytest

from support import SAMPLE, dw, dw_pipe


def prefs(*args, cwd=None):
    p = dw("prefs", *args, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return {ln.split()[0]: ln.split()[1:3] for ln in p.stdout.splitlines()}


def test_defaults_and_wireshark_names(tmp_path):
    got = prefs(cwd=tmp_path)
    assert {"dicom.tcp.port", "dicom.heuristic", "dicom.export_header", "dicom.export_minsize",
            "dicom.seq_tree", "dicom.tag_tree", "dicom.pdv_reassemble"} <= set(got)
    assert got["dicom.tcp.port"] == ["104,11112", "default"]
    assert got["dicom.export_minsize"] == ["10", "default"]


def test_precedence_file_then_dash_o_then_flag(tmp_path):
    (tmp_path / "dicomwire.toml").write_text(
        '[dicom]\nheuristic = false\nexport_minsize = 0\n"tcp.port" = "104,4242"\n')
    got = prefs(cwd=tmp_path)
    assert got["dicom.heuristic"][0] == "FALSE" and got["dicom.heuristic"][1] == "file"
    assert got["dicom.tcp.port"][0] == "104,4242"
    got = prefs("-o", "dicom.tcp.port:11112", cwd=tmp_path)
    assert got["dicom.tcp.port"] == ["11112", "-o"]
    got = prefs("-o", "dicom.tcp.port:11112", "--ports", "3200", cwd=tmp_path)
    assert got["dicom.tcp.port"] == ["3200", "flag"]


def test_pyproject_tool_section(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.dicomwire]\n"dicom.tag_tree" = true\n')
    assert prefs(cwd=tmp_path)["dicom.tag_tree"][:2] == ["TRUE", "file"]


def test_bad_names_and_values_are_usage_errors(tmp_path):
    for args, words in ((["-o", "dicom.nope:1"], "unknown preference 'dicom.nope'"),
                        (["-o", "dicom.heuristic:maybe"], "expected TRUE or FALSE"),
                        (["-o", "dicom.export_minsize:ten"], "expected a number"),
                        (["-o", "dicom.tcp.port:abc"], "expected ports")):
        p = dw("prefs", *args, cwd=tmp_path)
        assert p.returncode == 2 and words in p.stderr, (args, p.stderr)
    (tmp_path / "dicomwire.toml").write_text("not = [valid")
    p = dw("prefs", cwd=tmp_path)
    assert p.returncode == 2 and "dicomwire.toml" in p.stderr


def test_preferences_change_what_commands_do(tmp_path):
    # Off the ports and no heuristic: nothing is DICOM.
    p = dw("show", SAMPLE, "-o", "dicom.tcp.port:104", "-o", "dicom.heuristic:FALSE")
    assert p.returncode == 0 and p.stdout == ""
    # No meta header on export, through the preference.
    out = tmp_path / "bare"
    dw("export", SAMPLE, "-o", out, "-o", "dicom.export_header:FALSE")
    assert all(f.read_bytes()[128:132] != b"DICM" for f in out.iterdir())
    # Export minimum size: 0 lists command sets too.
    p = dw("export", SAMPLE, "--list", "-o", "dicom.export_minsize:0")
    assert "C-ECHO-RQ" in p.stdout
    # PDVs not merged: -V lists the fragments, decodes no data set.
    whole = dw("show", SAMPLE, "-V").stdout
    frags = dw("show", SAMPLE, "-V", "-o", "dicom.pdv_reassemble:FALSE").stdout
    tree = re.compile(r"^ {8}Data Set \(", re.M)          # the decoded data set's head
    assert tree.search(whole) and not tree.search(frags)
    assert frags.count("PDV: context") == whole.count("PDV: context")


def test_fields_listing_and_show_fields_output():
    p = dw("fields")
    rows = [ln.split("\t") for ln in p.stdout.splitlines()]
    names = [r[1] for r in rows if r[0] == "F"]
    assert len(names) == len(set(names))
    assert {"dicom.pdu.type", "dicom.assoc.ae.called", "dicom.pctx.id", "dicom.pdv.flags",
            "dicom.tag", "dicom.tag.vr", "dicom.tag.value.str"} <= set(names)
    assert any(r[0] == "E" and r[1] == "dicom.assoc.reject" for r in rows)
    p = dw("show", SAMPLE, "-T", "fields", "-e", "frame.number", "-e", "dicom.pdu.type",
           "-e", "dicom.assoc.ae.called", "-e", "dicom.cmd.name", "-e", "dicom.cmd.status")
    lines = [ln.split("\t") for ln in p.stdout.splitlines()]
    assert lines[0] == ["4", "1", "STORESCP", "", ""]
    assert ["9", "4", "STORESCP", "C-ECHO-RSP", "0"] in lines   # the association's AE
    p = dw("show", SAMPLE, "-T", "fields", "-e", "dicom.nope")
    assert p.returncode == 2 and "unknown field 'dicom.nope'" in p.stderr


def test_output_to_a_closed_pipe_is_quiet():
    p = dw_pipe("show", SAMPLE, into="head -1")
    assert p.stderr == "" and len(p.stdout.splitlines()) == 1


def show_y(flt):
    p = dw("show", SAMPLE, "-Y", flt)
    assert p.returncode == 0, p.stderr
    return [int(ln.split()[0]) for ln in p.stdout.splitlines()]


@pytest.mark.slow
def test_display_filters_on_show():
    assert show_y('dicom.cmd.name == "C-STORE-RQ" && dicom.assoc.ae.calling == MODALITY') \
        == [10, 18, 23, 28]
    assert show_y("dicom.pdu.type == 3") == [51]
    assert show_y("dicom.pdu.type in {3 7} || dicom.cmd.status >= 0xA000") == [37, 39, 39, 51]
    assert show_y("dicom.pdu.type in {3 7} || (dicom.cmd.status >= 0xA000 && "
                  "dicom.cmd.status < 0xFF00)") == [51]
    assert show_y("Modality == CT")[0] == 15           # a data set attribute by keyword
    assert show_y('dicom.summary matches "release"') == [41, 42, 72, 73]
    assert show_y("!dicom.pdv.ctx and dicom.pdu.type eq 4") == []
    # MR Image Storage: requests and responses, both associations.
    assert show_y("dicom.cmd.sop_class == 1.2.840.10008.5.1.4.1.1.4") == [18, 22, 65, 71]
    assert show_y('dicom.cmd.sop_class contains "1.2.840.10008.5.1.4.1.1.481"') == [23, 27]
    p = dw("show", SAMPLE, "-Y", "dicom.pdu.type = 3")
    assert p.returncode == 2 and "syntax error at column 16" in p.stderr
    assert p.stderr.splitlines()[-1].strip() == "^"
    p = dw("show", SAMPLE, "-Y", "dicom.nosuch == 1")
    assert p.returncode == 2 and "unknown field 'dicom.nosuch'" in p.stderr


def test_display_filters_on_expert_and_annotate(tmp_path):
    p = dw("expert", SAMPLE, "-Y", "dicom.pdu.type == 3", "-T", "json")
    import json
    names = [i["name"] for i in json.loads(p.stdout)["infos"]]
    assert names == ["dicom.assoc.reject"]
    p = dw("expert", SAMPLE, "-Y", "expert.severity == chat", "-T", "json")
    assert {i["severity"] for i in json.loads(p.stdout)["infos"]} == {"chat"}
    out = tmp_path / "y.pcapng"
    p = dw("annotate", SAMPLE, "-o", out, "-Y", 'dicom.cmd.name == "C-ECHO-RQ" || dicom.pdu.type == 3')
    assert p.returncode == 0 and "2 frame(s) written" in p.stdout
    from dicomwire.capture import open_capture
    r = open_capture(str(out))
    frames = list(r.frames())
    assert len(frames) == 2 and "C-ECHO-RQ" in r.comments[1][0] and "reject" in r.comments[2][0]


def test_association_duration_field():
    p = dw("show", SAMPLE, "-T", "fields", "-e", "frame.number", "-e", "dicom.assoc.duration",
           "-Y", "dicom.pdu.type == 6")
    rows = [ln.split("\t") for ln in p.stdout.splitlines()]
    assert [r[0] for r in rows] == ["42", "73"]
    assert 0.3 < float(rows[0][1]) < 0.5 and 0 < float(rows[1][1]) < 0.2


def test_data_set_elements_as_dicom_tag_fields():
    # The C-STORE data set of frame 15 (CT, pydicom's CT_small): its elements
    # join the command set's under Wireshark's dicom.tag names.
    p = dw("show", SAMPLE, "-T", "fields", "-e", "frame.number", "-e", "dicom.tag",
           "-e", "dicom.tag.vr", "-e", "dicom.tag.value.str", "-e", "dicom.tag.offset",
           "-Y", "frame.number == 15")
    assert p.returncode == 0, p.stderr
    frame, tags, vrs, values, offsets = p.stdout.rstrip("\n").split("\t")
    tags, offsets = tags.split(","), [int(x) for x in offsets.split(",")]
    assert frame == "15" and "0x00080018" in tags and "0x7fe00010" in tags
    assert "UI" in vrs.split(",") and "CT" in values.split(",")
    assert offsets[0] == 0 and offsets == sorted(offsets)
    # Filters see them too: element present, and value by VR.
    assert show_y("dicom.tag == 0x00280010 && dicom.tag.value.16u == 128")[0] == 15
    assert show_y("dicom.tag == 0x7fe00010 && dicom.pdu.type == 1") == []


def test_byte_offsets_of_items_and_pdvs_point_at_their_bytes(tmp_path):
    import json

    import capgen as g
    from dicomgen import valid_session
    steps = valid_session()
    client = b"".join(b for d, b in steps if d == 0)
    pk = g.conversation("10.0.0.1", "10.0.0.2", 40000, 104, [b for d, b in steps if d == 0],
                        [b for d, b in steps if d == 1])
    cap = tmp_path / "s.pcap"
    cap.write_bytes(g.pcap([(i * 1000, g.ethernet(x)) for i, x in enumerate(pk)]))
    p = dw("show", cap, "-T", "jsonl")
    docs = [json.loads(ln) for ln in p.stdout.splitlines()]
    seen = 0
    for doc in docs:
        if doc["src"].startswith("10.0.0.1") and doc["pdu_type"] == 1:
            def check(items):
                nonlocal seen
                for it in items:
                    at = it["offset"]
                    assert client[at] == it["item_type"]
                    assert int.from_bytes(client[at + 2:at + 4], "big") == it["length"]
                    seen += 1
                    check((it.get("body") or {}).get("sub_items", []) if
                          isinstance(it.get("body"), dict) else [])
            check(doc["fields"]["body"]["variable_items"])
        for pdv in doc.get("pdvs", []) if doc["src"].startswith("10.0.0.1") else []:
            at = pdv["offset"]
            assert int.from_bytes(client[at:at + 4], "big") == pdv["length"]
            assert client[at + 4] == pdv["context_id"] and client[at + 5] == pdv["flags"]
            seen += 1
    assert seen > 10
    v = dw("show", cap, "-V").stdout
    assert "(stream offset 74)" in v and re.search(r"PDV: context 1, .*, stream offset \d+", v)
