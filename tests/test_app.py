"""The app's handlers on the example photos, and the app's wiring (no server, no browser).

Predictions of the bundled weights are not asserted, only structure and counts; face counts
come from the real detector.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from face_mtl import FaceAnalyzer
from face_mtl.config import EMOTIONS
from face_mtl.limits import Limits
from face_mtl.render.photo import TABLE_COLUMNS
from face_mtl.ui import (
    QUEUE_CONCURRENCY,
    QUEUE_MAX_SIZE,
    about_markdown,
    example_clips,
    fresh_export_folder,
    on_gpu,
)
from face_mtl.ui import compare as compare_ui
from face_mtl.ui import photo as photo_ui

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXPECTED_FACES = {"astronaut.png": 1, "grace_hopper.jpg": 1, "group.jpg": 4}

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # building Blocks would otherwise phone home


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(device="cpu")


@pytest.fixture(scope="module")
def analyze_image(analyzer):
    return photo_ui.make_analyze_image(analyzer)


@pytest.fixture(scope="module")
def outputs(analyze_image):
    """Handler outputs for every example photo (each photo analysed once)."""
    return {name: analyze_image(str(EXAMPLES / name)) for name in EXPECTED_FACES}


@pytest.fixture()
def faceless_path(tmp_path) -> Path:
    """A smooth colour gradient with noise: no face anywhere."""
    y, x = np.mgrid[0:240, 0:320]
    noise = np.random.default_rng(0).normal(0, 8, (240, 320, 3))
    image = np.stack([x * 0.7, y, np.full_like(x, 128)], axis=-1) + noise
    path = tmp_path / "gradient.png"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("name", list(EXPECTED_FACES))
def test_handler_outputs_on_example_photos(outputs, name):
    annotated, table, chart, results = outputs[name]
    count = EXPECTED_FACES[name]
    with Image.open(EXAMPLES / name) as photo:
        width, height = photo.size
    with Image.open(annotated) as picture:
        assert picture.format == "WEBP" and picture.size == (width, height)
    assert isinstance(table, pd.DataFrame) and list(table.columns) == list(TABLE_COLUMNS)
    assert table["face"].tolist() == list(range(1, count + 1))
    assert isinstance(chart, go.Figure) and len(chart.data) == len(EMOTIONS)
    assert all(len(trace.y) == count for trace in chart.data)
    assert results["count"] == count and results["image"] == {"width": width, "height": height}
    json.dumps(results)  # JSON-serialisable as the API returns it
    for face, row in zip(results["faces"], table.itertuples(index=False), strict=True):
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert row[TABLE_COLUMNS.index("emotion")] == face["emotion"]
        assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=1e-3)


def test_group_photo_faces_are_numbered_largest_first(outputs):
    _, table, _, results = outputs["group.jpg"]
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in results["faces"]]
    assert areas == sorted(areas, reverse=True)
    assert table["face"].tolist() == [f["face"] for f in results["faces"]] == [1, 2, 3, 4]


def test_annotated_photo_differs_from_the_original(outputs):
    annotated = np.asarray(Image.open(outputs["astronaut.png"][0]).convert("RGB")).astype(int)
    original = np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB")).astype(int)
    # WebP is lossy: count pixels that the boxes and labels changed, not compression noise.
    assert (np.abs(annotated - original) > 40).any(axis=2).mean() > 0.001


def test_annotated_pictures_appear_only_whole_even_when_rewritten_while_read(monkeypatch, tmp_path):
    """Gradio rewrote an array output's cache file in place, so a download racing a second
    request for the same picture could read it truncated. ``picture_file`` writes a picture
    aside and renames it into place: a reader finds it whole or not at all."""
    import threading

    from face_mtl import ui

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rgb = np.asarray(Image.open(EXAMPLES / "group.jpg").convert("RGB"))
    path = Path(ui.picture_file(rgb, "photo", "face_mtl_annotated"))
    expected = path.read_bytes()
    returned, seen, stop = [], [], threading.Event()

    def rewrite() -> None:
        for _ in range(15):
            path.unlink(missing_ok=True)  # as if new: written again
            returned.append(ui.picture_file(rgb, "photo", "face_mtl_annotated"))

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(path.read_bytes())
            except FileNotFoundError:
                pass

    writers = [threading.Thread(target=rewrite) for _ in range(3)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert set(returned) == {str(path)}  # the same picture, the same file
    assert seen and all(data == expected for data in seen)  # never a partial file
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing left aside
    other = Path(ui.picture_file(rgb[::2, ::2].copy(), "photo", "face_mtl_annotated"))
    assert other.parent != path.parent and other.is_file()


def test_no_face_gives_a_clear_message(analyze_image, faceless_path):
    with pytest.raises(gr.Error, match="No face found"):
        analyze_image(str(faceless_path))


def test_missing_and_unreadable_inputs_give_clear_messages(analyze_image, tmp_path):
    with pytest.raises(gr.Error, match="Add a photo first"):
        analyze_image(None)
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(gr.Error) as caught:
        analyze_image(str(not_an_image))
    assert caught.value.message.startswith("notes.jpg: not an image: a text file")
    assert str(tmp_path) not in caught.value.message  # no server paths in user messages
    # Unprocessed uploads (Gradio's FileData) are named by the user's own file name, escaped.
    upload = {"path": str(not_an_image), "orig_name": "<b>my notes</b>.jpg"}
    with pytest.raises(gr.Error) as caught:
        analyze_image(upload)
    assert caught.value.message.startswith("&lt;b&gt;my notes&lt;/b&gt;.jpg: not an image")
    with pytest.raises(gr.Error, match="Add a photo first"):
        analyze_image({"path": None})


def test_oversized_photos_are_refused_before_decoding(monkeypatch):
    limited = FaceAnalyzer(device="cpu", limits=Limits(max_pixels=100_000))
    with pytest.raises(gr.Error, match="512x512 pixels .* more than the 0.1 megapixel limit") as caught:
        photo_ui.make_analyze_image(limited)(str(EXAMPLES / "astronaut.png"))
    assert caught.value.title == "Outside the limits"


def test_fresh_export_folder_skips_entries_removed_meanwhile(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = tmp_path / "face_mtl_photo"
    root.mkdir()
    # stat() follows links: a dangling one raises FileNotFoundError like a folder deleted meanwhile.
    (root / "gone").symlink_to(tmp_path / "missing")
    folder = fresh_export_folder("photo")
    assert folder.is_dir() and folder.parent == root and not any(folder.iterdir())


def test_export_results_writes_json_and_csv(outputs):
    results = outputs["group.jpg"][3]
    json_path, csv_path = photo_ui.export_results(results)
    assert Path(json_path).name == "face_mtl_results.json" and Path(csv_path).suffix == ".csv"
    assert json.loads(Path(json_path).read_text())["count"] == 4
    assert len(pd.read_csv(csv_path)) == 4
    assert photo_ui.export_results(None) is None
    assert photo_ui.export_results({"faces": []}) is None


def test_clear_outputs_match_the_outputs():
    image, table, chart, results = photo_ui.clear_outputs()
    assert image is None and chart is None and results is None
    assert table.empty and list(table.columns) == list(TABLE_COLUMNS)


def test_example_photos_lead_with_the_group_photo():
    paths = photo_ui.example_photos(EXAMPLES)
    assert [Path(p).name for p in paths[:3]] == ["group.jpg", "astronaut.png", "grace_hopper.jpg"]


def test_example_clips_are_videos_only(tmp_path):
    for name in ("b.mp4", "a.webm", "still.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).name for p in example_clips(tmp_path)] == ["a.webm", "b.mp4"]


def test_about_text_names_data_licences_and_model_card(analyzer):
    text = about_markdown(analyzer.config, "/model-card")
    for needed in ("UTKFace", "FER+", "FER2013", "CelebA", "non-commercial research", "(/model-card)"):
        assert needed in text
    assert "appearance" in text and "not" in text


def test_on_gpu_is_a_no_op_without_spaces_and_wraps_with_it(monkeypatch):
    def work(x):
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert on_gpu(work) is work
    calls = []

    def gpu(fn=None, duration=None):
        def wrap(f):
            calls.append(duration)
            return lambda *a: f(*a) * 10

        return wrap(fn) if fn is not None else wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    assert on_gpu(work)(1) == 20 and on_gpu(work, duration=90)(1) == 20
    assert calls == [None, 90]


def load_app_module():
    spec = importlib.util.spec_from_file_location("face_mtl_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_wiring(analyzer, monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    demo = load_app_module().build_app(analyzer)
    assert isinstance(demo, gr.Blocks)
    api = demo.get_api_info()["named_endpoints"]
    assert set(api) == {"/analyze_image", "/analyze_video", "/compare_faces"}  # helpers stay private
    compare = api["/compare_faces"]
    assert [p["component"] for p in compare["parameters"]] == ["Image", "Image"]
    assert [r["component"] for r in compare["returns"]] == ["Image", "Image", "Markdown", "Plot"]
    compare_fn = next(f for f in demo.fns.values() if f.api_name == "compare_faces")
    # The app's own analyzer serves it (its bound compare method), not a second one.
    assert any(getattr(cell.cell_contents, "__self__", None) is analyzer for cell in compare_fn.fn.__closure__)
    for name in ("compare-input-a", "compare-input-b"):
        compare_input = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == name)
        assert set(compare_input.sources) == {"upload", "clipboard", "webcam"}
    image = api["/analyze_image"]
    assert [p["component"] for p in image["parameters"]] == ["Image"]
    assert [r["component"] for r in image["returns"]] == ["Image", "Dataframe", "Plot", "Json"]
    video = api["/analyze_video"]
    assert [p["component"] for p in video["parameters"]] == ["Video"]
    assert [r["component"] for r in video["returns"]] == ["Plot", "Dataframe", "Video", "File", "File"]
    video_fn = next(f for f in demo.fns.values() if f.api_name == "analyze_video")
    # The app's own analyzer serves the clip, not a second default FaceAnalyzer.
    assert video_fn.fn.__name__ == "analyze_clip"
    assert any(cell.cell_contents is analyzer for cell in video_fn.fn.__closure__)
    assert demo._queue.max_size == QUEUE_MAX_SIZE
    assert demo._queue.default_concurrency_limit == QUEUE_CONCURRENCY
    image_fn = next(f for f in demo.fns.values() if f.api_name == "analyze_image")
    assert image_fn.preprocess is False  # face_mtl reads the upload and words any refusal
    photo_input = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "photo-input")
    assert set(photo_input.sources) == {"upload", "clipboard", "webcam"}
    clip_input = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "video-input")
    assert set(clip_input.sources) == {"upload", "webcam"}



def test_live_tab_wiring(analyzer, monkeypatch, tmp_path):
    from face_mtl.ui.live import STATE_TTL_S, STREAM_EVERY

    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    limited = FaceAnalyzer(device="cpu", limits=Limits(max_live_seconds=30, max_live_sessions=3))
    demo = load_app_module().build_app(limited)
    stream = next(f for f in demo.fns.values() if f.connection == "stream")
    # The session limits are the analyzer's (FACE_MTL_MAX_LIVE_*), and the stream is not an API.
    assert (stream.time_limit, stream.concurrency_limit, stream.stream_every) == (30, 3, STREAM_EVERY)
    assert stream.concurrency_id == "live" and stream.api_name not in demo.get_api_info()["named_endpoints"]
    camera = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "live-camera")
    assert camera.sources == ["webcam"] and camera.streaming and camera.type == "numpy"
    # Per-viewer state in a gr.State that Gradio deletes when idle, never a module global.
    session, ended_at = [b for b in stream.inputs if isinstance(b, gr.State)]
    assert session.value is None and session.time_to_live == STATE_TTL_S and ended_at.value is None
    # The live view shares the loaded model; the analyzer the other tabs use keeps its settings.
    (view,) = [c.cell_contents for c in stream.fn.__closure__
               if isinstance(c.cell_contents, FaceAnalyzer) and c.cell_contents is not limited]
    assert view.model is limited.model and view.test_time_flip is False
    assert limited.test_time_flip is limited.config.test_time_flip


# --- Compare tab ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compare_faces(analyzer):
    return compare_ui.make_compare_faces(analyzer)


def test_compare_tab_annotates_both_photos_and_says_the_verdict(compare_faces, analyzer):
    annotated_a, annotated_b, verdict, heatmap = compare_faces(
        str(EXAMPLES / "astronaut.png"), str(EXAMPLES / "group.jpg")
    )
    for annotated_path, name in ((annotated_a, "astronaut.png"), (annotated_b, "group.jpg")):
        annotated = np.asarray(Image.open(annotated_path).convert("RGB")).astype(int)
        with Image.open(EXAMPLES / name) as photo:
            assert annotated.shape == (photo.height, photo.width, 3)
            assert (np.abs(annotated - np.asarray(photo.convert("RGB")).astype(int)) > 40).any()
    comparison = analyzer.compare(EXAMPLES / "astronaut.png", EXAMPLES / "group.jpg")
    expected = "Same person" if comparison.same_person else "Different people"
    assert verdict.startswith(f"{expected} — similarity {comparison.similarity:.2f}, threshold {comparison.threshold:.2f}")
    # Four faces in the group photo: a 1 x 4 heatmap labelled like the photos.
    assert isinstance(heatmap, go.Figure)
    assert list(heatmap.data[0].x) == ["B1", "B2", "B3", "B4"] and list(heatmap.data[0].y) == ["A1"]
    np.testing.assert_allclose(np.asarray(heatmap.data[0].z), comparison.matrix.round(3), atol=1e-6)


def test_compare_tab_one_face_each_has_no_heatmap(compare_faces):
    _, _, verdict, heatmap = compare_faces(str(EXAMPLES / "grace_hopper.jpg"), str(EXAMPLES / "grace_hopper.jpg"))
    assert verdict.startswith("Same person — similarity 1.00") and heatmap is None


def test_compare_tab_errors_name_the_photo(compare_faces, faceless_path, tmp_path):
    with pytest.raises(gr.Error, match="No face found in the second photo"):
        compare_faces(str(EXAMPLES / "astronaut.png"), str(faceless_path))
    with pytest.raises(gr.Error, match="No face found in the first photo"):
        compare_faces(str(faceless_path), str(EXAMPLES / "astronaut.png"))
    with pytest.raises(gr.Error, match="Add a photo first"):
        compare_faces(str(EXAMPLES / "astronaut.png"), None)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(gr.Error, match="notes.png: not an image"):  # face_mtl's one message for every layer
        compare_faces(str(not_an_image), str(EXAMPLES / "astronaut.png"))


def test_about_text_explains_the_similarity_threshold_and_its_error_rates(analyzer):
    calibration = {"threshold": 0.2345, "accuracy": 0.81, "false_accept_rate": 0.17, "false_reject_rate": 0.21,
                   "pairs": 6000, "same_pairs": 3000, "different_pairs": 3000, "people": 55}
    text = about_markdown(analyzer.config.with_updates(verification=calibration))
    for needed in ("cosine", "0.234", "81.0%", "17.0%", "21.0%", "6000 pairs", "55 CelebA people", "not\nstored"):
        assert needed in text, needed
    uncalibrated = about_markdown(analyzer.config.with_updates(verification={}))
    assert "no calibration" in uncalibrated and "face-mtl calibrate" in uncalibrated


def test_malloc_arenas_are_capped_unless_the_environment_says(monkeypatch):
    from face_mtl.ui import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the operator's own setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert isinstance(limit_malloc_arenas(), bool)  # True on glibc, False elsewhere


def test_freed_memory_goes_back_to_the_system(tmp_path):
    """Freed blocks below a live one stay resident until malloc_trim releases their pages."""
    import subprocess
    import sys

    script = """
import sys
from pathlib import Path
from face_mtl.ui import release_freed_memory
def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
blocks = [bytearray(64 * 1024) for _ in range(3000)]  # 190 MB below glibc's mmap threshold
for b in blocks: b[::4096] = b"x" * len(b[::4096])
pinned = blocks[-1]  # the top of the heap stays in use
del blocks
before = rss_mb()
released = release_freed_memory()
print(before, rss_mb(), released)
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    before, after, released = out.stdout.split()
    if released != "True":
        pytest.skip("not glibc")
    assert float(before) - float(after) > 100  # MB handed back
