# ezd — the two commands of the README, and the pieces they are made of.
#   make demo   install, then run the embedded system with demo data on http://127.0.0.1:8000
#   make test   install, start PostgreSQL and S3 on 127.0.0.1, run the lint and the whole suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST_ARGS ?=

.PHONY: help install web demo test lint services-up services-down bench bench-search bench-web bench-archive clean proof

help:
	@echo "make demo   - install and run ezd with demo data (embedded: SQLite + local files)"
	@echo "make test   - install, start PostgreSQL + S3 locally, run lint and all tests"
	@echo "make bench  - run the benchmarks in bench/ against PostgreSQL + S3"
	@echo "make bench-search - search benchmark (Elasticsearch and the embedded index)"
	@echo "make proof  - issue 9: faults, access matrix, fuzzing, web security, audit, load, scale -> bench/REPORT.md"

install:
	@scripts/install.sh

# Front-end packages (npm ci), Chromium for the browser tests, compiled translations.
web: install
	scripts/web.sh

demo: install
	EZD_SKIP_CHROMIUM=1 scripts/web.sh
	.venv/bin/ezd demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports
	scripts/audit.sh

# MinIO is built from the Go module proxy once per machine (minutes when cold) and the
# storage tests run against it as well as SeaweedFS.
services-up:
	EZD_WITH_MINIO=1 scripts/services.sh up

services-down:
	scripts/services.sh down

test: install services-up lint web
	set -a; . .services/env; set +a; export EZD_WITH_MINIO=1; \
	.venv/bin/pytest -p no:cacheprovider --basetemp=.pytest-tmp $(PYTEST_ARGS)

bench: install services-up
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/registration.py

# Search: docs/s, query p50/p95 at 100k documents on both indices, API vs raw Elasticsearch.
bench-search: install services-up
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/search.py

# Web: inbox and case view server time with 100k cases and 10k open tasks.
bench-web: install services-up
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/web.py

# Archive: archival package export rate (cases/s, MB/s) for 10k archived cases.
bench-archive: install services-up
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/archive.py

clean:
	rm -rf .venv .tools .data .pytest_cache .mypy_cache .ruff_cache

# Load: 200 simulated staff of 10 schools (think time exp. mean 8 s) for 60 s + 240 s against
# ezd serve (2 API processes) + ezd worker on PostgreSQL + S3 + Elasticsearch.
.PHONY: bench-load
bench-load: install services-up
	scripts/elasticsearch.sh up >/dev/null
	set -a; . .services/env; . .services/elasticsearch/env; set +a; \
	.venv/bin/python bench/load.py

# Fault tests (tests/faults, ~15 min): kill -9 / stop the API, the worker, PostgreSQL, S3 and
# Elasticsearch during a registration load, then check the invariants. They start servers of
# their own on free ports (never the shared ones of services-up); figures go to
# bench/results/faults-*.json. Needs the SeaweedFS and Elasticsearch installs of the scripts.
.PHONY: faults
faults: install
	@test -x .services/venv/bin/weed || scripts/services.sh up
	@ls .services/elasticsearch/elasticsearch-*/bin/elasticsearch >/dev/null 2>&1 || scripts/elasticsearch.sh up
	EZD_FAULTS=1 .venv/bin/pytest -p no:cacheprovider -o timeout=900 tests/faults $(PYTEST_ARGS)

# Scale (issue 9): a 10k-case baseline and a 1M-case database (3 documents per case) generated
# by bench/scale.py (COPY into PostgreSQL, the app's rebuild path into Elasticsearch), then the
# registration, task and search benchmarks against both, back to back
# (bench/results/scale-*.json). SCALE_ES_FRACTION indexes a random share of the 1M database.
SCALE_CASES ?= 1000000
SCALE_ES_FRACTION ?= 1.0
# A database and index made before for the same size are kept (generating 1M takes about an
# hour with its index); `make bench-scale SCALE_REUSE=` generates them again.
SCALE_REUSE ?= --reuse
.PHONY: bench-scale
bench-scale: install services-up
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/scale.py --database ezd_scale_10k --cases 10000 $(SCALE_REUSE) && \
	.venv/bin/python bench/scale.py --database ezd_scale --cases $(SCALE_CASES) \
		--docs-per-case 3 --es-fraction $(SCALE_ES_FRACTION) $(SCALE_REUSE) && \
	.venv/bin/python bench/scale.py --compare ezd_scale_10k ezd_scale

# Proof under load, faults and attack (issue 9): every part above and the security tests, one
# after another, then bench/REPORT.md with the machine, the commands, the times and the figures.
# Hours, not minutes: the scale part generates 1M cases. `PROOF_ARGS="--skip scale"` leaves it out.
PROOF_ARGS ?=
.PHONY: proof
proof: install services-up
	EZD_SKIP_CHROMIUM=1 scripts/web.sh
	set -a; . .services/env; set +a; \
	.venv/bin/python bench/proof.py $(PROOF_ARGS)
