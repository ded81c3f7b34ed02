"""``carteiras_outcome``, the rule behind the indices' landing check, on files as stored: every
index B3 listed (or the run failed to collect) has landed, and each landed index passes the
rules every index shares."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from b3_assets.indices.assets import RunMissing, carteiras_outcome
from b3_assets.source.indices import COMPOSICAO_SCHEMA
from b3_assets.storage.lake import LocalLake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.indices.test_b3_movimentos import carteira
from glue.layout import carteiras_key, composicao_key

DAY = date(2025, 3, 5)
MEMBERS = {"IBXL": ["PETR4", "VALE3", "ITUB4"], "SMLL": ["CVCB3", "EZTC3"]}


def _lake(tmp_path: Path, carteiras: pa.Table | None, listed: list[str]) -> LocalLake:
    lake = LocalLake(tmp_path)
    if carteiras is not None:
        lake.write_bytes(carteiras_key(DAY), landing_parquet(carteiras))
    rows = [{"data_captura": DAY, "codigo": "PETR4", "empresa": "PETROBRAS", "tipo": "PN",
             "indice": index} for index in listed]
    lake.write_bytes(composicao_key(DAY), landing_parquet(
        pa.Table.from_pylist(rows, schema=COMPOSICAO_SCHEMA), COMPOSICAO_SCHEMA))
    return lake


def test_every_listed_index_landed_and_sound_passes(tmp_path: Path) -> None:
    passed, meta = carteiras_outcome(_lake(tmp_path, carteira(DAY, MEMBERS), ["IBXL", "SMLL"]),
                                     DAY)
    assert passed and meta == {"indices_landed": 2, "missing_indices": "none",
                               "broken_rules": "none"}


def test_an_index_listed_but_not_landed_is_named_with_the_fix(tmp_path: Path) -> None:
    lake = _lake(tmp_path, carteira(DAY, MEMBERS), ["IBXL", "SMLL", "IDIV"])
    passed, meta = carteiras_outcome(lake, DAY)
    assert not passed and meta["missing_indices"] == "IDIV"
    assert "daily_b3_indices" in meta["fix"] and "2025-03-05" in meta["fix"]
    # An index the run itself failed to collect is expected even if GetStockIndex omitted it.
    passed, meta = carteiras_outcome(_lake(tmp_path / "b", carteira(DAY, MEMBERS), ["IBXL"]),
                                     DAY, RunMissing(indices=("IFIX",)))
    assert not passed and meta["missing_indices"] == "IFIX"


def test_a_landed_index_breaking_a_rule_is_named(tmp_path: Path) -> None:
    table = carteira(DAY, MEMBERS)
    rows = table.to_pylist()
    for row in rows:  # SMLL's weights now add up to 100.011: over the 0.01 tolerance
        if row["indice"] == "SMLL" and row["codigo"] == "CVCB3":
            row["participacao_pct"] += Decimal("0.011")
    broken = pa.Table.from_pylist(rows, schema=table.schema)
    passed, meta = carteiras_outcome(_lake(tmp_path, broken, ["IBXL", "SMLL"]), DAY)
    assert not passed and meta["missing_indices"] == "none"
    assert meta["broken_rules"].startswith("SMLL: ") and "IBXL" not in meta["broken_rules"]


def test_rows_of_another_date_are_named(tmp_path: Path) -> None:
    other = carteira(date(2025, 3, 4), {"SMLL": MEMBERS["SMLL"]})
    mixed = pa.concat_tables([carteira(DAY, {"IBXL": MEMBERS["IBXL"]}), other])
    passed, meta = carteiras_outcome(_lake(tmp_path, mixed, ["IBXL", "SMLL"]), DAY)
    assert not passed and meta["broken_rules"] == "SMLL: rows of another date than 2025-03-05"


def test_no_file_or_no_list_of_indices_fails_saying_so(tmp_path: Path) -> None:
    passed, meta = carteiras_outcome(_lake(tmp_path, None, ["IBXL"]), DAY,
                                     RunMissing(indices=("IBXL",)))
    assert not passed and "does not exist" in meta["problem"]
    assert meta["missing_indices"] == "IBXL"
    failed_list = replace(RunMissing(), membership_failed=True)
    passed, meta = carteiras_outcome(_lake(tmp_path / "b", carteira(DAY, MEMBERS), []), DAY,
                                     failed_list)
    assert not passed
    assert meta["broken_rules"] == "GetStockIndex failed: the list of indices to expect is unknown"
