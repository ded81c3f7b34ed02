-- Mart b3_movimentos (docs/contracts.md "Every B3 index"): ibov_movimentos for every index. One
-- row per ticker that entered or left an index between that index's previous landing date
-- (landing/indices/dt=…/carteiras.parquet, a B3 session) and data_carteira.
--
-- Written once in Athena's dialect (Trino). Dagster runs the same text on DuckDB, transpiled by
-- sqlglot (b3_assets/marts/queries.py to_duckdb); keep to constructs both engines share, with explicit
-- casts, and no division.
--
-- Inputs (relations registered by the caller, never values pasted into this text):
--   carteira_atual     b3_carteiras rows of the dates computed (LANDING_SCHEMA, with indice)
--   carteira_anterior  b3_carteiras rows of their previous landing dates (may be empty)
--   execucao           one row per (date computed, index landed on it): data_carteira DATE,
--                      indice VARCHAR, data_carteira_anterior DATE (the latest earlier landing
--                      date holding that index; null when none: a new index, the first date)
-- Each index is compared with its own previous date, so an index missing on one date (a failed
-- collection, its 09:50 second attempt pending) never shows all its tickers leaving, and an
-- index missing on D shows no movement on D.
WITH atual AS (
  SELECT
    e.data_carteira,
    e.data_carteira_anterior,
    e.indice,
    c.codigo,
    c.acao,
    c.participacao_pct
  FROM carteira_atual AS c
  JOIN execucao AS e
    ON c.data_carteira = e.data_carteira
    AND c.indice = e.indice
),
anterior AS (
  SELECT
    e.data_carteira,
    e.data_carteira_anterior,
    e.indice,
    a.codigo,
    a.acao,
    a.participacao_pct
  FROM carteira_anterior AS a
  JOIN execucao AS e
    ON a.data_carteira = e.data_carteira_anterior
    AND a.indice = e.indice
),
entradas AS (
  SELECT
    t.data_carteira,
    t.data_carteira_anterior,
    t.indice,
    t.codigo,
    t.acao,
    'entrada' AS movimento,
    t.participacao_pct
  FROM atual AS t
  LEFT JOIN anterior AS p
    ON p.data_carteira = t.data_carteira
    AND p.indice = t.indice
    AND p.codigo = t.codigo
  WHERE t.data_carteira_anterior IS NOT NULL
    AND p.codigo IS NULL
),
saidas AS (
  SELECT
    p.data_carteira,
    p.data_carteira_anterior,
    p.indice,
    p.codigo,
    p.acao,
    'saida' AS movimento,
    p.participacao_pct
  FROM anterior AS p
  LEFT JOIN atual AS t
    ON t.data_carteira = p.data_carteira
    AND t.indice = p.indice
    AND t.codigo = p.codigo
  WHERE t.codigo IS NULL
),
movimentos AS (
  SELECT data_carteira, data_carteira_anterior, indice, codigo, acao, movimento, participacao_pct
  FROM entradas
  UNION ALL
  SELECT data_carteira, data_carteira_anterior, indice, codigo, acao, movimento, participacao_pct
  FROM saidas
)
SELECT
  data_carteira,
  data_carteira_anterior,
  indice,
  codigo,
  acao,
  CAST(movimento AS VARCHAR) AS movimento,
  CAST(participacao_pct AS DECIMAL(7, 3)) AS participacao_pct
FROM movimentos
ORDER BY data_carteira, indice, movimento, codigo
