"""The app's API through ``gradio_client``, against ``python app.py`` on a loopback port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from face_mtl.config import EMOTIONS
from face_mtl.limits import current_limits
from face_mtl.render.photo import TABLE_COLUMNS

gradio_client = pytest.importorskip("gradio_client")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name, count", [("group.jpg", 4), ("astronaut.png", 1)])
def test_analyze_image_returns_image_table_chart_json(client, name, count):
    image, table, chart, results = client.predict(
        gradio_client.handle_file(str(EXAMPLES / name)), api_name="/analyze_image"
    )
    with Image.open(EXAMPLES / name) as original, Image.open(image) as annotated:
        assert annotated.size == original.size
    assert table["headers"] == list(TABLE_COLUMNS)
    assert [row[0] for row in table["data"]] == list(range(1, count + 1))
    assert chart["type"] == "plotly"
    figure = json.loads(chart["plot"])
    assert [trace["name"] for trace in figure["data"]] == list(EMOTIONS)
    assert results["count"] == count and len(results["faces"]) == count
    assert [face["face"] for face in results["faces"]] == list(range(1, count + 1))


def test_no_face_is_an_error_with_a_message(client, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (90, 140, 200)).save(path)
    with pytest.raises(gradio_client.exceptions.AppError, match="No face found"):
        client.predict(gradio_client.handle_file(str(path)), api_name="/analyze_image")


def test_api_lists_only_the_three_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/analyze_image", "/analyze_video", "/compare_faces"}
    assert len(endpoints["/analyze_image"]["returns"]) == 4
    assert len(endpoints["/analyze_video"]["returns"]) == 5
    assert len(endpoints["/compare_faces"]["parameters"]) == 2
    assert len(endpoints["/compare_faces"]["returns"]) == 4


def test_compare_faces_returns_both_photos_verdict_and_heatmap(client):
    image_a, image_b, verdict, heatmap = client.predict(
        gradio_client.handle_file(str(EXAMPLES / "astronaut.png")),
        gradio_client.handle_file(str(EXAMPLES / "group.jpg")),
        api_name="/compare_faces",
    )
    for path, name in ((image_a, "astronaut.png"), (image_b, "group.jpg")):
        with Image.open(EXAMPLES / name) as original, Image.open(path) as annotated:
            assert annotated.size == original.size
    match = re.fullmatch(r"(Same person|Different people) — similarity (-?[\d.]+), threshold (-?[\d.]+)(.*)", verdict)
    assert match, verdict
    assert (match[1] == "Same person") == (float(match[2]) >= float(match[3]))
    assert heatmap["type"] == "plotly"
    trace = json.loads(heatmap["plot"])["data"][0]
    assert trace["type"] == "heatmap" and trace["x"] == ["B1", "B2", "B3", "B4"] and trace["y"] == ["A1"]
    # The verdict's similarity is the largest faces' cell of the heatmap.
    assert float(match[2]) == pytest.approx(trace["z"][0][0], abs=0.006)


def test_compare_faces_without_a_face_is_an_error_naming_the_photo(client, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (90, 140, 200)).save(path)
    with pytest.raises(gradio_client.exceptions.AppError, match="No face found in the second photo"):
        client.predict(
            gradio_client.handle_file(str(EXAMPLES / "grace_hopper.jpg")),
            gradio_client.handle_file(str(path)),
            api_name="/compare_faces",
        )


def test_analyze_video_returns_timeline_table_clip_and_files(client, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frame = np.asarray(Image.open(EXAMPLES / "group.jpg").convert("RGB").resize((640, 288)))
    clip = tmp_path / "group.mp4"
    writer = imageio_ffmpeg.write_frames(str(clip), (640, 288), fps=5, pix_fmt_out="yuv420p")
    writer.send(None)
    for _ in range(10):  # two seconds of the group photo
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    timeline, people, video, json_file, csv_file = client.predict(
        gradio_client.handle_file(str(clip)), api_name="/analyze_video"
    )
    assert timeline["type"] == "plotly"
    assert len(people["data"]) == 4
    assert Path(video).suffix == ".mp4" and Path(video).stat().st_size > 0
    assert Path(json_file).suffix == ".json" and Path(csv_file).suffix == ".csv"


def test_uploads_over_the_size_limit_are_refused(app_server, tmp_path):
    limit = current_limits().max_upload_bytes
    big = tmp_path / "big.jpg"
    with big.open("wb") as out:
        out.truncate(limit + 1024)
    with big.open("rb") as data:
        response = httpx.post(
            f"{app_server.url}gradio_api/upload", files={"files": ("big.jpg", data)}, timeout=60
        )
    assert response.status_code == 413


def test_model_card_link_is_served_when_present(app_server):
    card = ROOT / "MODEL_CARD.md"
    if not card.exists():
        pytest.skip("MODEL_CARD.md not written yet")
    response = httpx.get(f"{app_server.url}gradio_api/file={card}", timeout=30)
    assert response.status_code == 200 and len(response.content) == card.stat().st_size
