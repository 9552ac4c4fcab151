# The workbench's two commands: `make demo` and `make test`. Everything else is what they need.
# Setup is idempotent: each step is skipped when its stamp is newer than its inputs, and each step
# that runs prints `setup step <name>: <seconds> s`. `make demo` sets up only what the demo needs
# (setup-demo); `make test` and CI set up everything (setup, which adds MinIO, PostgreSQL and
# Chromium). Independent steps run in parallel (uv alongside apt, Maven and the MinIO build).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .workbench/stamps
# What is installed into the venv is stamped inside it, so removing .venv redoes those steps.
VENV_STAMP := $(VENV)/.workbench-installed
KERNEL_STAMP := $(VENV)/.workbench-kernel
JARS := .workbench/jars
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The demo: the broker, and the JDK and Maven that build the jar cache. The tests add the browser
# for the dashboard tests and PostgreSQL (the multi-host catalog; tests start their own server
# from /usr/lib/postgresql/<ver>/bin).
APT_DEMO := mosquitto openjdk-17-jdk-headless maven
APT_TEST := chromium chromium-driver postgresql
# uv (from PyPI) installs the Python packages against constraints.txt, ~5x faster than pip.
UV_VERSION := 0.13.9
SETUP_JOBS ?= 4
PYTEST_ARGS ?=

.PHONY: setup setup-demo setup-steps setup-demo-steps demo test test-faults test-slow lab \
	system-packages system-packages-demo clean help

help:
	@echo "make demo      set up what the demo needs, then start the demo stack (Ctrl-C stops it)"
	@echo "make test      set up everything, then run the default test suite"
	@echo "make test-faults  fault injection under load, run by CI too"
	@echo "make test-slow the slow suites (long soaks)"
	@echo "make lab       JupyterLab with the workbench kernel"
	@echo "make setup-demo  Debian packages for the demo, .venv, JVM jars, kernelspec (idempotent)"
	@echo "make setup     setup-demo plus what only tests need: MinIO, PostgreSQL, Chromium"

# Each step's wall time: `$(call step_begin,NAME)` first in its recipe, `$(call step_end,NAME)`
# last.
step_begin = @mkdir -p $(STAMPS) && date +%s.%N > $(STAMPS)/.start-$(1)
step_end = @awk -v t0="$$(cat $(STAMPS)/.start-$(1))" -v t1="$$(date +%s.%N)" \
	'BEGIN { printf "setup step %s: %.1f s\n", "$(1)", t1 - t0 }'

# The steps run in a parallel sub-make (output grouped per step), so `demo` itself stays serial
# and its output unbuffered.
setup-demo:
	$(call step_begin,setup-demo)
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) -Otarget setup-demo-steps
	$(call step_end,setup-demo)

setup:
	$(call step_begin,setup)
	@$(MAKE) --no-print-directory -j$(SETUP_JOBS) -Otarget setup-steps
	$(call step_end,setup)

setup-demo-steps: system-packages-demo $(VENV_STAMP) $(STAMPS)/jars $(STAMPS)/functions $(KERNEL_STAMP)
setup-steps: setup-demo-steps system-packages $(STAMPS)/minio

demo: setup-demo
	$(VENV)/bin/workbench up

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-faults: setup
	$(PY) -m pytest tests/faults $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lab: setup-demo
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser notebooks/

# Debian packages, installed only when missing (one apt-get at a time: the test packages come
# after the demo's).
apt_install = @t0=$$(date +%s.%N); missing=""; for p in $(2); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi; \
	awk -v t0="$$t0" -v t1="$$(date +%s.%N)" 'BEGIN { printf "setup step %s: %.1f s\n", "$(1)", t1 - t0 }'

system-packages-demo:
	$(call apt_install,apt-demo,$(APT_DEMO))

system-packages: system-packages-demo
	$(call apt_install,apt-test,$(APT_TEST))

# The venv needs no Debian package beyond Python, so it installs while apt-get runs.
$(VENV_STAMP): pyproject.toml constraints.txt
	$(call step_begin,venv)
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -c constraints.txt -e '.[all]'
	@touch $@
	$(call step_end,venv)

# JVM jars (Delta; S3A: hadoop-aws and the AWS SDK v2 modules it loads, ~17 MB in all) from Maven
# Central into a local cache; Spark sessions never download.
$(STAMPS)/jars: kernels/jvm/pom.xml | system-packages-demo
	$(call step_begin,jars)
	rm -rf $(JARS) && mkdir -p $(JARS)  # a version bump must not leave the old jars behind
	mvn -q -B -f kernels/jvm/pom.xml dependency:copy-dependencies \
	  -DoutputDirectory=$(abspath $(JARS)) -DincludeScope=runtime
	@touch $@
	$(call step_end,jars)

# The project's own JVM functions (kernels/jvm/src), compiled against the Spark jars pyspark
# ships, into the jar cache (rebuilt whenever the cache is).
FUNCTIONS_SRC := $(shell find kernels/jvm/src -name '*.java')
PYSPARK_JARS = $(shell $(PY) -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')

$(STAMPS)/functions: $(VENV_STAMP) $(STAMPS)/jars $(FUNCTIONS_SRC)
	$(call step_begin,functions)
	rm -rf .workbench/build/functions && mkdir -p .workbench/build/functions
	javac -nowarn --release 17 -cp '$(PYSPARK_JARS)/*' -d .workbench/build/functions $(FUNCTIONS_SRC)
	jar cf $(JARS)/workbench-functions.jar -C .workbench/build/functions .
	@touch $@
	$(call step_end,functions)

# MinIO for the s3a:// lake tests, built from the Go module proxy (no prebuilt binaries).
# Pinned: the master commit of 2026-02-12 (7aac2a2c5b7c); MinIO's RELEASE.* tags are not semver,
# so the module proxy knows its versions only as pseudo-versions. Builds with Go >= 1.24 in
# about 2 minutes on 2 cores; skipped when the binary already is that version (the Go build info
# records it), so bumping MINIO_VERSION rebuilds.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_BIN := .workbench/bin/minio

$(STAMPS)/minio: Makefile
	$(call step_begin,minio)
	go version -m $(MINIO_BIN) 2>/dev/null | grep -q '$(MINIO_VERSION)' || \
	  GOBIN=$(abspath $(dir $(MINIO_BIN))) go install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@
	$(call step_end,minio)

$(KERNEL_STAMP): $(VENV_STAMP) kernels/workbench/kernel.json
	$(call step_begin,kernel)
	$(VENV)/bin/workbench kernel install --prefix $(abspath $(VENV))
	@touch $@
	$(call step_end,kernel)

clean:
	rm -rf .workbench/lake .workbench/catalog.db* .workbench/logs .workbench/broker
