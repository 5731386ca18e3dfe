"""A real ``python app.py`` on a free loopback port, for the browser, API and load tests.

conftest.py's session fixture ``app_server`` serves every test module from one server.
Everything stays offline: analytics off, Hub offline, Gradio's caches under a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 300  # importing torch and loading two models on a busy 2-core machine


@dataclass(frozen=True)
class AppServer:
    url: str  # e.g. http://127.0.0.1:54321/
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(tmp: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_EXAMPLES_CACHE=str(tmp / "examples_cache"),
        GRADIO_TEMP_DIR=str(tmp / "gradio_tmp"),
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    process.kill()
    raise RuntimeError(f"app.py did not answer on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serve_app(
    tmp: Path, env: dict[str, str] | None = None, app_dir: Path | None = None
) -> Iterator[tuple[AppServer, subprocess.Popen]]:
    """``python app.py`` on a free loopback port, its working directory, caches and log under
    ``tmp``; ``env`` adds environment variables. Stops it on exit.

    ``app_dir``: serve that folder's app.py instead of this checkout's, as a Space does: from
    that folder (the working directory) alone, with $PYTHONPATH unset."""
    port = free_port()
    log = tmp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    full_env = {**offline_env(tmp, port), **(env or {})}
    if app_dir is not None:
        full_env.pop("PYTHONPATH", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"] if app_dir else [sys.executable, str(ROOT / "app.py")],
            cwd=app_dir or tmp,  # the app must not depend on the working directory
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(process, url, log)
        yield AppServer(url=url, log=log), process
    finally:
        stop_server(process)


def stop_server(process: subprocess.Popen) -> None:
    """Stop a served app: SIGTERM, then SIGKILL if it has not exited within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def block_all_but_loopback(page) -> list[str]:
    """Abort every request of a Playwright ``page`` that does not go to the loopback server
    (or a data:/blob: URL); returns the list the aborted URLs are recorded in, for the test to
    assert empty: the app must work offline."""
    from urllib.parse import urlparse

    blocked: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if urlparse(url).hostname in ("127.0.0.1", "localhost") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_loopback)
    return blocked
