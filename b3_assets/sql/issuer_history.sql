-- One issuer's weight in the IBOV across every refined portfolio date, oldest first.
--
-- ? 1: the issuer root, upper case, e.g. 'PETR' (Acao is a string partition column, so Athena
--      reads only that issuer's folders).
-- Runs unchanged on DuckDB (local catalog) and Athena (Trino).
-- Used by b3_assets/report.py (`b3-pipeline plot PETR`).
SELECT
  DataCarteira AS data_carteira,
  Acao AS acao,
  empresa,
  tickers,
  participacao_total_pct,
  variacao_participacao_pp
FROM b3_etl_soma_acao
WHERE Acao = ?
ORDER BY data_carteira
