"""The landing IO manager: typed Parquet, one file per trading date, on any lake."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pyarrow as pa

from b3_assets.lake import Lake
from b3_assets.landing import landing_key, landing_parquet, read_landing


class LandingIOManager(dg.IOManager):
    """Writes ``landing/ibov/dt=…/ibov.parquet`` (atomic, deterministic) on the folder or S3.

    The asset returns ``{partition_key: table}`` so one run can carry a whole backfill range."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def handle_output(self, context: dg.OutputContext, obj: dict[str, pa.Table]) -> None:
        expected = set(context.asset_partition_keys)
        if set(obj) != expected:
            raise ValueError(
                f"landing output has dates {sorted(obj)}, the run asked for {sorted(expected)}"
            )
        uris = []
        for key in sorted(obj):
            lake_key = landing_key(date.fromisoformat(key))
            self.lake.write_bytes(lake_key, landing_parquet(obj[key]))
            uris.append(self.lake.uri(lake_key))
        context.add_output_metadata(
            {
                "lake_uri": dg.MetadataValue.text(uris[0])
                if len(uris) == 1
                else dg.MetadataValue.text(f"{uris[0]} … {uris[-1]}")
            }
        )

    def load_input(self, context: dg.InputContext) -> dict[str, pa.Table]:
        return {
            key: read_landing(self.lake, date.fromisoformat(key))
            for key in context.asset_partition_keys
        }
