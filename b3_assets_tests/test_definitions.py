"""A snapshot of what the code location defines: keys, checks, partitions, jobs, automation."""

from __future__ import annotations

from b3_assets.keys import LANDING
from b3_assets.settings import Settings
from b3_assets_tests.support.chain import Platform


def describe(settings: Settings) -> dict:
    defs = Platform(settings).defs
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "group": node.group_name,
            "owners": list(node.owners),
            "checks": sorted(k.name for k in node.check_keys),
            "executable": node.is_executable,
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "first_partition": graph.get(LANDING).partitions_def.get_first_partition_key(),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": {
            s.name: [s.cron_schedule, s.execution_timezone, s.job_name, str(s.default_status)]
            for s in repo.schedule_defs
        },
        "sensors": {
            s.name: [
                s.minimum_interval_seconds,
                str(s.default_status),
                sorted(t.job_name for t in s.targets),
            ]
            for s in repo.sensor_defs
        },
        "resources": {k: type(v).__name__ for k, v in sorted(defs.resources.items())},
    }


def test_local_definitions(snapshot, tmp_path):
    assert describe(Settings(data_dir=tmp_path)) == snapshot


def test_aws_definitions_differ_only_in_resources(tmp_path):
    local = describe(Settings(data_dir=tmp_path))
    aws = describe(Settings(env="aws", bucket="b3-lake"))
    assert {k: v for k, v in local.items() if k != "resources"} == {
        k: v for k, v in aws.items() if k != "resources"
    }
    assert local["resources"].keys() == aws["resources"].keys()
    assert aws["resources"]["lake"] == "S3LakeResource" and aws["resources"]["catalog"] == (
        "AthenaCatalogResource"
    )


def test_the_settings_given_are_the_ones_used_and_no_module_reads_them_at_import(tmp_path):
    """A test's (or a deployment's) settings choose the sensor's interval; importing the
    modules under B3_ENV=aws without B3_BUCKET fails nowhere but in the code location itself."""
    import os
    import subprocess
    import sys

    defs = Platform(Settings(data_dir=tmp_path, sensor_interval_s=7)).defs
    assert defs.resolve_sensor_def("glue_job_runs").minimum_interval_seconds == 7
    env = {**os.environ, "B3_ENV": "aws"}
    env.pop("B3_BUCKET", None)
    modules = (
        "b3_assets.portfolio.sensors, b3_assets.portfolio.reconcile, b3_assets.portfolio.derived, "
        "b3_assets.portfolio.schedules"
    )
    done = subprocess.run([sys.executable, "-c", f"import {modules}"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    location = subprocess.run([sys.executable, "-c", "import b3_assets.definitions"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert location.returncode != 0 and "B3_BUCKET" in location.stderr, location.stderr[-2000:]
