# Two entry points that work on a fresh machine with nothing but Python 3.10+:
#   make demo   — set up .venv, then the app on the demo data (with a display) or the whole REF-CFA
#                 pipeline headless on it (`refcfa demo`; without a display or with REFCFA_HEADLESS=1)
#   make test   — set up .venv (with the dev extra), then run the full test suite on CPU
# Set-up is done once: a stamp keyed on pyproject.toml skips it when nothing changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")
PYTEST_ARGS ?=

.PHONY: setup demo gui test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@# torch first: the CPU wheel this machine keeps on disk (a bare `torch` would pull a CUDA build)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] && [ -z "$$REFCFA_HEADLESS" ]; then \
		echo "opening refcfa-gui on the demo data: press Run all (F5) in the Training / CFA panel"; \
		$(VENV)/bin/refcfa-gui; \
	else \
		$(VENV)/bin/refcfa demo; \
	fi

gui: $(STAMP)
	$(VENV)/bin/refcfa-gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check refcfa refcfa_gui tests scripts

clean:
	rm -rf $(VENV) output .pytest_cache
