"""The scan page a phone opens from the QR, rendered by a real browser: Debian's chromium, headless.

A uvicorn server (in a thread of this process) serves the API over a scratch SQLite store seeded with a signed
custody chain; chromium dumps the rendered DOM (``--dump-dom``) and takes a phone-sized screenshot. Skipped only
when no chromium binary can be found (``make test`` installs Debian's ``chromium`` when it is missing).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from tests.api.trace_seed import DOMAIN, USCCS, TraceSeed
from tests.conftest import free_port, make_settings

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    explicit = os.environ.get("CREDTRACE_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary found (install Debian's chromium: `make chromium`)"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, TraceSeed]]:
    settings = make_settings(
        tmp_path / "data", free_port(), database_url=f"sqlite:///{tmp_path / 'store.db'}",
        scan_member_codes=list(USCCS.values()),
    )  # fmt: skip
    port = settings.api_port
    app = create_app(settings)
    app.state.scan.domain = DOMAIN
    seed = TraceSeed(app.state.engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield base, seed
    finally:
        server.should_exit = True
        thread.join(10)


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--hide-scrollbars", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_page_in_headless_chromium(served: tuple[str, TraceSeed], tmp_path: Path) -> None:
    base, seed = served
    path = seed.code()
    seed.chain_story(path)
    url = f"{base}/t{path}?region=Jinan&geo=36.67,117.02"
    done = chromium("--dump-dom", "--window-size=412,915", url)
    dom = done.stdout
    assert done.returncode == 0 and "<body" in dom, done.stderr[-2000:]
    assert re.search(r'id="verdict"[^>]*data-verdict="genuine"', dom), dom[:2000]
    assert "<h1>Genuine</h1>" in dom
    timeline = re.search(r'<ol class="timeline" id="timeline">(.*?)</ol>', dom, re.S)
    assert timeline is not None
    steps = re.findall(r'data-step="(\w+)"', timeline[1])
    assert steps == ["commission", "ship", "receive", "sell", "deliver"]
    assert timeline[1].count("✓ signature valid") == 5
    for fact in ("Yantai Fuji apple juice 1 L", "Yantai Orchard Apple Cooperative", "Jiaodong Express Logistics",
                 "Qilu Mall E-commerce"):  # fmt: skip
        assert fact in dom
    # the same facts as the JSON (this page view was one scan, the JSON read is the second)
    body = httpx.get(f"{base}/v1/trace{path}").json()
    assert body["verdict"] == "genuine" and body["scans"]["count"] == 2
    assert [e["step"] for e in body["timeline"]] == steps

    shot = tmp_path / "scan-page.png"
    done = chromium(f"--screenshot={shot}", "--window-size=412,915", f"{base}/t{path}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000


def test_suspicious_page_in_headless_chromium(served: tuple[str, TraceSeed]) -> None:
    base, seed = served
    path = seed.code()
    seed.chain_story(path, start=int(time.time()) - 90 * 86400)
    dom = chromium("--dump-dom", f"{base}/t{path}").stdout
    assert re.search(r'data-verdict="suspicious"', dom)
    assert 'data-reason="already_sold"' in dom and "already delivered by Jiaodong Express" in dom
