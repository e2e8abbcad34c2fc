"""The dashboard as a person sees it: Streamlit started on a free 127.0.0.1 port and Debian's
Chromium (no browser download) driven by Playwright, for the browser tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from stack.private import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def http_service(
    command: list[str], env: dict[str, str], log_path: Path, url: str, health: str
) -> Iterator[str]:
    """``command`` (env added to ours) until the block ends; yields ``url`` once ``url +
    health`` answers 2xx. It must stop on SIGTERM; its exit status is the caller's to judge."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + health, timeout=2).ok:
                    break
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"{command} did not start\n{log_path.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def dashboard(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The dashboard app with ``env`` added to ours; yields its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "src/dashboard/app.py")]
    command += ["--server.address", "127.0.0.1", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.fileWatcherType", "none"]
    command += ["--browser.gatherUsageStats", "false"]
    with http_service(command, env, log_path, f"http://127.0.0.1:{port}", "/_stcore/health") as url:
        yield url


@contextlib.contextmanager
def chromium(profile: Path, height: int) -> Iterator[Any]:
    """A headless Chromium page with a fresh profile, in a time zone far from UTC (labels in
    the browser's local time would show other hours)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": height},
            timezone_id="America/New_York",
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """The whole page in ``artifacts/``; with ``WRITE_DOCS_ARTIFACTS=1`` also in docs/images."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("WRITE_DOCS_ARTIFACTS") == "1":
        shutil.copyfile(path, ROOT / "docs" / "images" / name)
    return path


def assert_no_error_shown(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    alerts = page.locator('[data-testid="stAlert"], [data-testid="stAlertContainer"]')
    assert alerts.count() == 0, [alerts.nth(i).inner_text() for i in range(alerts.count())]
