"""Landing writes on a local lake as the landing step makes them; refined rows read back."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from b3_assets.platform.resources import resources_for
from b3_assets.settings import Settings
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.support.landing_factory import landing_table
from glue.layout import landing_key


def land(data_dir: Path, *days: date) -> None:
    """Landing writes through the local lake (event -> Lambda -> runner), then the catch-up,
    exactly as the landing step does them (resources.write_landing)."""
    resources = resources_for(Settings(data_dir=data_dir))
    lake = resources["lake"].get()
    for day in days:
        lake.write_bytes(landing_key(day), landing_parquet(landing_table(day)))
    assert resources["glue_job"].after_landing([], None) == []


def refined_rows(data_dir: Path) -> list[tuple]:
    """Every refined row through the catalog, without the run's own timestamp."""
    engine = resources_for(Settings(data_dir=data_dir))["catalog"].engine()
    result = engine.query("SELECT * EXCLUDE (processado_em) FROM b3_etl_soma_acao ORDER BY ALL")
    return result.rows


