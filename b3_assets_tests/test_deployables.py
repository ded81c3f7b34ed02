"""glue/ and lambda_handler/ are deployed on their own: they must import with only what
their runtime has (Glue 5.0: pyspark, boto3, pyarrow; Lambda: boto3 and the stdlib)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

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
