# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SAMPLE := core/samples/sample.pcap

# setup.py and core/_fastwalk.c: the optional compiled walk is rebuilt when they change.
$(VENV)/.installed: pyproject.toml setup.py core/_fastwalk.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

.PHONY: demo test test-fast bench sample corpus tls-corpus golden report-screenshot clean
demo: $(VENV)/.installed
	$(VENV)/bin/dicomwire show $(SAMPLE)

# The whole suite: what CI runs (.ci/run). One process per core, each taking
# whole files (--dist loadfile), so a module's fixtures (a Dask cluster, a
# capture) start once; the suite half-waits on peers and subprocesses.
XDIST := -n auto --dist loadfile
test: $(VENV)/.installed
	$(PY) -m pytest -q $(XDIST)

# The edit loop: leaves out the slow, interop (real peers) and root (capture,
# namespaces) tiers; markers in pyproject.toml.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q $(XDIST) -m "not slow and not interop and not root"

# Benchmarks need a large capture: see benchmarks/README.md.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench.py $(CAPTURE) --cut 5 --startup

# Regenerate the shipped sample from real peers (root, tcpdump, dcmtk).
sample: $(VENV)/.installed
	$(PY) tests/make_sample.py $(SAMPLE)

# Regenerate the real-peer capture corpus (root, tcpdump, dcmtk: see
# tests/corpus/make_corpus.py), then its golden outputs; review the diff.
corpus: $(VENV)/.installed
	$(PY) tests/corpus/make_corpus.py
	$(PY) tests/corpus/make_golden.py

# Regenerate the DICOM-over-TLS capture corpus, its key logs and manifest
# (root, tcpdump, dcmtk with +tls, tshark: see tests/corpus/make_tls_corpus.py);
# review the diff of tests/corpus/tls/manifest.py.
tls-corpus: $(VENV)/.installed
	$(PY) tests/corpus/make_tls_corpus.py

# Redraw docs/report.png, the README's picture of the report of the shipped
# sample (Debian's chromium, headless: apt-get install chromium).
report-screenshot: $(VENV)/.installed
	cd tests && ../$(PY) make_report_png.py

# Rewrite the corpus's golden outputs from the current code; review the diff.
golden: $(VENV)/.installed
	$(PY) tests/corpus/make_golden.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
