"""Keeps the relayer, the indexer, the webhook dispatcher and the trace anchorer running under ``credtrace up``.

Each runs as ``python -m <module>`` (:data:`MODULES`: ``node_bridge.<name>`` unless listed) with the same
``CREDTRACE_*`` environment; one that exits (a crash, a kill -9) is started again after a short, growing pause.
All are safe to restart at any time: the relayer resumes from the outbox, the indexer from its checkpoint, the
webhook dispatcher from each subscription's cursor and pending delivery, the anchorer from the unbatched events.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("credtrace.supervisor")

SERVICES = ("relayer", "indexer", "webhooks", "anchorer")
MODULES = {"webhooks": "credtrace.webhooks"}
"""Services whose module is not ``node_bridge.<name>``."""


@dataclass
class Supervisor:
    log_dir: Path
    services: tuple[str, ...] = SERVICES
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as out:
            module = MODULES.get(name, f"node_bridge.{name}")
            return subprocess.Popen([sys.executable, "-m", module], stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> None:
        for name in self.services:
            self._processes[name] = self._spawn(name)
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self._processes.items()}

    def _watch(self) -> None:
        pauses = dict.fromkeys(self.services, 0.5)
        while not self._stop.wait(0.5):
            for name, process in list(self._processes.items()):
                if process.poll() is None:
                    continue
                log.warning("%s exited with %s; restarting in %.1fs", name, process.returncode, pauses[name])
                if self._stop.wait(pauses[name]):
                    return
                pauses[name] = min(pauses[name] * 2, 10.0)
                self._processes[name] = self._spawn(name)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self._processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
