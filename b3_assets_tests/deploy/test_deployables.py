"""glue/ and lambda_handler/ are deployed on their own: they must import with only what
their runtime has (Glue 5.0: pyspark, boto3, pyarrow; Lambda: boto3 and the stdlib)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from b3_assets.sessions import trading_days
from glue.sessions import covered_until, is_b3_session

REPO = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('not in this runtime: ' + name)
sys.meta_path.insert(0, Block())
for module in {modules!r}:
    __import__(module)
print('ok')
"""


@pytest.mark.parametrize(
    ("modules", "blocked"),
    [
        (["glue.transform", "glue.job", "glue.catalog"], ["b3_assets", "duckdb", "sqlglot"]),
        (
            ["lambda_handler.handler"],
            ["b3_assets", "glue", "duckdb", "sqlglot", "pyarrow", "pandas", "dagster"],
        ),
    ],
)
def test_imports_in_its_own_runtime(modules, blocked):
    code = BLOCKER.format(modules=modules, blocked=set(blocked))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr



def test_the_glue_holiday_list_is_exchange_calendars_and_covers_the_years_ahead():
    """glue/b3_holidays.txt is derived from the calendar the rest of the project uses
    (regenerate it with scripts/write_b3_holidays.py); it must cover at least a year ahead."""
    from scripts.write_b3_holidays import LAST_DAY, OUT, holiday_lines

    assert OUT.read_text().splitlines() == holiday_lines()
    assert covered_until() == LAST_DAY
    assert covered_until() - date.today() > timedelta(days=365), (
        "extend LAST_DAY in scripts/write_b3_holidays.py and run it"
    )


def test_the_glue_session_rule_agrees_with_the_partitions():
    days = [date(2023, 1, 2) + timedelta(days=i) for i in range(1500)]
    assert [d for d in days if is_b3_session(d)] == trading_days(days[0], days[-1])
