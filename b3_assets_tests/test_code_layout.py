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
