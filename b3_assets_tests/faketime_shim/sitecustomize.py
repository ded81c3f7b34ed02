"""Loaded only under libfaketime (scripts/any_day.sh puts this folder on PYTHONPATH).

Debian's libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` (needed so timeouts keep
real time) breaks CPython's ``time.sleep``: CPython sleeps with
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, …)`` and libfaketime shifts that absolute
deadline by the fake offset, so every sleep fails with ``OSError: [Errno 22] Invalid
argument``. Thread waits (``sem_clockwait``) are not intercepted and keep real time, so sleeping
on an Event is exact. Nothing else changes: the wall clock stays faked, which is the point."""

from __future__ import annotations

import os
import threading
import time

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    _real_sleep = time.sleep

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        if seconds:
            threading.Event().wait(seconds)

    time.sleep = _sleep
