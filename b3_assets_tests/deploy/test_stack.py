"""The container route's pieces that need no container (issue #18): `b3-health` says which
part is still starting and what it waits for, the settings file with secrets is never
committed, and the repository points to no document users do not have. The route itself runs
in test_container.py (slow tier)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def health(monkeypatch, tmp_path):
    """deploy/health.py, every part pointed at a closed port and an empty Dagster instance."""
    spec = importlib.util.spec_from_file_location("b3_health", REPO / "deploy" / "health.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for key, value in {
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "9",
        "B3_HEALTH_CODE": "127.0.0.1:9",
        "B3_HEALTH_WEBSERVER": "127.0.0.1:9",
        "B3_ROLE": "daemon",
    }.items():
        monkeypatch.setenv(key, value)
    return module


def test_health_names_what_each_part_still_waits_for(health, monkeypatch, capsys):
    monkeypatch.setenv("B3_HEALTH_START_PERIOD", "1e12")  # as in a container just started
    assert health.main(["all"]) == 1
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert list(lines) == ["postgres", "code", "webserver", "daemon"]
    assert lines["postgres"].startswith(
        "starting: waiting for PostgreSQL at 127.0.0.1:9 to accept connections ("
    )
    assert "refused" in lines["postgres"]
    assert lines["code"].startswith(
        "starting: waiting for the code server on 127.0.0.1:9 to load b3_assets.definitions"
    )
    assert lines["webserver"].startswith("starting: waiting for http://127.0.0.1:9/server_info (")
    # Its heartbeats are in PostgreSQL: no use asking Dagster's storage before it answers.
    assert (
        lines["daemon"] == "starting: waiting for PostgreSQL at 127.0.0.1:9 to accept connections"
    )
    # With storage up (the instance in DAGSTER_HOME here), a daemon that has not beaten yet:
    ok, line = health.check("daemon", local=False)
    assert not ok
    assert line.startswith("daemon: starting: waiting for the first heartbeat of "), line
    assert "SCHEDULER" in line and "SENSOR" in line


def test_health_fails_with_the_reason_after_the_start_period(health, monkeypatch, capsys):
    monkeypatch.setenv("B3_HEALTH_START_PERIOD", "0")
    assert health.main(["all"]) == 1
    for line in capsys.readouterr().out.splitlines():
        part, verdict = line.split(": ", 1)
        assert verdict.startswith("FAILED: waiting for "), line


def test_the_settings_file_with_secrets_is_never_committed():
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, "deploy/.env (passwords, AWS keys) must be in .gitignore"


def test_nothing_points_to_documents_users_do_not_have():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in tracked:
        path = REPO / name
        if path.suffix in {".md", ".sh", ".py", ".yaml", ".conf", ""} and path.is_file():
            text = path.read_text(errors="replace")
            if name == "b3_assets_tests/deploy/test_stack.py":
                continue
            assert "CONTAINERS.md" not in text, name
            assert "../shared" not in text, name
