"""The Dagster UI in a real browser: what a person sees after two refined dates.

A module fixture fills a local lake from the B3 replica for two dates (previous + current)
on a persistent DAGSTER_HOME: the chain runs in process, the sensor tick is applied as the
daemon would (its refined materializations recorded, the follow-up run it requests executed:
the refined checks and the report of both dates), all on that instance.
``dagster-webserver -m b3_assets.definitions`` serves it; headless Chromium (Playwright, sync
API) checks the asset graph, the landing partition's metadata, the report's
inline images and the automation page, and saves screenshots: to a temporary folder, or to
``docs/screenshots/`` with ``B3_UPDATE_SCREENSHOTS=1`` (``scripts/ui_screenshots.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from b3_assets.assets import LANDING
from b3_assets.audit import _today, missing_days
from b3_assets.b3.browser import LAUNCH_ARGS, find_chromium
from b3_assets.landing import read_landing
from b3_assets.partitions import trading_day_partitions
from b3_assets.schedules import landing_freshness_checks
from b3_assets_tests.support.chain import failure_message, local_platform, sensor_tick
from b3_assets_tests.support.ci import skip_unless
from b3_assets_tests.support.two_dates import DAY1, DAY2, apply_tick, refine, start_replica

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
LOCATION = "b3_assets.definitions"
LINEAGE = [
    "raw/ibov_portfolio",
    "landing/ibov_portfolio",
    "refined/b3_etl_soma_acao",
    "report/ibov_composition",
]
VIEWPORT = {"width": 1440, "height": 800}
STARTUP_TIMEOUT_S = 120
# Generous: CI machines are shared, and the first visit to a page waits on GraphQL queries
# that take seconds under load. Applies to page actions and to every ``expect`` below.
PAGE_TIMEOUT_MS = 60_000

DAGSTER_YAML = """\
# A throwaway instance for the UI test: sqlite storage in this folder, no telemetry, no
# first-visit newsletter dialog over the pages.
telemetry:
  enabled: false
nux:
  enabled: false
"""


@dataclass
class UI:
    url: str
    home: Path
    lake: Path
    landing_rows: int
    heaviest_code: str
    log: Path
    missing_days: int = 0

    def graphql(self, query: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body
        return body["data"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _wait_for_webserver(proc: subprocess.Popen[bytes], ui: UI) -> None:
    """/server_info answers, then the code location has loaded (its four assets are served)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    query = "{ assetNodes { assetKey { path } } }"
    while True:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{_log_tail(ui.log)}")
        try:
            with urllib.request.urlopen(f"{ui.url}/server_info", timeout=5):
                pass
            served = {_key(n["assetKey"]["path"]) for n in ui.graphql(query)["assetNodes"]}
            if set(LINEAGE) <= served:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"dagster-webserver not ready in {STARTUP_TIMEOUT_S} s:\n{_log_tail(ui.log)}"
            )
        time.sleep(0.5)  # polling a starting server, not waiting on the page


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The webserver and the code server it started (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[UI]:
    skip_unless(find_chromium(None) is not None, "no Chromium for the UI test")
    root = tmp_path_factory.mktemp("ui")
    home, lake = root / "dagster_home", root / "lake"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    replica = start_replica()
    instance = dg.DagsterInstance.from_config(str(home))  # creates the storage first
    ui = UI(f"http://127.0.0.1:{_free_port()}", home, lake, 0, "", root / "webserver.log")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "B3_ENV": "local",
        "B3_DATA_DIR": str(lake),
        "B3_BASE_URL": replica.base_url,
        "B3_FETCH": "api",
    }
    port = ui.url.rsplit(":", 1)[1]
    with ui.log.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-m", LOCATION]
            + ["-h", "127.0.0.1", "-p", port, "--suppress-warnings"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # While the webserver starts (tens of seconds), fill the lake and the instance.
        platform = local_platform(lake, replica.base_url)
        refine(platform, replica, [DAY1, DAY2], instance)
        (followup,) = apply_tick(platform, instance, sensor_tick(platform, instance))
        assert followup.success, failure_message(followup)
        # The operator's morning: the gap audit (DAY2 up to today is missing) and landing's
        # freshness, as the 09:50 schedule and the landing_freshness sensor evaluate them.
        audit = platform.defs.resolve_job_def("landing_gap_audit")
        assert audit.execute_in_process(instance=instance).success
        ui.missing_days = len(
            missing_days(
                [date.fromisoformat(DAY1)],
                [date.fromisoformat(DAY1), date.fromisoformat(DAY2)],
                _today(),
            )
        )
        freshness = dg.Definitions(
            assets=[dg.AssetSpec(LANDING, partitions_def=trading_day_partitions)],
            asset_checks=landing_freshness_checks,
            jobs=[dg.define_asset_job("freshness", dg.AssetSelection.all_asset_checks())],
        )
        checked = freshness.resolve_job_def("freshness").execute_in_process(instance=instance)
        assert [e.passed for e in checked.get_asset_check_evaluations()] == [False]
        landing = read_landing(platform.lake, date.fromisoformat(DAY2)).to_pylist()
        ui.landing_rows = len(landing)
        ui.heaviest_code = max(landing, key=lambda r: r["participacao_pct"])["codigo"]
        _wait_for_webserver(proc, ui)
        yield ui
    finally:
        _stop(proc)
        instance.dispose()
        replica.stop()


@pytest.fixture(scope="module")
def browser(ui):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_TIMEOUT_MS)  # assertions retry as long as actions wait
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=find_chromium(None), args=list(LAUNCH_ARGS))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("B3_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def _key(path: list[str]) -> str:
    return "/".join(path)


def test_asset_graph_shows_the_lineage(ui, page, shots):
    from playwright.sync_api import expect

    nodes = ui.graphql("{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }")
    deps = {
        _key(n["assetKey"]["path"]): sorted(_key(d["path"]) for d in n["dependencyKeys"])
        for n in nodes["assetNodes"]
    }
    assert {k: deps[k] for k in LINEAGE} == {
        LINEAGE[0]: [],
        LINEAGE[1]: [LINEAGE[0]],
        LINEAGE[2]: [LINEAGE[1]],
        LINEAGE[3]: [LINEAGE[2]],
    }
    assert {n["groupName"] for n in nodes["assetNodes"]} == {"ibov"}

    # The global lineage graph: every asset, the main lineage laid out left to right in order
    # (the nodes show the last key segment only, so the raw and landing nodes read alike).
    page.goto(f"{ui.url}/asset-groups")
    graph_nodes = page.locator("foreignObject")
    expect(graph_nodes).to_have_count(len(nodes["assetNodes"]))
    expect(graph_nodes.filter(has_text="ibov_composition")).to_have_count(1)
    placed = graph_nodes.evaluate_all(
        "els => els.map(e => [Number(e.getAttribute('x')), e.textContent.trim()])"
    )
    lineage_names = [k.split("/")[1] for k in LINEAGE]
    in_lineage = [name for _x, name in sorted(placed) if name in lineage_names]
    assert in_lineage == lineage_names

    # The group's graph shows each node in full (latest event, checks, partitions, kinds).
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 600})  # less empty canvas
    page.goto(f"{ui.url}/locations/{LOCATION}/asset-groups/ibov")
    page.get_by_role("button", name="Hide navigation").click()
    # The check results per date are asserted through Dagster's storage in the chain tests;
    # here the group's graph is drawn, with its nodes' check summaries.
    expect(page.get_by_text(re.compile(r"^\d+ / \d+ Passed$")).first).to_be_visible()
    page.screenshot(path=shots / "asset-graph.png")


def test_landing_partition_shows_its_metadata(ui, page, shots):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1000})  # all ten rows
    page.goto(f"{ui.url}/assets/landing/ibov_portfolio?view=partitions&partition={DAY2}")

    def row(name: str):
        return page.locator("tr", has=page.get_by_text(name, exact=True))

    expect(row("dagster/row_count")).to_contain_text(str(ui.landing_rows))
    top = row("top_10_weights")
    expect(top).to_contain_text("part. (%)")
    expect(top).to_contain_text(ui.heaviest_code)  # the markdown table, rendered inline
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    page.screenshot(path=shots / "landing-partition.png")


@pytest.mark.parametrize("day,previous", [(DAY2, DAY1), (DAY1, "none")])
def test_report_images_load(ui, page, shots, day, previous):
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/assets/report/ibov_composition?view=partitions&partition={day}")

    def row(name: str):
        return page.locator("tr", has=page.get_by_text(name, exact=True))

    expect(row("previous_date")).to_contain_text(previous)
    expect(row("top15_uri")).to_contain_text(f"{day}/top15.png")
    # Markdown over 1000 characters sits behind "[Show Markdown]", which opens a dialog.
    for name in ("changes", "top15"):
        row(name).get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog")
        image = dialog.locator(f"img[alt='{name}']")
        expect(image).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        assert image.evaluate("img => img.naturalWidth") == 900
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        if name == "top15" and day == DAY2:
            page.screenshot(path=shots / "report-images.png")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_have_count(0)


def test_freshness_and_the_gap_audit_show_in_the_ui(ui, page, shots):
    """Never miss a day without knowing: landing's freshness check (failed: today's session
    has not landed) on the asset's checks, and the audit's list of missing days with fixes."""
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/assets/landing/ibov_portfolio?view=checks")
    page.get_by_text("freshness_check", exact=True).first.click()
    expect(
        page.get_by_text(re.compile(r"^Asset is overdue\. We expected partition \d{4}-"))
    ).to_be_visible()
    expect(page.locator("[class*='Tag']", has_text="Failed").first).to_be_visible()
    page.screenshot(path=shots / "landing-freshness.png")

    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1000})
    page.goto(f"{ui.url}/assets/audit/landing_gaps")

    def row(name: str):
        return page.locator("tr", has=page.get_by_text(name, exact=True))

    expect(row("missing_days")).to_contain_text(str(ui.missing_days))
    expect(row("first_archived")).to_contain_text(DAY1)
    # Each missing day with its fix (over 1000 characters: behind "[Show Markdown]").
    row("missing").get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("b3-pipeline import-csv IBOVDia_06-03-25.csv")
    page.screenshot(path=shots / "gap-audit.png", animations="disabled")  # the fade-in ended


def test_schedule_and_sensor_are_listed_and_running(ui, page, shots):
    from playwright.sync_api import expect

    data = ui.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { "
        "schedules { name scheduleState { status } } sensors { name sensorState { status } } "
        "} } } }"
    )
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
        "daily_ibov_portfolio_0830": "RUNNING",
        "period_portfolios_0835": "RUNNING",
        "daily_ibov_portfolio_second_attempt_0945": "RUNNING",
        "landing_gap_audit_0950": "RUNNING",
    }
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == {
        "glue_job_runs": "RUNNING",
        "refined_reconciliation": "RUNNING",
        "landing_freshness": "RUNNING",
    }
    page.goto(f"{ui.url}/automation")
    expect(page.get_by_text("Loading automations")).to_have_count(0)
    for name, kind in [("daily_ibov_portfolio_0830", "08:30"), ("glue_job_runs", "sensor")]:
        item = page.locator("div[data-index]").filter(has_text=name)
        expect(item).to_contain_text(kind)
        expect(item.locator("[class*='formatSwitch'] input[type=checkbox]")).to_be_checked()
    page.screenshot(path=shots / "automation.png")
