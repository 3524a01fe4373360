# ExperimentOS: `make run` starts the dashboard, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-packages
# Debian packages: Chromium + driver for browser tests, CJK fonts for the PDF memo,
# poppler for PDF checks, Pango for WeasyPrint.
DEBIAN_PACKAGES := chromium chromium-driver fonts-noto-cjk poppler-utils libpango-1.0-0 libpangoft2-1.0-0
# Java for the Spark tests (local Spark runs in a JVM), installed only when no `java` is found.
JAVA_PACKAGE := openjdk-17-jre-headless
HOST ?= 127.0.0.1
PORT ?= 8050
# Extra Host names the dashboard answers, e.g. ALLOWED_HOSTS="abtest.example.com" with HOST=0.0.0.0.
ALLOWED_HOSTS ?=

.PHONY: run test install bytecode system-packages lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark-local]'
	# gbstats (GrowthBook's engine, a test reference) pins numpy<2 and pandas<2, which this project
	# outgrew; it runs fine on the current ones, so it is installed without its pins.
	$(BIN)/python -m pip install --quiet --no-deps 'gbstats==0.8.0'
	touch $(STAMP)

install: $(STAMP) bytecode

# Byte-compiles the sources (a no-op when current): a start then reads .pyc files instead of
# compiling ~0.1 s of source, even where PYTHONDONTWRITEBYTECODE keeps Python from writing them.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q analytics storage dashapp >/dev/null

# Installs the Debian packages that are missing (needs root or sudo; skipped when all are present).
$(SYSTEM_STAMP): | $(STAMP)
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v java >/dev/null 2>&1 || [ -x "$${JAVA_HOME:-/nonexistent}/bin/java" ] || missing="$$missing $(JAVA_PACKAGE)"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO mkdir -p /usr/share/man/man1; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	touch $(SYSTEM_STAMP)

system-packages: $(SYSTEM_STAMP)

run: $(STAMP) $(SYSTEM_STAMP) bytecode
	$(BIN)/experimentos serve --host $(HOST) --port $(PORT) $(foreach name,$(ALLOWED_HOSTS),--allowed-host $(name))

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy analytics storage

test: $(STAMP) $(SYSTEM_STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(BIN)/python benchmarks/analyze_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
