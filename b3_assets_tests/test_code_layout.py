"""The README's code layout and docs/architecture.md name the tree as it is: every domain
folder of b3_assets/ is described, and every folder they name exists (issue #21)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _domains() -> set[str]:
    return {p.parent.name for p in (REPO / "b3_assets").glob("*/__init__.py")}


def _layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("Code layout (")
    return readme[start : readme.index("```\n", readme.index("```", start) + 3)]


def test_every_domain_folder_is_in_the_readme_layout_and_the_architecture_page():
    layout = _layout_block()
    architecture = (REPO / "docs" / "architecture.md").read_text()
    for domain in sorted(_domains()):
        assert re.search(rf"\b{domain}/", layout), f"README's code layout misses {domain}/"
    for domain in ("source", "storage", "platform", "portfolio", "marts", "reports"):
        assert f"{domain}/" in architecture, f"docs/architecture.md misses {domain}/"


def test_every_folder_the_layout_names_exists():
    layout = _layout_block()
    named = set(re.findall(r"^  ([a-z_]+)/", layout, flags=re.M))
    named |= set(re.findall(r"^  [a-z_]+/ ([a-z_]+)/", layout, flags=re.M))
    assert named, "no folder found in the layout block"
    missing = sorted(n for n in named if not (REPO / "b3_assets" / n).is_dir())
    assert missing == []


def _domain_imports() -> dict[str, set[str]]:
    """Domain folder -> the other domain folders its modules import (any import, also inside
    functions)."""
    import ast

    domains = _domains()
    graph: dict[str, set[str]] = {d: set() for d in domains}
    for domain in domains:
        for path in (REPO / "b3_assets" / domain).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "b3_assets" and len(parts) > 1 and parts[1] in domains:
                        graph[domain].add(parts[1])
            graph[domain].discard(domain)
    return graph


def test_no_two_domain_folders_import_each_other():
    """Keys come from b3_assets/keys.py and shared pieces from storage/ and platform/, so the
    domains form no cycle: each can be read (and tested) without the ones that use it."""
    graph = _domain_imports()
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            assert seen.get(nxt) != 1, f"domain cycle: {' -> '.join([*path, nxt])}"
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for domain in sorted(graph):
        if domain not in seen:
            visit(domain, [domain])


def test_the_b3_client_has_no_dagster_and_glue_no_b3_assets():
    for path in (REPO / "b3_assets" / "source").rglob("*.py"):
        text = path.read_text()
        assert "import dagster" not in text and "from dagster" not in text, path
    assert _domain_imports()["source"] == set()
    for folder in ("glue", "lambda_handler"):
        for path in (REPO / folder).rglob("*.py"):
            code = re.sub(r'""".*?"""|#.*', "", path.read_text(), flags=re.S)
            assert "b3_assets" not in code, path
