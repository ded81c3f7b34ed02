"""Where the real B3 samples are, and skips that CI refuses (one CI detection for all tests)."""

from __future__ import annotations

import os
from pathlib import Path

#: Real B3 files kept in the repository (public data; their origin in fixtures/b3/README.md).
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "b3"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_unless(condition: bool, reason: str) -> None:
    """Skip with ``reason`` on a laptop; in CI (``CI=true``) a missing tool or sample fails."""
    if condition:
        return
    # Imported here: the B3 replica imports SAMPLES_DIR in the app image, which has no pytest.
    import pytest

    if IN_CI:
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)
