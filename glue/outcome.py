"""What a multi-date refine run reports when it fails (Glue's ErrorMessage).

A run of many dates goes on past a date that fails (that date stays as it was) and fails at
the end; its message names the dates that failed ("failed dates: [...]"), so the sensor can
record every other date of the run as refined. That list comes before the errors, so a message
Glue truncates loses errors before it loses the list. One home for the format: the Glue job and
the local job write it, ``b3_assets.platform.glue_runs`` and ``glue.attempts`` read it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date

_FAILED = re.compile(
    r"date\(s\) failed, each left as it was \(the others were published\)"
    # "; failed dates: " since 2026-12; ": " in the records of runs before, still read.
    r"(?:; failed dates: |: )(\[[^\]]*\])"
)


def batch_failure(failed: Mapping[str, str], n_dates: int) -> str:
    """The error of a run of ``n_dates`` dates of which ``failed`` (date -> error) failed."""
    return (
        f"{len(failed)} of {n_dates} date(s) failed, each left as it was (the others were "
        f"published); failed dates: {json.dumps(sorted(failed))}; errors: "
        f"{json.dumps(dict(failed))}"
    )


def failed_in_batch(error_message: str | None) -> frozenset[date] | None:
    """The dates a failed multi-date run left unrefined, or None when the message is not a
    batch failure (a one-date run, another error, or the list was truncated away)."""
    found = _FAILED.search(error_message or "")
    if found is None:
        return None
    try:
        return frozenset(date.fromisoformat(d) for d in json.loads(found.group(1)))
    except (ValueError, TypeError):
        return None
