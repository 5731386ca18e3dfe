"""Every kind of awkward input (tests/bad_inputs.py) through the library, the command line and
the HTTP API: inputs that must work do, the rest are refused with one clear line naming the
file, the same line at every layer, and the server stays up. The browser layer is in
test_browser.py (a representative subset).
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs import KINDS, KINDS_BY_NAME, Kind

from face_mtl import FaceAnalyzer
from face_mtl.cli import main
from face_mtl.errors import FaceMTLInputError
from face_mtl.images import load_image
from face_mtl.video import analyze_video, check_limits, probe_video

gradio_client = pytest.importorskip("gradio_client")

ROOT = Path(__file__).resolve().parent.parent
CLIP_FPS = 2.0  # two-second clips: four sampled frames each
IDS = [kind.name for kind in KINDS]


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(device="cpu")


def refusal(kind: Kind, path: Path) -> FaceMTLInputError:
    """The library's refusal of a bad input, from the checks that run before any analysis."""
    try:
        if kind.media == "photo":
            load_image(path)
        else:
            check_limits(probe_video(path))
    except FaceMTLInputError as error:
        return error
    pytest.fail(f"{kind.name}: {path.name} was not refused")


def test_the_corpus_is_broad():
    assert len(KINDS) >= 25
    assert {kind.media for kind in KINDS} == {"photo", "clip"}
    assert sum(kind.valid for kind in KINDS) >= 10 and sum(not kind.valid for kind in KINDS) >= 20


# ---------------------------------------------------------------------------- library


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_library(kind, bad_input_corpus, analyzer):
    path = bad_input_corpus[kind.name]
    if kind.media == "photo" and kind.valid:
        faces = analyzer.analyze(path)
        assert len(faces) == kind.faces
        height, width = load_image(path).shape[:2]
        for face in faces:
            x1, y1, x2, y2 = face.box
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height  # upright pixels (EXIF applied)
    elif kind.valid:
        result = analyze_video(path, analyzer, fps=CLIP_FPS, progress=lambda done, total: None)
        assert len(result.tracks) == 1
        assert (result.width, result.height) == (256, 300)  # upright, rotation tag applied
    else:
        call = analyzer.analyze if kind.media == "photo" else analyze_video
        args = (path,) if kind.media == "photo" else (path, analyzer)
        with pytest.raises(kind.refusal) as caught:
            call(*args)
        error = caught.value
        assert kind.problem in error.problem.lower()
        assert str(error) == f"{path}: {error.problem}" and "\n" not in str(error)


# ---------------------------------------------------------------------------- command line


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_cli(kind, bad_input_corpus, capfd):
    path = bad_input_corpus[kind.name]
    if kind.media == "photo":
        args = ["analyze", str(path), "--json", "--device", "cpu"]
    else:
        args = ["video", str(path), "--json", "--fps", str(CLIP_FPS), "--device", "cpu"]
    code = main(args)
    out, err = capfd.readouterr()
    if kind.valid:
        assert code == 0, err
        data = json.loads(out)
        if kind.media == "photo":
            assert len(data[0]["faces"]) == kind.faces
        else:
            assert len(data["tracks"]) == 1
    else:
        assert code == 2 and out == ""
        assert err.splitlines() == [f"face-mtl: error: {refusal(kind, path)}"]


@pytest.mark.parametrize("name", ["photo_text_as_jpg", "photo_decompression_bomb", "clip_audio_only"])
def test_cli_process_refuses_in_one_line(name, bad_input_corpus):
    # The real entry point, as users run it: exit code 2, one line on stderr, no traceback.
    kind, path = KINDS_BY_NAME[name], bad_input_corpus[name]
    command = "analyze" if kind.media == "photo" else "video"
    done = subprocess.run(
        [sys.executable, "-m", "face_mtl", command, str(path)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"face-mtl: error: {refusal(kind, path)}"]


# ---------------------------------------------------------------------------- HTTP API


@pytest.fixture(scope="module")
def server_log_start(app_server) -> int:
    """Where the shared server's log stood before this module's requests: other modules'
    requests (path-traversal attempts in test_security.py, say) log their own tracebacks."""
    return app_server.log.stat().st_size


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_api(kind, bad_input_corpus, client, server_log_start):
    path = bad_input_corpus[kind.name]
    api_name = "/analyze_image" if kind.media == "photo" else "/analyze_video"
    upload = gradio_client.handle_file(str(path))
    if kind.valid:
        outputs = client.predict(upload, api_name=api_name)
        if kind.media == "photo":
            assert outputs[3]["count"] == kind.faces
        else:
            assert len(outputs[1]["data"]) == 1
        return
    with pytest.raises(gradio_client.exceptions.AppError) as caught:
        client.predict(upload, api_name=api_name)
    # The library's message, with the uploaded file's own name instead of a path.
    assert caught.value.message == refusal(kind, path).message_for(html.escape(path.name))


def test_server_still_answers_and_logged_no_crash(client, app_server, server_log_start):
    outputs = client.predict(
        gradio_client.handle_file(str(ROOT / "examples" / "astronaut.png")), api_name="/analyze_image"
    )
    assert outputs[3]["count"] == 1
    with app_server.log.open("rb") as log:
        log.seek(server_log_start)
        assert b"Traceback" not in log.read()
