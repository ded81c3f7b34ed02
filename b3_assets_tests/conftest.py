"""Shared fixtures: the real B3 samples beside the checkout, and skips that CI refuses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from b3_assets_tests.support.ci import SAMPLES_DIR, skip_unless
from b3_assets_tests.support.moto_server import MotoServer, use_moto

TESTS_DAGSTER_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The tests' own Dagster instance folder: what they record (e.g. ``import-csv``'s raw
    materializations) never lands in the developer's ``.dagster_home`` (``make test`` exports
    it for ``make dev``). Tests of DAGSTER_HOME itself set or remove it themselves."""
    import tempfile

    os.environ["DAGSTER_HOME"] = config.stash.setdefault(
        TESTS_DAGSTER_HOME, tempfile.mkdtemp(prefix="b3-tests-dagster-home-")
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    shutil.rmtree(config.stash.get(TESTS_DAGSTER_HOME, ""), ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Charts drawn once per process (support/chart_memo.py: same rows, same bytes)."""
    from b3_assets_tests.support import chart_memo

    chart_memo.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Spark tests belong to the slow tier (a JVM start each); the browser UI test and the
    subprocess tests say so themselves with ``pytestmark = pytest.mark.slow``."""
    for item in items:
        if item.get_closest_marker("spark") is not None:
            item.add_marker(pytest.mark.slow)
    # The modules with slow tests first (the daemon and container tests take minutes): with
    # pytest-xdist's loadscope they start at once, and the many short modules fill in around
    # them instead of leaving one worker alone with a long module at the end. Within a module
    # the order is kept.
    slow_modules = {i.module for i in items if i.get_closest_marker("slow") is not None}
    items.sort(key=lambda i: i.module not in slow_modules)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A Chromium for the browser tests; skips (fails in CI) when there is none."""
    from b3_assets.source.browser import find_chromium

    path = find_chromium(os.environ.get("B3_BROWSER_PATH"))
    skip_unless(path is not None, "no Chromium: apt-get install chromium (or B3_BROWSER_PATH)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1 (a free port) for the module's AWS tests."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def moto_endpoint(moto: MotoServer) -> str:
    return moto.endpoint


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    """AWS settings pointing at moto only, the Lambda's cached clients dropped, and the
    working directory a temporary one (so a stray local write (./data) would be seen)."""
    from lambda_handler import handler as lh

    use_moto(monkeypatch, moto.endpoint)
    lh.glue_client.cache_clear()
    lh.s3_client.cache_clear()
    monkeypatch.chdir(tmp_path)
    return moto


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``b3_assets_tests/fixtures/b3`` (real B3 files kept in the repository)."""
    skip_unless(SAMPLES_DIR.is_dir(), f"real B3 samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


# --- the local B3 replica (b3_assets_tests/replica) ---------------------------------------


@pytest.fixture(scope="session")
def _b3_replica_server():
    """One replica server for the whole session (it starts in ~ms, but threads add up)."""
    from b3_assets_tests.replica import Replica

    with Replica(samples_dir=SAMPLES_DIR if SAMPLES_DIR.is_dir() else None) as replica:
        yield replica


@pytest.fixture
def b3_replica(_b3_replica_server):
    """The local B3 site, reset for this test (default portfolio, no faults, empty log).

    ``.base_url`` / ``.page_url``; ``.portfolio`` (served now) and ``.set_portfolio(p | date)``
    (a real sample when present, else generated); ``.fault(mode, count=None, target=None,
    **options)`` (modes in ``replica.FAULT_MODES``); ``.requests`` / ``.api_requests(browser=)``
    (what clients asked)."""
    _b3_replica_server.reset()
    yield _b3_replica_server
    _b3_replica_server.reset()
