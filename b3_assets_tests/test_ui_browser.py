"""The Dagster UI in a real browser: what a person sees after two daily runs and a failed one.

A module fixture fills a local lake from the B3 replica for two dates (previous + current)
on a persistent DAGSTER_HOME: the daily job runs in process for each (raw, landing, the local
Glue refine, refined recorded with its checks, marts, reports), then the next session's
collection fails (B3 serves another date), all on that instance.
``dagster-webserver -m b3_assets.definitions`` serves it; headless Chromium (Playwright, sync
API) checks what the UI says: the lineage in one labelled box per layer, the refined partition's
run and job, each check's latest real result (not "Not evaluated", not "Execution failed" after
the failed collection), the landing partition's metadata, the report's charts inline, the
automation page, and a code location whose settings are wrong; it saves screenshots: to a
temporary folder, or to ``docs/screenshots/`` with ``B3_UPDATE_SCREENSHOTS=1``
(``scripts/ui_screenshots.py``).
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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from b3_assets.definitions import LAYER_GROUPS
from b3_assets.keys import LANDING
from b3_assets.partitions import trading_day_partitions
from b3_assets.portfolio.audit import _today, missing_days
from b3_assets.portfolio.checks import REFINED_CHECKS, VALID_PORTFOLIO
from b3_assets.portfolio.schedules import landing_freshness_checks
from b3_assets.source.browser import LAUNCH_ARGS, find_chromium
from b3_assets.storage.landing import read_landing
from b3_assets_tests.support.chain import failure_message, local_platform, materialize, sensor_tick
from b3_assets_tests.support.ci import skip_unless
from b3_assets_tests.support.two_dates import DAY1, DAY2, refine, start_replica

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


#: The session after DAY2: its collection fails (the replica still serves DAY2).
FAILED_DAY = "2025-03-06"
#: A B3_BASE_URL with a typo, for the code location that fails on its settings.
BAD_BASE_URL = "htps//sistemaswebb3-listados.b3.com.br"


@dataclass
class UI:
    url: str
    home: Path
    lake: Path
    landing_rows: int
    heaviest_code: str
    log: Path
    missing_days: int = 0
    heaviest_issuer: str = ""
    daily_run_ids: dict[str, str] = field(default_factory=dict)
    failed_run_id: str = ""

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


def _start_webserver(ui: UI, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``dagster-webserver -m b3_assets.definitions`` on 127.0.0.1 (its own process group)."""
    port = ui.url.rsplit(":", 1)[1]
    with ui.log.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-m", LOCATION]
            + ["-h", "127.0.0.1", "-p", port, "--suppress-warnings"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


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
    proc = _start_webserver(ui, env)
    try:
        # While the webserver starts (tens of seconds), fill the lake and the instance: each
        # daily run records its refined date (run and job), checks it and draws the reports.
        platform = local_platform(lake, replica.base_url)
        results = refine(platform, replica, [DAY1, DAY2], instance)
        for day, result in zip((DAY1, DAY2), results, strict=True):
            ui.daily_run_ids[day] = result.run_id
        # The daily runs recorded their Glue runs: the sensor has nothing to request.
        assert not sensor_tick(platform, instance).run_requests
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
        # Then the next session's collection fails (B3 still serves DAY2): nothing is stored, and
        # the checks keep showing their last real evaluation.
        failed = materialize(platform, FAILED_DAY, instance=instance)
        assert not failed.success and "not of 2025-03-06" in failure_message(failed)
        ui.failed_run_id = failed.run_id
        landing = read_landing(platform.lake, date.fromisoformat(DAY2)).to_pylist()
        ui.landing_rows = len(landing)
        ui.heaviest_code = max(landing, key=lambda r: r["participacao_pct"])["codigo"]
        (ui.heaviest_issuer,) = platform.catalog.query(
            "SELECT empresa FROM b3_etl_soma_acao WHERE DataCarteira = ? "
            "ORDER BY participacao_total_pct DESC, Acao LIMIT 1",
            [DAY2],
        ).rows[0]
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


def test_asset_graph_shows_the_lineage_in_one_box_per_layer(ui, page, shots):
    nodes = ui.graphql(
        "{ assetNodes { assetKey { path } dependencyKeys { path } groupName tags { key value } } }"
    )["assetNodes"]
    deps = {
        _key(n["assetKey"]["path"]): sorted(_key(d["path"]) for d in n["dependencyKeys"])
        for n in nodes
    }
    assert {k: deps[k] for k in LINEAGE} == {
        LINEAGE[0]: [],
        LINEAGE[1]: [LINEAGE[0]],
        LINEAGE[2]: [LINEAGE[1]],
        LINEAGE[3]: [LINEAGE[2]],
    }
    # Every asset's group is its layer's (one policy in definitions.py, from the layer tag).
    groups = {_key(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    layers = {
        _key(n["assetKey"]["path"]): next(t["value"] for t in n["tags"] if t["key"] == "layer")
        for n in nodes
    }
    assert groups == {key: LAYER_GROUPS[layer] for key, layer in layers.items()}
    assert {groups[k] for k in LINEAGE} == {"raw", "landing", "refined", "reports"}
    assert set(LAYER_GROUPS.values()) <= set(groups.values())
    twins = ["ibov_portfolio", "ibov_teorica", "ibov_previa"]
    assert {g for k, g in groups.items() if k.split("/")[1] in twins} == {"raw", "landing"}

    # The global lineage graph draws one labelled box per group: the two ibov_portfolio
    # nodes (same last key segment) sit in the boxes "raw" and "landing".
    from playwright.sync_api import expect

    page.set_viewport_size({"width": VIEWPORT["width"], "height": 900})
    page.goto(f"{ui.url}/asset-groups")
    boxes = page.locator("foreignObject.group")
    for name in sorted(set(groups.values())):
        expect(boxes.filter(has_text=re.compile(rf"^{name}"))).to_have_count(1)
    # Laid out by the lineage: raw, then landing, then refined, then reports.
    x = {name: _box_x(boxes, name) for name in ("raw", "landing", "refined", "reports")}
    assert x["raw"] < x["landing"] < x["refined"] < x["reports"], x
    # Every group open (the graph's menu): each twin node sits in its layer's box.
    page.mouse.click(VIEWPORT["width"] - 300, 160, button="right")  # the empty canvas
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    for twin in twins:
        nodes = page.locator("foreignObject:not(.group)").filter(has_text=re.compile(rf"^{twin}"))
        expect(nodes).to_have_count(2)
        inside = sorted(_enclosing_group(page, nodes.nth(i)) for i in range(2))
        assert inside == ["landing", "raw"], (twin, inside)
    zoom_out = page.locator("button", has=page.get_by_role("img", name="zoom_out"))
    for _ in range(3):  # the whole graph in view
        zoom_out.click()
    page.wait_for_timeout(500)  # the zoom's animation, not a page load
    page.screenshot(path=shots / "asset-graph.png")


def _box_x(boxes: Any, name: str) -> float:
    box = boxes.filter(has_text=re.compile(rf"^{name}")).first
    return float(box.get_attribute("x"))


def _enclosing_group(page: Any, node: Any) -> str:
    """The label of the group box whose rectangle holds ``node`` (SVG coordinates)."""
    x, y = float(node.get_attribute("x")), float(node.get_attribute("y"))
    for box in page.locator("foreignObject.group").all():
        bx, by = float(box.get_attribute("x")), float(box.get_attribute("y"))
        bw, bh = float(box.get_attribute("width")), float(box.get_attribute("height"))
        if bx <= x <= bx + bw and by <= y <= by + bh:
            return (box.text_content() or "").split()[0]
    return "none"


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


def _row(page: Any, name: str) -> Any:
    """A metadata table's row by its label."""
    return page.locator("tr", has=page.get_by_text(name, exact=True))


def test_refined_partition_shows_the_run_and_job_that_recorded_it(ui, page, shots):
    """refined is recorded by a run (the daily run, after its landing write refined the date),
    so the partition names that run and its job, not "Run None / Job None"."""
    from playwright.sync_api import expect

    run_id = ui.daily_run_ids[DAY2]
    page.goto(f"{ui.url}/assets/refined/b3_etl_soma_acao?view=partitions&partition={DAY2}")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.locator(f"a[href*='/runs/{run_id}']").first).to_have_text(run_id[:8])
    job = page.get_by_role("link", name=re.compile(r"^daily_ibov_portfolio"))
    expect(job.first).to_be_visible()
    expect(_row(page, "glue_job_run_id")).to_contain_text("jr_")
    expect(_row(page, "state")).to_contain_text("SUCCEEDED")
    page.screenshot(path=shots / "refined-partition.png")


def test_each_check_shows_its_latest_real_result(ui, page, shots):
    """The Checks tab shows each check's latest evaluation of what is stored: the refined
    checks "Succeeded" (they were "Not evaluated" when a sensor recorded refined outside any
    run), and after the failed collection landing's checks still show their last real
    evaluation, not "Execution failed"."""
    from playwright.sync_api import expect

    data = ui.graphql(
        "{ assetNodes(assetKeys: [{path: [\"landing\", \"ibov_portfolio\"]}, "
        "{path: [\"refined\", \"b3_etl_soma_acao\"]}]) { assetKey { path } assetChecksOrError "
        "{ ... on AssetChecks { checks { name executionForLatestMaterialization { status runId "
        "partition } } } } } runOrError(runId: \"" + ui.failed_run_id + "\") "
        "{ ... on Run { status } } }"
    )
    assert data["runOrError"]["status"] == "FAILURE"  # the collection of FAILED_DAY failed
    latest = {
        (_key(n["assetKey"]["path"]), c["name"]): c["executionForLatestMaterialization"]
        for n in data["assetNodes"]
        for c in n["assetChecksOrError"]["checks"]
    }
    refined = {name: latest[("refined/b3_etl_soma_acao", name)] for name in REFINED_CHECKS}
    assert {n: (e or {}).get("status") for n, e in refined.items()} == dict.fromkeys(
        REFINED_CHECKS, "SUCCEEDED"
    )
    assert {e["runId"] for e in refined.values()} == {ui.daily_run_ids[DAY2]}
    valid = latest[("landing/ibov_portfolio", VALID_PORTFOLIO)]
    assert (valid["status"], valid["partition"]) == ("SUCCEEDED", DAY2)
    freshness = latest[("landing/ibov_portfolio", "freshness_check")]
    assert freshness["status"] == "FAILED" and freshness["runId"] != ui.failed_run_id

    def status_of(name: str) -> Any:
        return page.locator(f"span:has(> div[title='{name}'])")

    page.goto(f"{ui.url}/assets/refined/b3_etl_soma_acao?view=checks")
    for name in REFINED_CHECKS:
        expect(status_of(name)).to_contain_text("Succeeded")
    expect(page.get_by_text("Not evaluated", exact=False)).to_have_count(0)
    page.screenshot(path=shots / "refined-checks.png")
    page.goto(f"{ui.url}/assets/landing/ibov_portfolio?view=checks")
    expect(status_of(VALID_PORTFOLIO)).to_contain_text("Succeeded")
    expect(status_of("freshness_check")).to_contain_text("Failed")  # a real evaluation
    expect(page.get_by_text("Execution failed")).to_have_count(0)


@pytest.mark.parametrize("day,previous", [(DAY2, DAY1), (DAY1, "none")])
def test_report_charts_show_without_a_click(ui, page, shots, day, previous):
    """The top 15 as a table with a text bar per row, inline on the partition page; the PNGs
    one click away (markdown over 1,000 characters sits behind "[Show Markdown]")."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1200})
    page.goto(f"{ui.url}/assets/report/ibov_composition?view=partitions&partition={day}")
    expect(_row(page, "previous_date")).to_contain_text(previous)
    expect(_row(page, "top15_uri")).to_contain_text(f"{day}/top15.png")
    top = _row(page, "top15")
    first = top.locator("table tr", has=page.get_by_text(ui.heaviest_issuer, exact=False)).first
    expect(first).to_be_visible()  # no click: the table is open on the page
    expect(first).to_contain_text("█" * 20)  # the heaviest issuer fills the bar column
    if day == DAY2:
        page.screenshot(path=shots / "report-images.png")
    for name in ("changes", "top15"):
        _row(page, f"{name}_png").get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog")
        image = dialog.locator(f"img[alt='{name}']")
        expect(image).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        assert image.evaluate("img => img.naturalWidth") == 900
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_have_count(0)


def test_a_settings_error_fails_the_code_location_with_its_message(
    ui, tmp_path, page, shots
):
    """A typo in B3_BASE_URL: the code location fails to load, and the first line of its error
    (Deployment → View error) is the setting's message, not Dagster's "Error occurred during
    the loading of Dagster definitions"."""
    from playwright.sync_api import expect

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    bad = UI(f"http://127.0.0.1:{_free_port()}", home, tmp_path / "lake", 0, "",
             tmp_path / "webserver.log")  # fmt: skip
    env = {**os.environ, "DAGSTER_HOME": str(home), "B3_DATA_DIR": str(bad.lake),
           "B3_BASE_URL": BAD_BASE_URL}  # fmt: skip
    expected = (
        f"b3_assets.settings.SettingsError: B3_BASE_URL={BAD_BASE_URL!r} is not an http(s) "
        "URL such as https://sistemaswebb3-listados.b3.com.br."
    )
    proc = _start_webserver(bad, env)
    try:
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                (entry,) = bad.graphql(query)["workspaceOrError"]["locationEntries"]
                if entry["locationOrLoadError"]:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, _log_tail(bad.log)
            time.sleep(0.5)  # polling a starting server
        error = entry["locationOrLoadError"]
        assert error["__typename"] == "PythonError"
        assert error["message"].splitlines()[0] == expected
        page.goto(f"{bad.url}/locations")
        expect(page.get_by_text("Failed", exact=True)).to_be_visible()
        page.get_by_text("View error").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Code location error")
        first_line = dialog.get_by_text(re.compile(r"^b3_assets\.settings\.SettingsError: "))
        expect(first_line).to_have_text(expected)
        page.screenshot(path=shots / "settings-error.png")
    finally:
        _stop(proc)


def test_freshness_and_the_gap_audit_show_in_the_ui(ui, page, shots):
    """Never miss a day without knowing: landing's freshness check (failed: today's session
    has not landed) on the asset's checks, and the audit's list of missing days with fixes."""
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/assets/landing/ibov_portfolio?view=checks")
    page.get_by_text("freshness_check", exact=True).first.click()
    expect(
        page.get_by_text(re.compile(r"^\d{4}-\d{2}-\d{2} has not landed by 09:30 São Paulo"))
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
    # The IBOV automation (other domains, e.g. every B3 index, add their own).
    assert {
        "daily_ibov_portfolio_0830": "RUNNING",
        "period_portfolios_0835": "RUNNING",
        "daily_ibov_portfolio_second_attempt_0945": "RUNNING",
        "landing_gap_audit_0950": "RUNNING",
    }.items() <= {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}.items()
    assert {
        "glue_job_runs": "RUNNING",
        "refined_reconciliation": "RUNNING",
        "landing_freshness": "RUNNING",
    }.items() <= {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}.items()
    page.goto(f"{ui.url}/automation")
    expect(page.get_by_text("Loading automations")).to_have_count(0)
    for name, kind in [("daily_ibov_portfolio_0830", "08:30"), ("glue_job_runs", "sensor")]:
        item = page.locator("div[data-index]").filter(has_text=name)
        expect(item).to_contain_text(kind)
        expect(item.locator("[class*='formatSwitch'] input[type=checkbox]")).to_be_checked()
    page.screenshot(path=shots / "automation.png")
