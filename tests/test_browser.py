"""The app in a real browser: headless Chromium (Playwright) against ``python app.py``.

Every request that is not to the loopback server is blocked and recorded, so the page must
work offline. Screenshots land in each test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_server import block_all_but_loopback
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RESULT_TIMEOUT_MS = 180_000  # a first analysis on a busy CPU
VIDEO_TIMEOUT_MS = 360_000  # the example clip: 30-90 s on a shared CPU, with room to spare

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # the server gets it too (app_server.offline_env)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() or shutil.which("chromium")), reason="needs Chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    blocked = block_all_but_loopback(page)
    page.goto(app_server.url)
    page.wait_for_selector("#photo-button")
    yield page
    context.close()
    assert not blocked, f"the page tried to reach the internet: {blocked}"


def rows_selector(table: str) -> str:
    # Gradio's Dataframe is a virtual grid; header row has aria-rowindex 1.
    return f"#{table} [role=row]:not([aria-rowindex='1'])"


def data_rows(page, table: str = "photo-table"):
    return page.locator(rows_selector(table))


def wait_for_rows(page, count: int, table: str = "photo-table", timeout: int = RESULT_TIMEOUT_MS) -> None:
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length === n",
        arg=[rows_selector(table), count],
        timeout=timeout,
    )


def upload(page, path: Path) -> None:
    page.locator("#photo-input input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#photo-input img")


def test_upload_analyze_shows_annotated_photo_and_table(page, tmp_path):
    upload(page, ROOT / "examples" / "group.jpg")
    page.click("#photo-button")
    page.wait_for_selector("#photo-annotated img", timeout=RESULT_TIMEOUT_MS)
    wait_for_rows(page, 4)
    for name in ("face_mtl_results.json", "face_mtl_results.csv"):
        page.wait_for_selector(f"#photo-downloads a[download='{name}']", timeout=30_000)
    page.screenshot(path=str(tmp_path / "photo_results.png"), full_page=True)

    rows = data_rows(page)
    numbers = [rows.nth(i).inner_text().split()[0] for i in range(4)]
    assert numbers == ["1", "2", "3", "4"]
    image = page.locator("#photo-annotated img")
    assert "gradio_api/file=" in image.get_attribute("src")
    size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [1130, 498]  # the group photo's own size (annotated, not resized)
    # Plotly draws after the image and table: wait for it rather than race it.
    page.wait_for_selector("#photo-chart .js-plotly-plot", timeout=30_000)
    assert page.locator("#photo-chart .js-plotly-plot").count() == 1


def test_no_face_shows_a_message(page, tmp_path):
    y, x = np.mgrid[0:240, 0:320]
    gradient = np.stack([x * 0.7, y, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(gradient).save(path)
    upload(page, path)
    page.click("#photo-button")
    page.get_by_text("No face found in this photo").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "no_face.png"), full_page=True)
    assert data_rows(page).count() == 0


def test_example_click_fills_results_and_new_upload_clears_them(page, tmp_path):
    page.locator("button.gallery-item").first.click()  # the group photo
    wait_for_rows(page, 4)
    page.wait_for_selector("#photo-annotated img", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#photo-chart .js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(tmp_path / "example.png"), full_page=True)
    upload(page, ROOT / "examples" / "astronaut.png")
    wait_for_rows(page, 0)  # old results never sit beside a new photo
    assert page.locator("#photo-annotated img").count() == 0


def test_about_tab_explains_data_and_links_the_model_card(page, tmp_path):
    page.get_by_role("tab", name="About").click()
    about = page.locator("#about")
    about.get_by_text("What the attributes mean").wait_for()
    text = about.inner_text()
    for needed in ("UTKFace", "FER+", "CelebA", "non-commercial research use only"):
        assert needed in text
    assert "MODEL_CARD.md" in about.locator("a").first.get_attribute("href")
    assert "Comparing faces" in text and "cosine" in text and "threshold" in text
    page.get_by_role("tab", name="Video").click()
    page.wait_for_selector("#video-button")
    page.screenshot(path=str(tmp_path / "video_tab.png"), full_page=True)


def test_video_tab_analyzes_a_clip(page, tmp_path):
    page.get_by_role("tab", name="Video").click()
    page.wait_for_selector("#video-button")
    page.locator("#video-input input[type=file]").set_input_files(str(ROOT / "examples" / "two_people.mp4"))
    page.wait_for_selector("#video-input video", timeout=60_000)
    page.click("#video-button")
    page.wait_for_selector("#video-timeline .js-plotly-plot", timeout=VIDEO_TIMEOUT_MS)
    page.wait_for_selector("#video-annotated video", timeout=60_000)
    wait_for_rows(page, 2, table="video-table", timeout=60_000)
    page.screenshot(path=str(tmp_path / "video_results.png"), full_page=True)

    rows = data_rows(page, "video-table")
    assert [rows.nth(i).inner_text().split()[0] for i in range(2)] == ["1", "2"]
    assert "gradio_api/file=" in page.locator("#video-annotated video").get_attribute("src")


def test_compare_tab_shows_both_photos_verdict_and_heatmap(page, tmp_path):
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-button")
    page.locator("#compare-input-a input[type=file]").set_input_files(str(ROOT / "examples" / "astronaut.png"))
    page.wait_for_selector("#compare-input-a img")
    page.locator("#compare-input-b input[type=file]").set_input_files(str(ROOT / "examples" / "group.jpg"))
    page.wait_for_selector("#compare-input-b img")
    page.click("#compare-button")
    verdict = page.locator("#compare-verdict")
    verdict.get_by_text("similarity").wait_for(timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#compare-annotated-a img", timeout=30_000)
    page.wait_for_selector("#compare-annotated-b img", timeout=30_000)
    page.wait_for_selector("#compare-heatmap .js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

    text = verdict.inner_text()
    assert text.startswith(("Same person — similarity", "Different people — similarity")) and "threshold" in text
    sizes = [page.locator(f"#compare-annotated-{x} img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
             for x in ("a", "b")]
    with Image.open(ROOT / "examples" / "astronaut.png") as a, Image.open(ROOT / "examples" / "group.jpg") as b:
        assert sizes == [list(a.size), list(b.size)]
    # A new photo clears the old verdict.
    page.locator("#compare-input-b input[type=file]").set_input_files(str(ROOT / "examples" / "grace_hopper.jpg"))
    page.wait_for_function("() => !document.querySelector('#compare-verdict').innerText.includes('similarity')",
                           timeout=30_000)
    assert page.locator("#compare-annotated-b img").count() == 0


def test_compare_tab_without_a_face_shows_a_message(page, tmp_path):
    y, x = np.mgrid[0:240, 0:320]
    gradient = np.stack([x * 0.7, y, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(gradient).save(path)
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-button")
    page.locator("#compare-input-a input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#compare-input-a img")
    page.locator("#compare-input-b input[type=file]").set_input_files(str(ROOT / "examples" / "astronaut.png"))
    page.wait_for_selector("#compare-input-b img")
    page.click("#compare-button")
    page.get_by_text("No face found in the first photo").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "compare_no_face.png"), full_page=True)


@pytest.mark.parametrize(
    "name", ["photo_text_as_jpg", "photo_1x1", "photo_heic", "photo_animated_gif", "clip_audio_only", "clip_very_long"]
)
def test_bad_inputs_show_face_mtls_message(page, name, bad_input_corpus, tmp_path):
    # A representative subset of tests/bad_inputs.py: the page shows the same one-line message
    # as the library, the command line and the API, then still analyses a good photo.
    from bad_inputs import KINDS_BY_NAME

    kind, path = KINDS_BY_NAME[name], bad_input_corpus[name]
    if kind.media == "photo":
        page.locator("#photo-input input[type=file]").set_input_files(str(path))
        page.wait_for_selector("#photo-input img")
        page.click("#photo-button")
    else:
        page.get_by_role("tab", name="Video").click()
        page.wait_for_selector("#video-button")
        page.locator("#video-input input[type=file]").set_input_files(str(path))
        page.wait_for_selector("#video-input video", timeout=60_000)
        page.click("#video-button")
    message = page.locator(".toast-body").filter(has_text=f"{path.name}: ")
    message.first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert kind.problem in message.first.inner_text().lower()
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    if kind.media == "photo":
        upload(page, ROOT / "examples" / "astronaut.png")
        page.click("#photo-button")
        wait_for_rows(page, 1)
