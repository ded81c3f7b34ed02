-- The day's biggest weight changes since the previous portfolio, in percentage points,
-- largest move (up or down) first. Issuers absent from the previous portfolio have no
-- change (variacao_participacao_pp is null) and are left out.
--
-- ? 1: the portfolio date as text 'YYYY-MM-DD' (DataCarteira is a string partition column).
-- Runs unchanged on DuckDB (local catalog) and Athena (Trino).
-- Used by b3_assets/reports/report.py (report/ibov_composition, the changes chart).
SELECT
  DataCarteira AS data_carteira,
  Acao AS acao,
  empresa,
  participacao_total_pct,
  variacao_participacao_pp,
  data_carteira_anterior
FROM b3_etl_soma_acao
WHERE DataCarteira = ?
  AND variacao_participacao_pp IS NOT NULL
ORDER BY abs(variacao_participacao_pp) DESC, acao
