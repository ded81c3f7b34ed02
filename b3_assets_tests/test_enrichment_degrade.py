"""An enrichment never costs the day: B3's sector view answering without labels lands the
plain portfolio (segment 1) with null sectors; the next day, labelled, lands with them (before:
the whole day was rejected, "constituents without a sector label in B3's sector view")."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from b3_assets.landing import read_landing
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.support.chain import local_platform, materialize

DAY1 = DEFAULT_DATE
DAY2 = DEFAULT_DATE + timedelta(days=1)


def _landed(platform, day: date) -> list[tuple]:
    rows = read_landing(platform.lake, day).to_pylist()
    return [(r["codigo"], r["qtde_teorica"], r["participacao_pct"], r["setor_b3"]) for r in rows]


def test_an_unlabelled_sector_view_lands_the_plain_portfolio(tmp_path, b3_replica):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    served = b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    result = materialize(platform, DAY1.isoformat(), instance=instance)
    assert result.success
    landed = _landed(platform, DAY1)
    expected = sorted((c.codigo, c.qtde_teorica, c.participacao_pct) for c in
                      served.constituents("1"))
    assert [row[:3] for row in landed] == expected  # exactly as served
    assert {row[3] for row in landed} == {None}  # sectors null, not invented
    asked = [r.path for r in b3_replica.api_requests()]
    assert len(asked) >= 2  # the sector view, then the plain view
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("sector view failed its own rules" in m and "refetch: true" in m for m in logs)
    # The next day B3 labels again: that day lands with its sectors.
    b3_replica.reset()
    b3_replica.set_portfolio(DAY2)
    assert materialize(platform, DAY2.isoformat(), instance=instance).success
    assert all(row[3] for row in _landed(platform, DAY2))
