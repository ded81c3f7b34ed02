-- The IBOV composition on one portfolio date: one row per issuer, heaviest first.
--
-- ? 1: the portfolio date as text 'YYYY-MM-DD' (DataCarteira is a string partition column).
-- Runs unchanged on DuckDB (local catalog) and Athena (Trino): plain SQL, `?` parameters,
-- lower-case aliases (Athena returns lower-case column names; DuckDB keeps the alias).
-- Used by b3_assets/reports/report.py (report/ibov_composition).
SELECT
  DataCarteira AS data_carteira,
  Acao AS acao,
  empresa,
  tickers,
  qtd_classes,
  participacao_total_pct,
  variacao_participacao_pp,
  data_carteira_anterior
FROM b3_etl_soma_acao
WHERE DataCarteira = ?
ORDER BY participacao_total_pct DESC, acao
