"""The HTML report exporter, imported as ``dicomwire.exporters.report``:
``dicomwire report CAPTURE -o report.html``.

:class:`ReportCollector` (``collect.py``) is the plugin that keeps what the
page shows during the pass and builds its model at the end (``build.py``,
with ``events.py``, ``queries.py``, ``findings.py``, ``layout.py``,
``charts.py``; ``phi.py`` keeps patient data out unless asked);
:func:`write_report` (``render.py``) writes the one self-contained page:
the Jinja2 template of ``templates/`` with the style sheet and script of
``static/`` inline and the model embedded as JSON, nothing fetched when it
is opened.
"""

from dicomwire.exporters.report.collect import ReportCollector  # noqa: F401
from dicomwire.exporters.report.render import page_html, write_report  # noqa: F401
