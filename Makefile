# The workbench's two commands: `make demo` and `make test`. Everything else is what they need.
# `make setup` is idempotent: each step is skipped when its stamp is newer than its inputs.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .workbench/stamps
JARS := .workbench/jars
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := mosquitto chromium chromium-driver postgresql
PYTEST_ARGS ?=

.PHONY: setup demo test test-faults test-slow lab system-packages kernel clean help

help:
	@echo "make demo      set up, then start the demo stack (Ctrl-C stops it)"
	@echo "make test      set up, then run the default test suite"
	@echo "make test-faults  fault injection under load, run by CI too"
	@echo "make test-slow the slow suites (long soaks)"
	@echo "make lab       JupyterLab with the workbench kernel"
	@echo "make setup     Debian packages, .venv, JVM jars, kernelspec (idempotent)"

setup: system-packages $(STAMPS)/venv $(STAMPS)/jars $(STAMPS)/functions $(STAMPS)/kernel $(STAMPS)/minio

demo: setup
	$(VENV)/bin/workbench up

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-faults: setup
	$(PY) -m pytest tests/faults $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser notebooks/

# Debian packages: the real broker, the browser for the dashboard tests, and PostgreSQL (the
# multi-host catalog; tests start their own server from /usr/lib/postgresql/<ver>/bin).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all]'
	@touch $@

# JVM jars (Delta; S3A: hadoop-aws and the AWS SDK v2 modules it loads, ~17 MB in all) from Maven
# Central into a local cache; Spark sessions never download.
$(STAMPS)/jars: kernels/jvm/pom.xml
	@mkdir -p $(STAMPS)
	rm -rf $(JARS) && mkdir -p $(JARS)  # a version bump must not leave the old jars behind
	mvn -q -B -f kernels/jvm/pom.xml dependency:copy-dependencies \
	  -DoutputDirectory=$(abspath $(JARS)) -DincludeScope=runtime
	@touch $@

# The project's own JVM functions (kernels/jvm/src), compiled against the Spark jars pyspark
# ships, into the jar cache (rebuilt whenever the cache is).
FUNCTIONS_SRC := $(shell find kernels/jvm/src -name '*.java')
PYSPARK_JARS = $(shell $(PY) -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')

$(STAMPS)/functions: $(STAMPS)/venv $(STAMPS)/jars $(FUNCTIONS_SRC)
	rm -rf .workbench/build/functions && mkdir -p .workbench/build/functions
	javac -nowarn --release 17 -cp '$(PYSPARK_JARS)/*' -d .workbench/build/functions $(FUNCTIONS_SRC)
	jar cf $(JARS)/workbench-functions.jar -C .workbench/build/functions .
	@touch $@

# MinIO for the s3a:// lake tests, built from the Go module proxy (no prebuilt binaries).
# Pinned: the master commit of 2026-02-12 (7aac2a2c5b7c); MinIO's RELEASE.* tags are not semver,
# so the module proxy knows its versions only as pseudo-versions. Builds with Go >= 1.24 in
# about 2 minutes on 2 cores; skipped when the binary already is that version (the Go build info
# records it), so bumping MINIO_VERSION rebuilds.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_BIN := .workbench/bin/minio

$(STAMPS)/minio: Makefile
	@mkdir -p $(STAMPS)
	go version -m $(MINIO_BIN) 2>/dev/null | grep -q '$(MINIO_VERSION)' || \
	  GOBIN=$(abspath $(dir $(MINIO_BIN))) go install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(STAMPS)/kernel: $(STAMPS)/venv kernels/workbench/kernel.json
	$(VENV)/bin/workbench kernel install --prefix $(abspath $(VENV))
	@touch $@

clean:
	rm -rf .workbench/lake .workbench/catalog.db* .workbench/logs .workbench/broker
