-- One issuer's weight in the IBOV across every refined portfolio date, oldest first.
--
-- ? 1: the issuer root, upper case, e.g. 'PETR'.
-- Reads the yearly history table b3_etl_soma_acao_historico (one object per year, partitioned
-- by ano): on Athena a history over b3_etl_soma_acao would plan every DataCarteira=D/Acao=X
-- partition of every date (~21,000 a year) to keep one issuer's. Locally the historico view
-- reads the same year files as b3_etl_soma_acao.
-- Runs unchanged on DuckDB (local catalog) and Athena (Trino).
-- Used by b3_assets/reports/report.py (`b3-pipeline plot PETR`).
SELECT
  DataCarteira AS data_carteira,
  Acao AS acao,
  empresa,
  tickers,
  participacao_total_pct,
  variacao_participacao_pp
FROM b3_etl_soma_acao_historico
WHERE Acao = ?
ORDER BY data_carteira
