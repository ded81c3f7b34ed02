-- Mart ibov_movimentos (docs/contracts.md "Marts"): one row per ticker that entered or left the IBOV
-- portfolio between the previous landing date and data_carteira.
--
-- Written once in Athena's dialect (Trino). Locally (and in Dagster on AWS) the same text runs
-- on DuckDB, transpiled by sqlglot (b3_assets/marts/ibov_marts.py); keep to constructs both engines share,
-- with explicit casts, and no division (DuckDB divides decimals in DOUBLE).
--
-- Inputs (relations registered by the caller, never values pasted into this text):
--   carteira_atual     landing rows of the dates computed (LANDING_SCHEMA)
--   carteira_anterior  landing rows of their previous landing dates (may be empty)
--   execucao           one row per date computed: data_carteira DATE,
--                      data_carteira_anterior DATE (null when the date has no previous one)
-- Every join goes through execucao, so one run computes a single date or a whole backfill
-- range, and a stray row of another date in a landing file is never counted.
-- A date with no previous landing date has no movements (nothing to compare with).
WITH atual AS (
  SELECT
    e.data_carteira,
    e.data_carteira_anterior,
    c.codigo,
    c.acao,
    c.participacao_pct
  FROM carteira_atual AS c
  JOIN execucao AS e
    ON c.data_carteira = e.data_carteira
),
anterior AS (
  SELECT
    e.data_carteira,
    e.data_carteira_anterior,
    a.codigo,
    a.acao,
    a.participacao_pct
  FROM carteira_anterior AS a
  JOIN execucao AS e
    ON a.data_carteira = e.data_carteira_anterior
),
entradas AS (
  SELECT
    t.data_carteira,
    t.data_carteira_anterior,
    t.codigo,
    t.acao,
    'entrada' AS movimento,
    t.participacao_pct
  FROM atual AS t
  LEFT JOIN anterior AS p
    ON p.data_carteira = t.data_carteira
    AND p.codigo = t.codigo
  WHERE t.data_carteira_anterior IS NOT NULL
    AND p.codigo IS NULL
),
saidas AS (
  SELECT
    p.data_carteira,
    p.data_carteira_anterior,
    p.codigo,
    p.acao,
    'saida' AS movimento,
    p.participacao_pct
  FROM anterior AS p
  LEFT JOIN atual AS t
    ON t.data_carteira = p.data_carteira
    AND t.codigo = p.codigo
  WHERE t.codigo IS NULL
),
movimentos AS (
  SELECT data_carteira, data_carteira_anterior, codigo, acao, movimento, participacao_pct
  FROM entradas
  UNION ALL
  SELECT data_carteira, data_carteira_anterior, codigo, acao, movimento, participacao_pct
  FROM saidas
)
SELECT
  data_carteira,
  data_carteira_anterior,
  codigo,
  acao,
  CAST(movimento AS VARCHAR) AS movimento,
  CAST(participacao_pct AS DECIMAL(7, 3)) AS participacao_pct
FROM movimentos
ORDER BY data_carteira, movimento, codigo
