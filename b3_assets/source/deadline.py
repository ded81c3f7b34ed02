"""A hard deadline around a whole fetch.

Every step of a fetch has its own timeout, but their sum (pages × retries × waits) is long and
some waits have none a caller can set (a DNS lookup, a browser that stops answering). Running
the fetch in a worker thread and waiting for it at most ``seconds`` bounds all of it at once:
the caller gets a transient error on time, and the abandoned worker (a daemon thread) ends on
its own timeouts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from b3_assets.source.errors import B3Error

T = TypeVar("T")


def run_with_deadline(work: Callable[[], T], seconds: float,
                      on_timeout: Callable[[], B3Error], name: str) -> T:
    """``work()``'s result (or exception); ``on_timeout()`` is raised when it has not
    finished within ``seconds``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            failure.append(exc)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise on_timeout()
    if failure:
        raise failure[0]
    return outcome[0]
