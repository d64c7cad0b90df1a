# copier-ml-deploy: the two commands of the README, and the pieces they are made of.
PYTHON ?= python3
VENV := .venv
SERVICE_VENV := build/service-venv

.PHONY: demo test lint clean

demo: $(VENV)/.installed  ## Render the default service, train it, serve it, show a prediction
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo.sh

test: $(VENV)/.installed $(SERVICE_VENV)/.installed  ## The whole test suite (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SERVICE_VENV=$(SERVICE_VENV) $(VENV)/bin/python -m pytest -n auto

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Copier, its extensions and the test tools.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --group dev
	touch $@

# One environment shared by every rendered project in the render matrix.
$(SERVICE_VENV)/.installed: tests/service-requirements.txt
	$(PYTHON) -m venv $(SERVICE_VENV)
	$(SERVICE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVICE_VENV)/bin/python -m pip install --quiet -r tests/service-requirements.txt
	touch $@

clean:
	rm -rf $(VENV) build
