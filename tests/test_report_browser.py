"""The report page in a real browser (Debian's chromium, headless, through
playwright): it loads with no console error and fetches nothing, each
ladder has one arrow per event of the model, the timeline one bar per
association, a finding's link jumps to its arrow, zoom moves the bars. A
screenshot of each page checked stays in the test's tmp folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import reportgen as rg
from browser import MISSING, Loaded, chromium
from dicomwire.exporters.report.render import unpack
from support import SAMPLE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"no browser: {MISSING}")]

CORPUS = sorted((Path(__file__).parent / "corpus" / "captures").glob("*.pcap"))


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def report(cli, capture, out, *opts):
    cli("report", capture, "-o", out, *opts, ok=True)
    text = out.read_text(encoding="utf-8")
    return unpack(json.loads(re.search(r'id="model">(.*?)</script>', text, re.S).group(1)))


def in_view(page, selector) -> bool:
    return page.evaluate("""(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
        return r.bottom > 0 && r.top < window.innerHeight && r.height > 0; }""", selector)


def test_sample_page_ladders_timeline_and_links(cli, tmp_path, browser):
    out = tmp_path / "sample.html"
    model = report(cli, SAMPLE, out)
    view = Loaded(browser, out)
    page = view.page
    assert page.locator("#timeline-svg rect.bar").count() == len(model["associations"])
    for a in model["associations"]:
        page.evaluate("(id) => { location.hash = '#assoc-' + id; }", a["id"])
        arrows = page.locator(f"#ladder-{a['id']} g.arrow")
        assert arrows.count() == len(a["events"])
        ids = arrows.evaluate_all("els => els.map(e => e.id)")
        assert ids == [f"ev-{a['id']}-{ev['seq']}" for ev in a["events"]]
        frames = arrows.evaluate_all("els => els.map(e => e.textContent)")
        assert all(f"frame {ev['frames'][0]}" in text for ev, text in zip(a["events"], frames))
    # A finding's link jumps to the arrow it sits on.
    reject = next(f for f in model["findings"] if f["name"] == "dicom.assoc.reject")
    target = f"ev-{reject['assoc']}-{reject['event']}"
    page.evaluate("() => { location.hash = '#summary'; }")
    page.locator(f"#finding-{reject['n']} a.finding-link").click()
    assert page.evaluate("location.hash") == "#" + target
    page.wait_for_function("(id) => document.getElementById(id).classList.contains('target')",
                           arg=target)
    assert in_view(page, "#" + target)
    assert "A-ASSOCIATE-RJ" in page.locator("#" + target).text_content()
    # And a finding's marker on the arrow leads back to the list.
    page.locator(f"#{target} circle.fmark").click()
    assert page.evaluate("location.hash") == f"#finding-{reject['n']}"
    assert in_view(page, f"#finding-{reject['n']}")
    page.screenshot(path=str(tmp_path / "sample.png"), full_page=True)
    assert view.problems == []


def test_address_given_at_load_opens_the_arrow(cli, tmp_path, browser):
    out = tmp_path / "sample.html"
    report(cli, SAMPLE, out)
    view = Loaded(browser, out, fragment="#ev-0-12")
    view.page.wait_for_function("document.getElementById('ev-0-12').classList.contains('target')")
    assert in_view(view.page, "#ev-0-12")
    assert "C-FIND-RQ" in view.page.locator("#ev-0-12").text_content()
    assert view.problems == []


def test_zoom_and_pan_move_the_bars(cli, tmp_path, browser):
    out = tmp_path / "sample.html"
    report(cli, SAMPLE, out)
    page = Loaded(browser, out).page
    width = lambda: float(page.get_attribute("#tl-0", "width"))     # noqa: E731
    before = width()
    page.click("[data-zoom=in]")
    assert width() == pytest.approx(before * 2, rel=0.01)
    box = page.locator("#timeline-svg").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 10)
    x0 = float(page.get_attribute("#tl-0", "x"))
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 10)
    page.mouse.up()
    assert float(page.get_attribute("#tl-0", "x")) == pytest.approx(x0 + 100, abs=1)
    page.click("[data-zoom=reset]")
    assert width() == pytest.approx(before, rel=0.01)


def test_idle_marker_and_callback_link(cli, tmp_path, browser):
    cap = tmp_path / "idle.pcap"
    cap.write_bytes(rg.pcap(rg.timed(rg.association(rg.echo(1, pause=6.0), rg.echo(2)))))
    out = tmp_path / "idle.html"
    model = report(cli, cap, out)
    view = Loaded(browser, out, fragment="#idle-0-0")
    assert "waiting for the acceptor" in view.page.locator("#idle-0-0").text_content()
    assert view.page.locator("#ladder-0 g.marker").count() == len(model["associations"][0]["markers"])
    assert view.page.locator("#ladder-0 text.slow").count() == 1        # the slow response
    move = CORPUS[[p.stem for p in CORPUS].index("move_with_callback")]
    out = tmp_path / "move.html"
    report(cli, move, out)
    view2 = Loaded(browser, out)
    assert view2.page.locator("#timeline-svg path.cb-link").count() == 1
    assert view.problems == [] and view2.problems == []


def test_every_corpus_page_loads_cleanly(cli, tmp_path, browser):
    sealed = Path(__file__).parent / "corpus" / "tls" / "tls13_nokeys.pcap"   # no association
    for cap in [*CORPUS, sealed]:
        out = tmp_path / f"{cap.stem}.html"
        model = report(cli, cap, out)
        view = Loaded(browser, out)
        total = sum(len(a["events"]) for a in model["associations"])
        assert view.page.locator("g.arrow").count() == total, cap.stem      # all open
        assert view.problems == [], (cap.stem, view.problems)
        view.page.screenshot(path=str(tmp_path / f"{cap.stem}.png"))
        view.close()
