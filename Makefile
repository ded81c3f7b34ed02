# The two quick-start commands: `make dev` (Dagster UI on the local lake) and `make test`.
.PHONY: setup dev test lint bench screenshots container-smoke stack-up stack-down

DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

setup:
	@scripts/setup.sh

dev: setup
	@# exec: make passes a SIGTERM to its child, which must be dev.sh itself, not a shell
	@exec scripts/dev.sh

test: setup
	@scripts/browser.sh
	@scripts/java.sh
	@scripts/postgres.sh
	.venv/bin/ruff check .
	.venv/bin/pytest -m "slow or not slow"
	scripts/any_day.sh  # the date-sensitive tests again on a Saturday, a holiday, 08:29

bench: setup
	.venv/bin/python -m bench.bench_fetch
	.venv/bin/python -m bench.bench_chain

screenshots: setup
	.venv/bin/python scripts/ui_screenshots.py

container-smoke: setup
	scripts/container_smoke.sh

# The container deployment with rootful podman, no registry needed (docs/hosting.md). Root.
stack-up:
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down
