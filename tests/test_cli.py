"""The face-mtl command line, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "face_mtl", *args], capture_output=True, text=True, timeout=300)


def test_analyze_prints_a_table(astronaut_path, random_weights):
    result = run_cli("analyze", str(astronaut_path), "--weights", str(random_weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "1 face(s)" in result.stdout
    for column in ("box", "emotion", "age", "gender", "ethnicity"):
        assert column in result.stdout


def test_analyze_json_lists_every_image(astronaut_path, grace_hopper_path, random_weights):
    result = run_cli("analyze", str(astronaut_path), str(grace_hopper_path), "--json", "--weights", str(random_weights))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [item["image"] for item in payload] == [str(astronaut_path), str(grace_hopper_path)]
    for item in payload:
        assert len(item["faces"]) == 1
        face = item["faces"][0]
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5
        assert abs(sum(face["emotions"].values()) - 1) < 1e-3


@pytest.mark.parametrize(("content", "problem"), [(b"", "empty file"), (b"hello\n", "not an image"), (b"\x89PNG\r\n\x1a\nbroken", "not an image")])
def test_bad_input_exits_2_with_one_line(tmp_path, content, problem, random_weights):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    result = run_cli("analyze", str(bad), "--weights", str(random_weights))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and problem in lines[0]
    assert "Traceback" not in result.stderr


def test_four_people_give_four_faces_with_every_field():
    group = Path(__file__).resolve().parent.parent / "examples" / "group.jpg"
    result = run_cli("analyze", str(group), "--json")
    assert result.returncode == 0, result.stderr
    faces = json.loads(result.stdout)[0]["faces"]
    assert len(faces) == 4
    fields = {"box", "score", "landmarks", "emotion", "emotions", "age", "gender", "genders",
              "ethnicity", "ethnicities", "embedding"}
    for face in faces:
        assert fields <= set(face) and all(face[k] is not None for k in fields)
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_missing_weights_exit_2(astronaut_path, tmp_path):
    result = run_cli("analyze", str(astronaut_path), "--weights", str(tmp_path))
    assert result.returncode == 2 and "no face_mtl weights found" in result.stderr


def test_no_flip_gives_the_single_view_prediction(astronaut_path, random_weights):
    from face_mtl import FaceAnalyzer

    result = run_cli("analyze", str(astronaut_path), "--json", "--no-flip", "--weights", str(random_weights), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)[0]["faces"][0]["emotions"]
    single_view = FaceAnalyzer(weights=random_weights, device="cpu", test_time_flip=False).analyze(astronaut_path)[0]
    both_views = FaceAnalyzer(weights=random_weights, device="cpu").analyze(astronaut_path)[0]
    assert printed == pytest.approx(single_view.emotions, abs=1e-4)
    assert max(abs(printed[e] - both_views.emotions[e]) for e in printed) > 1e-3
