"""Debian's chromium, headless, driven by playwright: for the report's page
tests (test_report_browser.py) and its screenshot (make report-screenshot).

Never a browser that playwright downloads: ``/usr/bin/chromium`` (apt
package ``chromium``, which .ci/run installs). :data:`MISSING` says why the
browser cannot run here, or is empty.
"""

from __future__ import annotations

import contextlib
import os

CHROMIUM = "/usr/bin/chromium"


def missing() -> str:
    """Why the browser tests cannot run, or "" when they can."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing (pip install -e '.[test]')"
    return ""


MISSING = missing()


@contextlib.contextmanager
def chromium():
    """A headless chromium (playwright Browser) for the duration."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        # playwright starts it without its sandbox (chromium_sandbox=False):
        # CI runs as root, where the sandbox refuses to start.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Loaded:
    """A page opened on a report: ``page``, and what went wrong while it
    loaded and since: console errors and warnings, uncaught exceptions,
    requests for anything but the file itself (``problems``)."""

    def __init__(self, browser, path, fragment="", width=1280, height=900):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.problems: list[str] = []
        url = f"file://{os.path.abspath(path)}"
        page = self.page
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        page.on("request", lambda r: self.problems.append(f"request: {r.url}")
                if not r.url.startswith(url) else None)
        page.goto(url + fragment)
        page.wait_for_selector("body[data-ready]", timeout=60_000)
        self.url = url

    def close(self):
        self.page.close()
