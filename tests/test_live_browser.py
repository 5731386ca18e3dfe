"""The Live tab in a real browser: Chromium's fake camera plays examples/two_people.mp4 (as a
.y4m made by the ffmpeg that imageio-ffmpeg ships) into ``python app.py``.

The server runs with its own temporary folders (Gradio's and the system's), so that anything
a live stream wrote would show there. Its live sessions last 45 s: the 60 s stream outlasts one.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from app_server import block_all_but_loopback
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SESSION_SECONDS = 45
FIRST_FRAME_TIMEOUT_MS = 180_000  # model warm-up and MTCNN's first traces on a busy CPU
ENDED_LINE = re.compile(r"face_mtl live: a session ended after (\d+) frames; its state is freed")

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() or shutil.which("chromium")), reason="needs Chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    """4 s of the two-person clip as 640x480 raw video, which Chromium's fake camera loops."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path_factory.mktemp("camera") / "two_people.y4m"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(ROOT / "examples" / "two_people.mp4"),
         "-vf", "scale=640:360,pad=640:480:0:60,fps=15", "-pix_fmt", "yuv420p", "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from app_server import serve_app

    tmp = tmp_path_factory.mktemp("live_server")
    (tmp / "tmp").mkdir()
    env = {"TMPDIR": str(tmp / "tmp"), "FACE_MTL_MAX_LIVE_SECONDS": str(SESSION_SECONDS)}
    with serve_app(tmp, env) as (server, _process):
        yield server, tmp


@pytest.fixture(scope="module")
def camera_browser(camera_file):
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_file}"]  # fmt: skip
    with sync_api.sync_playwright() as playwright:
        executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        yield browser
        browser.close()


@pytest.fixture()
def live_page(camera_browser, live_server):
    server, _tmp = live_server
    context = camera_browser.new_context(viewport={"width": 1400, "height": 1100}, permissions=["camera"])
    page = context.new_page()
    blocked = block_all_but_loopback(page)
    page.goto(server.url)
    page.wait_for_selector("#photo-button", timeout=60_000)  # the app has rendered
    page.get_by_role("tab", name="Live").click()
    page.get_by_text("Click to Access Webcam").click()
    page.locator("#live-camera button", has_text="Record").wait_for(timeout=30_000)
    yield page
    context.close()
    assert not blocked, f"the page tried to reach the internet: {blocked}"


def record_button(page):
    # One button toggles the stream: "Record" while stopped, "Stop" while streaming.
    return page.locator("#live-camera button[aria-label='capture photo']")


def start(page) -> None:
    record_button(page).click()
    page.locator("#live-camera button", has_text="Stop").wait_for(timeout=10_000)


def stop(page) -> None:
    record_button(page).click()
    page.locator("#live-camera button", has_text="Record").wait_for(timeout=10_000)


def wait_for_faces(page, timeout: int = FIRST_FRAME_TIMEOUT_MS) -> None:
    page.wait_for_function(
        "() => Number(document.querySelector('#live-frame .live-frame')?.dataset.faces) >= 1", timeout=timeout
    )


def shown_frame(page) -> tuple[np.ndarray, list]:
    """The annotated frame the page shows (decoded from its data URL) and its boxes."""
    # One read of both: the block is replaced with every frame, and people move between frames.
    src, boxes = page.evaluate(
        "() => { const f = document.querySelector('#live-frame .live-frame');"
        " return [f.querySelector('img').src, f.dataset.boxes]; }"
    )
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    return np.asarray(image), json.loads(boxes)


def frames_so_far(page) -> int:
    found = re.search(r"(\d+) frames ·", page.locator("#live-status").inner_text())
    return int(found.group(1)) if found else 0


def ended_sessions(log: Path) -> list[int]:
    return [int(n) for n in ENDED_LINE.findall(log.read_text())]


def test_live_stream_boxes_faces_charts_them_and_frees_the_session_on_stop(live_page, live_server, tmp_path):
    from face_mtl.render.draw import emotion_color

    server, _tmp = live_server
    page = live_page
    ended_before = len(ended_sessions(server.log))
    start(page)
    wait_for_faces(page)
    page.wait_for_function("() => document.querySelector('#live-frame .live-frame').dataset.faces === '2'",
                           timeout=60_000)
    image, boxes = shown_frame(page)
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
    assert image.shape == (480, 640, 3)  # the camera's frame size: no larger than the 640 px detection side
    for _person, x1, y1, x2, _y2, emotion in boxes:
        # Pixels, not just numbers: the box's top edge is drawn in its expression's colour.
        edge = image[round(y1), round(x1) + 4 : round(x2) - 4].astype(int)
        assert np.median(np.abs(edge - np.array(emotion_color(emotion))).max(axis=1)) < 60
    assert sorted(b[0] for b in boxes) == [1, 2]
    assert "smoothed" in page.locator("#live-status").inner_text()

    # The chart: one line per emotion for each person, with points from the last seconds.
    page.wait_for_function(
        "() => { const p = document.querySelector('#live-chart .js-plotly-plot');"
        " return p && p.data && p.data.length >= 16 && p.data.every(t => t.x.length >= 2); }",
        timeout=60_000,
    )
    frames_first = frames_so_far(page)
    assert frames_first >= 2

    stop(page)
    page.get_by_text("Live session ended").wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while len(ended_sessions(server.log)) == ended_before and time.monotonic() < deadline:
        time.sleep(0.5)
    ended = ended_sessions(server.log)[ended_before:]
    assert ended and ended[-1] >= frames_first  # the server dropped this session's state

    # A new session starts from nothing: people are numbered from 1 again, frames counted anew.
    start(page)
    page.wait_for_function("() => /\\d+ frames ·/.test(document.querySelector('#live-status').innerText)",
                           timeout=60_000)
    assert frames_so_far(page) < ended[-1]
    wait_for_faces(page, timeout=60_000)
    _, boxes = shown_frame(page)
    assert min(b[0] for b in boxes) == 1
    stop(page)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and p.name != "server.log"}


def test_a_60_second_stream_leaves_nothing_on_disk(live_page, live_server):
    server, tmp = live_server
    page = live_page
    ended_before = len(ended_sessions(server.log))
    start(page)
    wait_for_faces(page)
    before = _files(tmp)  # Gradio's temp and cache folders, the system temp folder (TMPDIR)
    started = time.monotonic()
    frames_seen = 0
    while time.monotonic() - started < 60:
        frames_seen = max(frames_seen, frames_so_far(page))
        time.sleep(1)
    ended_by_limit = len(ended_sessions(server.log)) - ended_before
    stop(page)
    after = _files(tmp)
    assert after == before, f"new or changed files: {sorted(set(after.items()) - set(before.items()))}"
    assert frames_seen >= 10
    # The 45 s session limit ended a session mid-stream, and the camera went on in a new one.
    assert ended_by_limit >= 1
