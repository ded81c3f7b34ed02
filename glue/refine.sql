-- Refined table b3_etl_soma_acao (docs/contracts.md): one row per issuer per portfolio date.
--
-- Written once in Spark SQL. The Glue job runs it as is; the local runner runs the same text
-- transpiled by sqlglot to DuckDB (glue/transform.py). Keep it to constructs both engines
-- share, with explicit casts so both give the same types.
--
-- Inputs (temp views registered by the caller, never values pasted into this text):
--   carteira_atual     landing rows of the date being refined (setor/subsetor null in files
--                      written before landing had them: the caller adds the columns)
--   carteira_anterior  landing rows of the previous landing date (empty if there is none)
--   execucao           one row: data_carteira DATE, data_carteira_anterior DATE,
--                      processado_em TIMESTAMP
-- The joins on execucao keep only rows of the expected dates, so a stray row of another date
-- in a landing file can never be filed under the wrong DataCarteira.
WITH atual AS (
  SELECT
    substring(c.codigo, 1, 4) AS acao_raiz,
    c.codigo,
    c.acao,
    c.qtde_teorica,
    c.participacao_pct,
    c.setor,
    c.subsetor
  FROM carteira_atual AS c
  JOIN execucao AS e
    ON c.data_carteira = e.data_carteira
),
por_emissor AS (
  SELECT
    acao_raiz,
    min(acao) AS empresa,
    array_join(array_sort(collect_list(codigo)), ',') AS tickers,
    CAST(count(*) AS INT) AS qtd_classes,
    CAST(sum(qtde_teorica) AS BIGINT) AS qtd_teorica_total,
    CAST(sum(participacao_pct) AS DECIMAL(9, 3)) AS participacao_total_pct,
    min(setor) AS setor,
    min(subsetor) AS subsetor
  FROM atual
  GROUP BY acao_raiz
),
anterior AS (
  SELECT
    substring(a.codigo, 1, 4) AS acao_raiz,
    CAST(sum(a.participacao_pct) AS DECIMAL(9, 3)) AS participacao_total_pct
  FROM carteira_anterior AS a
  JOIN execucao AS e
    ON a.data_carteira = e.data_carteira_anterior
  GROUP BY substring(a.codigo, 1, 4)
)
SELECT
  p.empresa,
  p.tickers,
  p.qtd_classes,
  p.qtd_teorica_total,
  p.participacao_total_pct,
  e.data_carteira_anterior,
  CAST(datediff(e.data_carteira, e.data_carteira_anterior) AS INT) AS dias_desde_carteira_anterior,
  CAST(p.participacao_total_pct - a.participacao_total_pct AS DECIMAL(9, 3))
    AS variacao_participacao_pp,
  e.processado_em,
  p.setor,
  p.subsetor,
  date_format(e.data_carteira, 'yyyy-MM-dd') AS DataCarteira,
  p.acao_raiz AS Acao
FROM por_emissor AS p
CROSS JOIN execucao AS e
LEFT JOIN anterior AS a
  ON a.acao_raiz = p.acao_raiz
ORDER BY Acao
