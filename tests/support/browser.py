"""A real browser for tests: Debian's headless ``chromium``, driven over the DevTools protocol; and
``digitflow ui`` run as a user runs it, for the browser to open.

MLflow's UI is a single-page app that renders after a dozen requests and lazy chunks; ``chromium
--dump-dom --virtual-time-budget=N`` sometimes stops while the charts still spin. So the page is opened in
a fresh profile (the UI keeps its choices in localStorage, and a new visitor has none), and its rendered
text is read every half second until it shows what the test waits for, then a screenshot is taken.
Outside CI a machine without chromium (or Chrome) skips these tests with the reason; in CI that is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pipeline_env

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1000", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
]  # fmt: skip
# Which of the UI's two workflow pills (GenAI, Model training) is selected: the one under the highlight that
# slides between them (the first element of their box), as a visitor sees it.
SELECTED_PILL = """(() => {
  const pills = [...document.querySelectorAll('[role=button]')]
    .filter(p => ['GenAI', 'Model training'].includes(p.textContent));
  if (pills.length !== 2) return null;
  const marker = pills[0].parentElement.firstElementChild.getBoundingClientRect();
  const under = pills.filter(p => {
    const box = p.getBoundingClientRect(), middle = box.left + box.width / 2;
    return marker.left <= middle && middle <= marker.right;
  });
  return under.length === 1 ? under[0].textContent : null;
})()"""


# Debian's package first (.ci/run installs it); GitHub's Ubuntu runners bring Google Chrome, which takes the
# same flags and speaks the same protocol.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the browser tests (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium): no real browser to open the MLflow UI")
    return found


@dataclass
class Page:
    """What a visitor saw: the page's visible text, which workflow pill is selected, a screenshot."""

    text: str
    selected_workflow: str | None
    screenshot: Path


async def _session(ws_url: str) -> tuple[Any, Any]:
    import aiohttp

    http = aiohttp.ClientSession()
    return http, await http.ws_connect(ws_url, max_msg_size=0)


async def _call(ws: Any, counter: itertools.count, method: str, **params: Any) -> dict[str, Any]:
    ident = next(counter)
    await ws.send_json({"id": ident, "method": method, "params": params})
    while True:
        message = json.loads((await ws.receive()).data)
        if message.get("id") == ident:
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            return message["result"]


async def _render(ws_url: str, url: str, ready: Callable[[str], bool], timeout: float, shot: Path) -> Page:
    http, ws = await _session(ws_url)
    counter = itertools.count(1)
    try:
        await _call(ws, counter, "Page.enable")
        await _call(ws, counter, "Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            result = await _call(
                ws, counter, "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
            )
            text = result["result"].get("value", "")
            if ready(text):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # let the last charts draw before the picture
        result = await _call(ws, counter, "Runtime.evaluate", expression="document.body.innerText")
        text = result["result"].get("value", text)
        selected = await _call(ws, counter, "Runtime.evaluate", expression=SELECTED_PILL, returnByValue=True)
        shot.write_bytes(base64.b64decode((await _call(ws, counter, "Page.captureScreenshot", format="png"))["data"]))
    finally:
        await ws.close()
        await http.close()
    return Page(text, selected["result"].get("value"), shot)


def render(url: str, ready: Callable[[str], bool], shot: Path, timeout: float = 90) -> Page:
    """Open ``url`` in a new headless Chromium with an empty profile; wait (up to ``timeout`` s) until the
    page's text satisfies ``ready``; return what it shows, with a screenshot saved at ``shot``."""
    executable = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            ws_url = _page_socket(Path(profile), process)
            return asyncio.run(_render(ws_url, url, ready, timeout, shot))
        finally:
            # Chromium's helpers (renderer, GPU, crash handler) are in its process group and may still write
            # to the profile after the browser itself exits: end them all before the profile is removed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def _page_socket(profile: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The DevTools websocket of the browser's first tab (the port Chromium chose is in DevToolsActivePort)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    active = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        assert process.poll() is None, f"chromium exited with {process.returncode}"
        if active.is_file() and active.read_text().strip():
            port = active.read_text().split()[0]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                    pages = [t for t in json.load(response) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"chromium did not open its DevTools port in {timeout} s")


@dataclass
class UiSession:
    """A running ``digitflow ui``: what it printed up to "press Ctrl-C", and its two addresses."""

    output: str
    runs_url: str
    charts_url: str

    @property
    def server(self) -> str:
        return self.runs_url.split("/#/", 1)[0]


@contextlib.contextmanager
def digitflow_ui(project: Path, command: str, timeout: float = 180) -> Iterator[UiSession]:
    """Run ``command`` (a README ``digitflow ui`` line, as written) in ``project`` as a user would on a machine
    without a display (so no browser opens); yield once it serves, then press Ctrl-C (SIGINT) and check that it
    exits 0 and its server is gone."""
    env = pipeline_env()
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    log = project.parent / "digitflow-ui.out"
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=project, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while "press Ctrl-C" not in log.read_text():
            assert process.poll() is None, f"`{command}` exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"`{command}` did not serve in {timeout} s:\n{log.read_text()}"
            time.sleep(0.5)
        output = log.read_text()
        urls = re.findall(r"https?://\S+#/\S+", output)
        assert len(urls) == 2, output
        session = UiSession(output, *urls)
        yield session
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0, f"`{command}` exited with {code} after Ctrl-C:\n{log.read_text()}"
    port = int(session.server.rsplit(":", 1)[1])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"the server on port {port} still runs after Ctrl-C"
