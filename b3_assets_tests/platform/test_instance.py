"""The local Dagster instance make dev and b3-pipeline share: run monitoring on, errors named."""

from __future__ import annotations

import dagster as dg
import pytest

from b3_assets.platform.instance import InstanceError, ensure_instance, main


def test_a_new_instance_has_run_monitoring_so_killed_runs_end_as_failed(tmp_path):
    home = ensure_instance(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 2700
        assert not instance.telemetry_enabled


def test_an_existing_instance_keeps_its_settings_and_gains_what_it_lacks(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    ensure_instance(home)
    ensure_instance(home)  # twice: nothing appended twice
    text = (home / "dagster.yaml").read_text()
    assert text.count("run_monitoring:") == 1 and text.startswith("telemetry:\n  enabled: true")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled and instance.telemetry_enabled


def test_an_unusable_home_is_named_with_what_to_do(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InstanceError) as err:
        ensure_instance(blocker / "home")
    assert str(blocker / "home") in str(err.value) and "DAGSTER_HOME" in str(err.value)
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "home"))
    assert main([]) == 2
    assert "DAGSTER_HOME" in capsys.readouterr().err


def test_a_run_clicked_in_the_ui_leaves_the_queue_within_a_second(tmp_path):
    """The daemon dequeues every second, not every 5 s (README, "The first click")."""
    home = ensure_instance(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        assert coordinator.dequeue_interval_seconds == 1
