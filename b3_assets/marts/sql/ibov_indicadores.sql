-- Mart ibov_indicadores (docs/contracts.md "Marts"): one row per portfolio date.
--
-- Written once in Athena's dialect (Trino); run on DuckDB through sqlglot (b3_assets/marts/queries.py).
-- Inputs: carteira_atual, carteira_anterior, execucao, as in b3_movimentos.sql (indice IBOV).
--
-- Exact numbers in both engines, never DOUBLE:
--   * a weight w (participacao_pct, %, 3 decimals) is the integer p = w * 1000, so
--     hhi = sum((w / 100)^2) = sum(p^2) / 10^10 exactly, by multiplying with a decimal constant;
--   * n_efetivo = 1 / hhi = 10^10 / sum(p^2), to 3 decimals rounded half up, is the integer
--     floor((2 * 10^13 + s) / (2 * s)) with s = sum(p^2), scaled by 0.001. Integer division is
--     the one division allowed here: BIGINT / BIGINT truncates in Trino, and the transpiler
--     turns it into DuckDB's integer division (//), refusing any other division;
--   * giro = 1/2 * sum(|w_D - w_prev|) over the tickers of either date (absent = 0);
--   * every rounding is a CAST to a smaller scale (half up in both engines).
-- Weights are per ticker (share class), like qtd_acoes; qtd_emissores counts 4-letter roots.
WITH atual AS (
  SELECT
    e.data_carteira,
    c.codigo,
    c.participacao_pct,
    CAST(c.participacao_pct * 1000 AS BIGINT) AS peso_milesimos
  FROM carteira_atual AS c
  JOIN execucao AS e
    ON c.data_carteira = e.data_carteira
),
anterior AS (
  SELECT
    e.data_carteira,
    a.codigo,
    a.participacao_pct
  FROM carteira_anterior AS a
  JOIN execucao AS e
    ON a.data_carteira = e.data_carteira_anterior
),
composicao AS (
  SELECT
    data_carteira,
    count(*) AS qtd_acoes,
    count(DISTINCT substr(codigo, 1, 4)) AS qtd_emissores,
    CAST(sum(peso_milesimos * peso_milesimos) AS BIGINT) AS soma_quadrados
  FROM atual
  GROUP BY data_carteira
),
ranking AS (
  SELECT
    data_carteira,
    participacao_pct,
    row_number() OVER (
      PARTITION BY data_carteira ORDER BY participacao_pct DESC, codigo
    ) AS posicao
  FROM atual
),
top10 AS (
  SELECT
    data_carteira,
    sum(participacao_pct) AS top10_pct
  FROM ranking
  WHERE posicao <= 10
  GROUP BY data_carteira
),
variacoes AS (
  SELECT
    coalesce(t.data_carteira, p.data_carteira) AS data_carteira,
    abs(
      coalesce(t.participacao_pct, CAST(0 AS DECIMAL(7, 3)))
      - coalesce(p.participacao_pct, CAST(0 AS DECIMAL(7, 3)))
    ) AS variacao
  FROM atual AS t
  FULL OUTER JOIN anterior AS p
    ON p.data_carteira = t.data_carteira
    AND p.codigo = t.codigo
),
giro AS (
  SELECT
    data_carteira,
    sum(variacao) AS soma_variacoes
  FROM variacoes
  GROUP BY data_carteira
)
SELECT
  e.data_carteira,
  e.data_carteira_anterior,
  CAST(k.qtd_acoes AS INTEGER) AS qtd_acoes,
  CAST(k.qtd_emissores AS INTEGER) AS qtd_emissores,
  CAST(
    CAST(k.soma_quadrados AS DECIMAL(20, 0)) * CAST('0.0000000001' AS DECIMAL(11, 10))
    AS DECIMAL(9, 6)
  ) AS hhi,
  CAST(
    CAST(
      CAST(20000000000000 + k.soma_quadrados AS BIGINT)
      / CAST(2 * nullif(k.soma_quadrados, 0) AS BIGINT)
      AS DECIMAL(20, 0)
    ) * CAST('0.001' AS DECIMAL(4, 3))
    AS DECIMAL(9, 3)
  ) AS n_efetivo,
  CAST(t.top10_pct AS DECIMAL(7, 3)) AS top10_pct,
  CASE
    WHEN e.data_carteira_anterior IS NULL THEN CAST(NULL AS DECIMAL(7, 3))
    ELSE CAST(
      CAST(g.soma_variacoes AS DECIMAL(20, 3)) * CAST('0.5' AS DECIMAL(2, 1))
      AS DECIMAL(7, 3)
    )
  END AS giro_pct
FROM execucao AS e
JOIN composicao AS k
  ON k.data_carteira = e.data_carteira
LEFT JOIN top10 AS t
  ON t.data_carteira = e.data_carteira
LEFT JOIN giro AS g
  ON g.data_carteira = e.data_carteira
ORDER BY e.data_carteira
