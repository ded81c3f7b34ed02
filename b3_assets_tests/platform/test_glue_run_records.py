"""The sensor reads the local Glue run records as Glue would answer them: a record of the
wrong shape (hand-edited, foreign, from an older version) is skipped and named, every tick
goes on (before: ``"Arguments": "x"`` stopped every tick with an AttributeError,
``"ExecutionSeconds": "abc"`` with a ValueError)."""

from __future__ import annotations

import json
import logging

import dagster as dg
import pytest

from b3_assets.platform.local_aws import check_record_types
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.chain import local_platform, materialize, sensor_tick

GOOD = {"Id": "jr_1", "JobName": "b3", "JobRunState": "SUCCEEDED",
        "StartedOn": "2099-01-01T00:00:00+00:00", "Arguments": {"--data_carteira": "2025-03-05"},
        "ExecutionSeconds": 1.5}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("Arguments", "x", "Arguments is 'x', not an object of strings"),
        ("Arguments", {"--data_carteira": 20250305}, "not an object of strings"),
        ("ExecutionSeconds", "abc", "ExecutionSeconds is 'abc', not a number"),
        ("ExecutionTime", True, "ExecutionTime is True, not a number"),
        ("JobRunState", None, "JobRunState is None, not a string"),
        ("ErrorMessage", ["boom"], "ErrorMessage is ['boom'], not a string"),
    ],
)
def test_each_wrong_type_is_named(field, value, words):
    check_record_types(dict(GOOD))
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(")):
        check_record_types({**GOOD, field: value})


def test_the_sensor_skips_records_of_the_wrong_types_and_goes_on(tmp_path, b3_replica, caplog):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(platform, DEFAULT_DATE.isoformat(), instance=instance).success
    runs = tmp_path / "_glue_job_runs"
    bad = {"20990101T000000000000-arguments.json": {**GOOD, "Arguments": "x"},
           "20990101T000000000001-seconds.json": {**GOOD, "Id": "jr_2",
                                                  "ExecutionSeconds": "abc"},
           "20990101T000000000002-list.json": [GOOD]}
    for name, record in bad.items():
        (runs / name).write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING):
        first = sensor_tick(platform, instance)
        second = sensor_tick(platform, instance)  # and the next tick too
    for tick in (first, second):
        assert not tick.run_requests and tick.skip_message
    for name in bad:
        assert name in caplog.text
