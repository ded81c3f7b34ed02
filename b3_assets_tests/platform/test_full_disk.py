"""A full disk during the local refine: named, nothing half-written, repaired once there is
space. The lake is a small tmpfs (root mounts it; CI runs as root)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from b3_assets.platform.catalog import DuckDBCatalog
from b3_assets.platform.resources import resources_for
from b3_assets.settings import Settings
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.support.ci import skip_unless
from b3_assets_tests.support.landing_factory import landing_table
from b3_assets_tests.support.local_lake import land, refined_rows
from glue.layout import landing_key

DAY1, DAY2 = date(2025, 3, 18), date(2025, 3, 19)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    skip_unless(os.geteuid() == 0, "mounting a small tmpfs needs root")
    lake = tmp_path / "lake"
    lake.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(lake)], check=True)
    try:
        yield lake
    finally:
        subprocess.run(["umount", "-l", str(lake)], check=False)


def _fill(lake: Path, leave: int) -> Path:
    """Fill the disk until ``leave`` bytes are free."""
    filler = lake / "filler.bin"
    free = os.statvfs(lake).f_bavail * os.statvfs(lake).f_frsize
    with filler.open("wb") as out:
        try:
            out.write(b"\0" * max(0, free - leave))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_during_the_refine_is_named_and_repaired_with_space(small_disk):
    land(small_disk, DAY1)
    before = refined_rows(small_disk)
    resources = resources_for(Settings(data_dir=small_disk))
    lake = resources["lake"].get()
    filler = _fill(small_disk, leave=96 * 1024)  # room for the landing file, not the refine
    try:
        lake.write_bytes(landing_key(DAY2), landing_parquet(landing_table(DAY2)))
    except OSError as exc:  # no room even for the run record: the error says so
        message = str(exc)
        assert "run record could not be written" in message
    else:
        runs = sorted((small_disk / "_glue_job_runs").glob("*.json"))
        message = runs[-1].read_text()
        assert '"FAILED"' in message
    assert "no space left" in message.lower()
    assert str(small_disk) in message and "Free space" in message
    assert refined_rows(small_disk) == before  # the published dates are whole, nothing torn
    filler.unlink()
    assert resources["glue_job"].after_landing([], None) == []  # the catch-up, with space
    published = DuckDBCatalog(small_disk).query(
        "SELECT DISTINCT DataCarteira AS d FROM b3_etl_soma_acao ORDER BY 1").rows
    assert published == [(DAY1.isoformat(),), (DAY2.isoformat(),)]
