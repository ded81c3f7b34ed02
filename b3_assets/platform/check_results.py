"""How every asset check reports a result: one evaluation per check and partition, with the
outcome's metadata shown as written, and who evaluates (the asset's step or the check's own).

The rules themselves are plain functions returning a :data:`CheckOutcome` (portfolio/quality.py,
the marts', the indices'); this module is the one place they become Dagster results."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import dagster as dg

#: A rule's verdict: passed, and the metadata a user reads in the UI (offending values…).
CheckOutcome = tuple[bool, dict[str, Any]]


def check_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers, flags and Dagster metadata values as they are; anything else as text."""
    return {
        k: v if isinstance(v, int | bool | dg.MetadataValue) else dg.MetadataValue.text(str(v))
        for k, v in values.items()
    }


def check_evaluation(
    key: dg.AssetKey, name: str, day: str, outcome: CheckOutcome, **options: Any
) -> dg.AssetCheckEvaluation:
    """The result of check ``name`` of ``key`` for the partition ``day`` (``options``:
    severity, description)."""
    passed, meta = outcome
    return dg.AssetCheckEvaluation(
        asset_key=key, check_name=name, passed=passed, partition=day,
        metadata=check_metadata({"data_carteira": day, **meta}), **options,
    )


def evaluated_by_own_step(
    context: dg.AssetExecutionContext, keys: Collection[dg.AssetCheckKey]
) -> bool:
    """Whether this run evaluates any of ``keys`` in the checks' own step (the run selected
    them: the UI's asset page adds an asset's checks); else the asset's step evaluates them."""
    selection = context.run.asset_check_selection
    if selection is None:  # the whole job: the checks it contains
        selection = context.job_def.asset_layer.asset_graph.asset_check_keys
    return bool(set(keys) & set(selection))
