"""The local Dagster instance (``DAGSTER_HOME``, default ``./.dagster_home``) that ``make dev``
and ``b3-pipeline`` share, set up the same way by both.

Run monitoring is on: with Dagster's default run launcher a run whose process was killed stays
STARTED for ever, and the hourly reconciliation waits behind a run in progress; with
``max_runtime_seconds`` the daemon fails such a run after 45 minutes (the longest healthy run,
a three-year backfill, takes about 2). ``python -m b3_assets.platform.instance [HOME]`` does it
from a shell (``scripts/dev.sh``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: ``make dev``'s instance when DAGSTER_HOME is not set (the repository's ``.dagster_home``).
DEFAULT_DAGSTER_HOME = Path(".dagster_home")

#: Run monitoring fails a run still going this long after it started (a killed worker's),
#: checking every RUN_MONITORING_POLL_S; the sensors' busy horizon follows (sensors.py).
MAX_RUNTIME_S = 2700
RUN_MONITORING_POLL_S = 60

#: What a new instance gets; an existing ``dagster.yaml`` gets only the sections it lacks.
SECTIONS = {
    "telemetry": "telemetry:\n  enabled: false\n",
    "nux": "nux:\n  enabled: false\n",
    "run_monitoring": (
        "# Killed runs end as failed (b3_assets/platform/instance.py says why 45 minutes).\n"
        "run_monitoring:\n"
        "  enabled: true\n"
        "  start_timeout_seconds: 180\n"
        f"  max_runtime_seconds: {MAX_RUNTIME_S}\n"
        f"  poll_interval_seconds: {RUN_MONITORING_POLL_S}\n"
    ),
    # A run clicked in the UI waits in Dagster's queue until the daemon's next pass: every
    # 5 s by default, every second here (README, "The first click").
    "run_coordinator": (
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    dequeue_interval_seconds: 1\n"
    ),
}


class InstanceError(RuntimeError):
    """The Dagster instance folder cannot be used (named, with what to do)."""


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()


def ensure_instance(home: Path | None = None) -> Path:
    """``home`` exists, is writable and has a ``dagster.yaml`` with every section above;
    :class:`InstanceError` naming the folder (and ``DAGSTER_HOME``) otherwise."""
    home = Path(home) if home is not None else dagster_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        yaml = home / "dagster.yaml"
        text = yaml.read_text() if yaml.exists() else ""
        missing = [block for key, block in SECTIONS.items()
                   if not any(line.startswith(f"{key}:") for line in text.splitlines())]
        if missing:
            with yaml.open("a") as out:
                out.write(("\n" if text and not text.endswith("\n") else "") + "".join(missing))
    except OSError as exc:
        raise InstanceError(
            f"the Dagster instance folder {home} (DAGSTER_HOME) is not usable: "
            f"{exc.strerror or exc}. Point DAGSTER_HOME at a folder you can write "
            f"(default: {DEFAULT_DAGSTER_HOME}/ in the repository) or fix its permissions."
        ) from exc
    return home


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        home = ensure_instance(Path(args[0]) if args else None)
    except InstanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
