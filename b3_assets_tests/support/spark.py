"""One small local Spark (PySpark 3.5.4, Glue 5.0's) for the tests that need it."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from b3_assets_tests.support.ci import skip_unless

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

def local_spark(request: pytest.FixtureRequest) -> SparkSession:
    """One small local Spark for the whole test session (JVM start-up is the slow part).

    Skips when Java or pyspark is missing; with CI=true that is a failure instead.
    """
    java = shutil.which("java") or (
        os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists()
    )
    skip_unless(bool(java), "no Java runtime (java on PATH or JAVA_HOME) for local Spark")
    skip_unless(importlib.util.find_spec("pyspark") is not None, "pyspark is not installed")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("b3-pipeline-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    request.session.config.add_cleanup(spark.stop)
    return spark


