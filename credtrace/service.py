"""What every long-running part does first (relayer, indexer, anchorer, webhook dispatcher): log to stderr, read
the ``CREDTRACE_*`` settings, and turn SIGTERM or SIGINT into the stop event its loop watches."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from credtrace.settings import Settings, get_settings


def start_service(name: str) -> tuple[Settings, threading.Event]:
    """Logging, settings, and a stop event set by SIGTERM or SIGINT, for the service logging as ``name``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(name).info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    return get_settings(), stop
