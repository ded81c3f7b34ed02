#!/usr/bin/env python3
"""Health of the container deployment (installed in the image as ``b3-health``).

    b3-health [code|webserver|daemon|postgres]   one part: the image's and compose's HEALTHCHECK
                                                 (no argument: $B3_ROLE, default code)
    b3-health all                                every part, one line each; exit 1 if any is not ok

A part that is not ok says what it waits for and why it is not there yet, and whether that is
still the start-up (the container running the check is younger than B3_HEALTH_START_PERIOD,
180 s: the code location takes a minute to load on 2 cores) or a failure::

    postgres: ok
    code: starting: waiting for the code server on code:4000 to load b3_assets.definitions
      (gRPC: failed to connect to all addresses; ... Connection refused)
    webserver: starting: waiting for http://webserver:3000/server_info (... Connection refused)
    daemon: starting: waiting for the first heartbeat of SENSOR, BACKFILL, SCHEDULER, ...
      (dagster-daemon writes one every 30 s once it runs)

(one line each; wrapped here).
Inside compose, ``all`` reaches the other services by name (B3_HEALTH_CODE and
B3_HEALTH_WEBSERVER override code:4000 and webserver:3000).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

#: A required daemon is dead when its last heartbeat is older than this (Dagster's default,
#: 30 minutes, is too late to call a hung daemon unhealthy; they heartbeat every 30 s).
HEARTBEAT_TOLERANCE_S = 300


class NotReady(Exception):
    """``waiting`` is what the part waits for, ``reason`` why it is not there yet."""

    def __init__(self, waiting: str, reason: str) -> None:
        super().__init__(f"{waiting} ({reason})" if reason else waiting)


class Broken(Exception):
    """Not ready and waiting will not help (a restart after a fix will): FAILED at once."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__


def code(address: str) -> None:
    """The code location's gRPC server answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    waiting = f"waiting for the code server on {address} to load b3_assets.definitions"
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=15
            )
    except grpc.RpcError as error:
        details = error.details() if hasattr(error, "details") else str(error)
        raise NotReady(waiting, f"gRPC: {_one_line(Exception(details))}") from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if status != "SERVING":
        raise NotReady(waiting, f"gRPC status {status}")
    # The server answers SERVING even when the definitions failed to import; then it serves
    # the error instead of the repositories.
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._serdes import deserialize_value
    from dagster._utils.error import SerializableErrorInfo

    host, _, port = address.rpartition(":")
    listed = deserialize_value(DagsterGrpcClient(host=host, port=int(port)).list_repositories())
    if isinstance(listed, SerializableErrorInfo):
        error = listed.cause or listed
        raise Broken(
            f"the code server on {address} answers, but b3_assets.definitions failed to load "
            f"({_one_line(Exception(error.message.strip().splitlines()[-1]))}); fix the code, "
            "rebuild the image and restart the service"
        )


def webserver(address: str) -> None:
    """The UI's server answers /server_info."""
    url = f"http://{address}/server_info"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            json.load(response)["dagster_webserver_version"]
    except Exception as error:
        reason = getattr(error, "reason", None) or error
        raise NotReady(f"waiting for {url}", _one_line(reason)) from None


def _pg_settings() -> dict[str, str]:
    env = os.environ
    return {
        "host": env.get("DAGSTER_PG_HOST", "postgres"),
        "port": env.get("DAGSTER_PG_PORT", "5432"),
        "user": env.get("DAGSTER_PG_USERNAME", "dagster"),
        "password": env.get("DAGSTER_PG_PASSWORD", ""),
        "dbname": env.get("DAGSTER_PG_DB", "dagster"),
    }


def postgres() -> None:
    """The instance's database accepts a connection."""
    import psycopg2

    pg = _pg_settings()
    waiting = f"waiting for PostgreSQL at {pg['host']}:{pg['port']} to accept connections"
    try:
        psycopg2.connect(connect_timeout=5, **pg).close()
    except psycopg2.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise NotReady(waiting, _one_line(Exception(first_line))) from None


def daemon() -> None:
    """Every required daemon (scheduler, sensors, run queue...) heartbeat in the last 5 min."""
    try:
        from dagster import DagsterInstance

        with DagsterInstance.get() as instance:
            required = list(instance.get_required_daemon_types())
            beats = instance.get_daemon_heartbeats()
    except Exception as error:
        raise NotReady("waiting for Dagster's storage (PostgreSQL)", _one_line(error)) from None
    now = time.time()
    # In the daemon's own container, a heartbeat from before it started is a previous daemon's
    # (they stay in PostgreSQL across restarts): not a sign that this one runs.
    up = uptime_s() if os.environ.get("B3_ROLE") == "daemon" else None
    if up is not None:
        beats = {kind: beat for kind, beat in beats.items() if beat.timestamp >= now - up}
    never = [kind for kind in required if kind not in beats]
    stale = {
        kind: now - beats[kind].timestamp
        for kind in required
        if kind in beats and now - beats[kind].timestamp > HEARTBEAT_TOLERANCE_S
    }
    if never:
        raise NotReady(
            f"waiting for the first heartbeat of {', '.join(never)}",
            "dagster-daemon writes one every 30 s once it runs",
        )
    if stale:
        late = ", ".join(f"{kind} {age:.0f} s ago" for kind, age in stale.items())
        raise NotReady(
            "waiting for a heartbeat",
            f"last ones: {late}; tolerance {HEARTBEAT_TOLERANCE_S} s",
        )


def uptime_s() -> float | None:
    """Seconds since this container's PID 1 started (None where /proc does not tell)."""
    try:
        with open("/proc/uptime") as f:
            since_boot = float(f.read().split()[0])
        with open("/proc/1/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return since_boot - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def check(part: str, local: bool) -> tuple[bool, str]:
    """(ok, the part's line)."""
    env = os.environ
    try:
        if part == "code":
            code("localhost:4000" if local else env.get("B3_HEALTH_CODE", "code:4000"))
        elif part == "webserver":
            webserver(
                "localhost:3000" if local else env.get("B3_HEALTH_WEBSERVER", "webserver:3000")
            )
        elif part == "postgres":
            postgres()
        else:
            daemon()
    except Broken as broken:
        return False, f"{part}: FAILED: {broken}"
    except NotReady as not_ready:
        up = uptime_s()
        period = float(env.get("B3_HEALTH_START_PERIOD", "180"))
        if up is None or up >= period:
            return False, f"{part}: FAILED: {not_ready}"
        # `all` runs in another container than the part's: its age is only the stack's.
        return False, f"{part}: starting{'' if not local else f' (up {up:.0f} s)'}: {not_ready}"
    return True, f"{part}: ok"


def main(argv: list[str]) -> int:
    parts = ("postgres", "code", "webserver", "daemon")
    role = argv[0] if argv else os.environ.get("B3_ROLE", "code")
    if role == "all":
        results = [check(part, local=False) for part in parts[:3]]
        if results[0][0]:
            results.append(check("daemon", local=False))
        else:  # Dagster's instance would retry PostgreSQL for a while, to say the same
            results.append(
                (False, results[0][1].replace("postgres: ", "daemon: ", 1).split(" (")[0])
            )
    elif role in parts:
        results = [check(role, local=True)]
    else:
        print("usage: b3-health [code|webserver|daemon|postgres|all]", file=sys.stderr)
        return 2
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
