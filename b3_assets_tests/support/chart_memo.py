"""Each chart drawn once per test process: the report charts are pure functions of their rows.

Why: most in-process runs of the daily job draw the same charts (the same sample dates and
generated portfolios), and matplotlib's drawing plus the PNG encoding was about half the CPU of
the default test tier. The chart functions below take plain rows and dates and return PNG
bytes, so a call with the same arguments returns the same bytes whether it is drawn again or
remembered: what a test asserts does not change. The first call with given arguments in a
process still draws (every chart path runs), and a test that replaces one of these functions
(monkeypatch) replaces the memo too for its duration.

``B3_TESTS_DRAW_EVERY_CHART=1`` turns the memo off (every call draws, as in production).
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

#: (module, function) pairs: each takes rows/dates/labels and returns PNG bytes, nothing else.
CHART_FUNCTIONS = (
    ("b3_assets.reports.report", "top15_png"),
    ("b3_assets.reports.report", "changes_png"),
    ("b3_assets.reports.report_marts", "sectors_png"),
    ("b3_assets.reports.report_marts", "movements_png"),
    ("b3_assets.reports.report_marts", "concentration_png"),
)

_MEMO: dict[tuple[str, bytes], bytes] = {}


def _remembered(name: str, draw: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(draw)
    def chart(*args: Any, **kwargs: Any) -> bytes:
        try:
            key = (name, pickle.dumps((args, sorted(kwargs.items())), protocol=5))
        except Exception:  # an argument that does not pickle: draw it, remember nothing
            return draw(*args, **kwargs)
        if key not in _MEMO:
            _MEMO[key] = draw(*args, **kwargs)
        return _MEMO[key]

    chart.__wrapped_chart__ = draw  # type: ignore[attr-defined]
    return chart


def install() -> None:
    """Replace the chart functions of the modules already imported by their memo
    (idempotent; called before each test, so importing matplotlib stays the runs' doing)."""
    if os.environ.get("B3_TESTS_DRAW_EVERY_CHART") == "1":
        return
    for module_name, function_name in CHART_FUNCTIONS:
        module = sys.modules.get(module_name)
        draw = getattr(module, function_name, None)
        if draw is None or hasattr(draw, "__wrapped_chart__"):
            continue
        setattr(module, function_name, _remembered(f"{module_name}.{function_name}", draw))
