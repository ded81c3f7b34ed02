-- Mart ibov_setores (docs/contracts.md "Marts"): one row per portfolio date and economic sector.
--
-- Written once in Athena's dialect (Trino); run on DuckDB through sqlglot (b3_assets/marts/queries.py).
-- Inputs: carteira_atual and execucao, as in b3_movimentos.sql (carteira_anterior unused).
--
-- setor is the landing column (B3's classification through the project's curated mapping).
-- A null setor (a CSV import, a file older than the sector columns, a label the mapping does
-- not know yet) stays null: its own row, so the weights of a date still add up to 100, and
-- never folded into 'Outros', which is a real sector of B3's classification.
SELECT
  e.data_carteira,
  c.setor,
  CAST(count(*) AS INTEGER) AS qtd_acoes,
  CAST(sum(c.participacao_pct) AS DECIMAL(7, 3)) AS participacao_pct
FROM carteira_atual AS c
JOIN execucao AS e
  ON c.data_carteira = e.data_carteira
GROUP BY e.data_carteira, c.setor
ORDER BY e.data_carteira, sum(c.participacao_pct) DESC, c.setor
