-- Mart ibov_movimentos (docs/contracts.md "Marts"): one row per ticker that entered or left the IBOV
-- portfolio between the previous landing date and data_carteira.
--
-- The rule of entries and exits has one home, b3_movimentos.sql (every index, each against its
-- own previous landing date): this mart is its rows over IBOV's landing rows, without the indice
-- column. mart_sql("ibov_movimentos") (b3_assets/marts/queries.py) puts that file's text in
-- front as the CTE movimentos_indices, so the text Athena would run is one statement.
--
-- Inputs (relations registered by the caller): carteira_atual, carteira_anterior (landing rows,
-- LANDING_SCHEMA) and execucao (one row per date computed: data_carteira DATE, indice 'IBOV',
-- data_carteira_anterior DATE, null when the date has no previous one), as in b3_movimentos.sql.
-- A date with no previous landing date has no movements (nothing to compare with).
SELECT
  data_carteira,
  data_carteira_anterior,
  codigo,
  acao,
  movimento,
  participacao_pct
FROM movimentos_indices
WHERE indice = 'IBOV'
ORDER BY data_carteira, movimento, codigo
