"""What a multi-date refine run reports when some of its dates failed (Glue's ErrorMessage).

A run of many dates goes on past a date that fails (that date stays as it was) and fails at
the end naming each failed date with its error and every date it published; the sensor reads
the published dates back so they are recorded as refined, not as failed. One home for the
format: the Glue job and the local job write it, ``b3_assets.glue_runs`` reads it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date

_PUBLISHED = re.compile(r"; published: (\[[^\]]*\])")


def batch_failure(failed: Mapping[str, str], published: Sequence[str], n_dates: int) -> str:
    """The error of a run of ``n_dates`` dates of which ``failed`` (date -> error) failed."""
    return (
        f"{len(failed)} of {n_dates} date(s) failed, each left as it was: "
        f"{json.dumps(dict(failed))}; published: {json.dumps(list(published))}"
    )


def published_despite_failure(error_message: str | None) -> tuple[date, ...]:
    """The dates a failed run published anyway (none when the message is not a batch failure,
    e.g. a one-date run, or Glue truncated it)."""
    found = _PUBLISHED.search(error_message or "")
    if found is None:
        return ()
    try:
        return tuple(sorted(date.fromisoformat(d) for d in json.loads(found.group(1))))
    except (ValueError, TypeError):
        return ()
