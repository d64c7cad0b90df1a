# copier-ml-deploy: the two commands of the README, and the pieces they are made of.
PYTHON ?= python3
VENV := .venv
SERVICE_VENV := build/service-venv
# The oldest and newest Python a generated project supports, from pyenv, for the
# compatibility tests (tests/test_python_versions.py); missing ones are reported there.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
COMPAT_VERSIONS := 3.10 3.13
COMPAT_VENVS := $(foreach v,$(COMPAT_VERSIONS),$(if $(wildcard $(PYENV_ROOT)/versions/$(v).*/bin/python),build/service-venv-$(v)/.installed))

.PHONY: demo test test-fast lint clean web

demo: $(VENV)/.render-installed  ## Render the default service, train it, serve it, show a prediction
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo.sh

test: $(VENV)/.installed $(SERVICE_VENV)/.installed $(COMPAT_VENVS)  ## The whole test suite (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SERVICE_VENV=$(SERVICE_VENV) $(VENV)/bin/python -m pytest -n auto --dist loadgroup

# The layers that take seconds: the hooks', extensions', questionnaire's and generator's tests.
test-fast: $(VENV)/.installed $(SERVICE_VENV)/.installed  ## The fast layers alone (no renders of whole suites, services or images)
	SERVICE_VENV=$(SERVICE_VENV) $(VENV)/bin/python -m pytest -n auto -m "not slow and not live and not image and not browser"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Copier and its extensions alone, for the demo: pip's own lines show the first run's progress.
$(VENV)/.render-installed: pyproject.toml
	@echo "==> Creating $(VENV) and installing Copier and the template's extensions (make demo)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install --group render
	touch $@

# Copier, its extensions and the test tools. uv installs the suite's environments: the same
# packages from the same index as pip, in seconds rather than the minutes pip spends on each of
# the four the suite needs before it starts.
UV := $(VENV)/bin/uv
# The machine's certificate store, as pip uses it (a proxy's certificate authority included).
export UV_SYSTEM_CERTS := 1

# $(call install,PYTHON,ARGUMENTS): install into PYTHON's environment. uv once died of a
# segmentation fault on a fresh CI machine, half-way into an environment it installs in seconds
# everywhere else; an install uv does not finish is run again, then left to pip (slower, the same
# packages from the same index).
define install
	$(UV) pip install --quiet --python $(1) $(2) \
	|| $(UV) pip install --quiet --python $(1) $(2) \
	|| { $(1) -m pip install --quiet --upgrade pip && $(1) -m pip install --quiet $(2); }
endef

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(call install,$(VENV)/bin/python,--group dev)
	touch $@

# One environment shared by every rendered project in the render matrix. With pip in it, at its
# latest: test_make_lock checks with it that the lock installs.
$(SERVICE_VENV)/.installed: tests/service-requirements.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(SERVICE_VENV)
	$(call install,$(SERVICE_VENV)/bin/python,--upgrade pip --requirement tests/service-requirements.txt)
	touch $@

# The same environment on another Python, for the compatibility tests.
build/service-venv-%/.installed: tests/service-requirements.txt | $(VENV)/.installed
	$(firstword $(wildcard $(PYENV_ROOT)/versions/$*.*/bin/python)) -m venv build/service-venv-$*
	$(call install,build/service-venv-$*/bin/python,--upgrade pip --requirement tests/service-requirements.txt)
	touch $@

clean:
	rm -rf $(VENV) build

# The generator page (generator/): the questionnaire in a browser, the project as a zip.
# Like `copier copy`, it renders the newest tag; WEB_REF=HEAD for this checkout's last commit.
WEB_PORT ?= 8000
WEB_REF ?=
web: $(VENV)/.installed  ## Serve the generator page on http://127.0.0.1:$(WEB_PORT)/
	$(VENV)/bin/python -m generator --port $(WEB_PORT) $(if $(WEB_REF),--vcs-ref $(WEB_REF))
