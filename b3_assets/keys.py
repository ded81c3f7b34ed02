"""Every asset key of the lineage, and its owners, in one place.

A domain folder names another domain's asset through this module, never by importing that
domain's assets: the folders then depend on each other only where they share logic, and the
lineage can be read here top to bottom (docs/architecture.md)."""

from __future__ import annotations

import dagster as dg

from glue.layout import MART_NAMES

#: Who answers for every asset (set once, by definitions.asset_policy).
OWNERS = ["team:b3-pipeline"]

# --- the day's IBOV portfolio: raw -> landing -> refined (the Glue job) ---------------------
RAW = dg.AssetKey(["raw", "ibov_portfolio"])
LANDING = dg.AssetKey(["landing", "ibov_portfolio"])
REFINED = dg.AssetKey(["refined", "b3_etl_soma_acao"])
#: The landing dates missing from the calendar (portfolio/audit.py).
AUDIT = dg.AssetKey(["audit", "landing_gaps"])

# --- B3's views of the four-month period (period_views/) -------------------------------------
PERIOD_VIEWS: tuple[str, str] = ("teorica", "previa")
PERIOD_RAW_KEYS: dict[str, dg.AssetKey] = {
    v: dg.AssetKey(["raw", f"ibov_{v}"]) for v in PERIOD_VIEWS
}
PERIOD_LANDING_KEYS: dict[str, dg.AssetKey] = {
    v: dg.AssetKey(["landing", f"ibov_{v}"]) for v in PERIOD_VIEWS
}

# --- the IBOV marts (marts/) and the reports (reports/) --------------------------------------
MART_KEYS: dict[str, dg.AssetKey] = {name: dg.AssetKey(["marts", name]) for name in MART_NAMES}
REPORT = dg.AssetKey(["report", "ibov_composition"])
REPORT_MARTS = dg.AssetKey(["report", "ibov_marts"])

# --- every B3 index (indices/) and the index levels (levels/) -------------------------------
RAW_INDICES = dg.AssetKey(["raw", "b3_indices"])
LANDING_CARTEIRAS = dg.AssetKey(["landing", "b3_carteiras"])
LANDING_COMPOSICAO = dg.AssetKey(["landing", "b3_composicao"])
B3_MOVIMENTOS = dg.AssetKey(["marts", "b3_movimentos"])
RAW_LEVELS = dg.AssetKey(["raw", "b3_index_levels"])
LANDING_LEVELS = dg.AssetKey(["landing", "b3_indices_fechamento"])
