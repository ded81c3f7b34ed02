"""The marts' SQL: one text each in Athena's dialect (``sql/``), transpiled by sqlglot for
DuckDB, keeping every number exact."""

import functools
from importlib import resources

import pyarrow as pa

from b3_assets.marts.errors import MartError
from glue.layout import (
    MART_B3_MOVIMENTOS,
    MART_MOVIMENTOS,
    MART_NAMES,
)

#: ``execucao``: one row per (date computed, index): the previous landing date to compare with.
EXECUCAO_SCHEMA = pa.schema([
    pa.field("data_carteira", pa.date32()), pa.field("indice", pa.string()),
    pa.field("data_carteira_anterior", pa.date32()),
])


# --- the SQL: Athena's dialect, transpiled for DuckDB -------------------------------------


#: The marts written over another SQL file's rows: name -> (CTE name, the file it names).
MART_BASES: dict[str, tuple[str, str]] = {
    MART_MOVIMENTOS: ("movimentos_indices", MART_B3_MOVIMENTOS),
}
SQL_NAMES = (*MART_NAMES, MART_B3_MOVIMENTOS)


def _sql_file(name: str) -> str:
    return resources.files("b3_assets.marts").joinpath("sql", f"{name}.sql").read_text("utf-8")


@functools.cache
def mart_sql(name: str) -> str:
    """The text Athena would run for the mart ``name``: ``b3_assets/marts/sql/<name>.sql``,
    preceded by the file it is written over (:data:`MART_BASES`) as a CTE."""
    if name not in SQL_NAMES:
        raise KeyError(f"no mart {name!r}; the marts are {', '.join(SQL_NAMES)}")
    if name not in MART_BASES:
        return _sql_file(name)
    cte, base = MART_BASES[name]
    return f"WITH {cte} AS (\n{_sql_file(base)}\n)\n{_sql_file(name)}"


def to_duckdb(sql: str, where: str) -> str:
    """Transpile one statement from Athena's dialect (Trino) to DuckDB, keeping numbers exact.

    DuckDB divides in DOUBLE and reads a bare ``DECIMAL`` as ``DECIMAL(18,3)``, where Trino
    divides integers exactly and types ``DECIMAL '0.0001'`` by its digits. So the SQL may divide
    only BIGINT/INTEGER casts (Trino's integer division, made DuckDB's ``//`` here) and must
    give every decimal its precision; anything else is refused, as is a function sqlglot does
    not know in Athena's dialect (it would be passed through unchecked)."""
    import sqlglot
    from sqlglot import exp

    statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    if len(statements) != 1:
        raise MartError(f"{where} must hold exactly one statement, not {len(statements)}")
    tree = statements[0]
    for func in tree.find_all(exp.Anonymous):
        raise MartError(
            f"{where}: {func.name}() is not a function sqlglot knows in Athena's dialect; "
            "use one both Athena and DuckDB have"
        )
    for dtype in tree.find_all(exp.DataType):
        if dtype.this == exp.DataType.Type.DECIMAL and not dtype.expressions:
            raise MartError(
                f"{where}: {dtype.parent.sql('athena') if dtype.parent else 'DECIMAL'} has no "
                "precision (DuckDB would read DECIMAL(18,3)); write CAST('x' AS DECIMAL(p, s))"
            )

    def integer_division(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Div):
            return node
        integers = (exp.DataType.Type.BIGINT, exp.DataType.Type.INT)
        operands = (node.this, node.expression)
        if not all(isinstance(o, exp.Cast) and o.to.this in integers for o in operands):
            raise MartError(
                f"{where}: {node.sql('athena')} divides something other than two BIGINT casts; "
                "DuckDB would compute it in DOUBLE. Divide CAST(... AS BIGINT) values only."
            )
        return exp.IntDiv(this=node.this, expression=node.expression)

    return tree.transform(integer_division).sql(dialect="duckdb")


@functools.cache
def duckdb_mart_sql(name: str) -> str:
    """The mart's query for DuckDB (transpiled once per process)."""
    return to_duckdb(mart_sql(name), f"b3_assets/marts/sql/{name}.sql")
