"""The face-mtl command line, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import shutil
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


# --- compare, people, calibrate ------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COMPARE_FIELDS = {"similarity", "same_person", "threshold", "matrix", "faces_a", "faces_b"}


def test_compare_json_has_exactly_the_documented_fields():
    result = run_cli("compare", str(EXAMPLES / "astronaut.png"), str(EXAMPLES / "group.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == COMPARE_FIELDS
    assert isinstance(payload["similarity"], float) and isinstance(payload["same_person"], bool)
    assert payload["same_person"] == (payload["similarity"] >= payload["threshold"])
    assert len(payload["faces_a"]) == 1 and len(payload["faces_b"]) == 4
    assert len(payload["matrix"]) == 1 and len(payload["matrix"][0]) == 4
    assert payload["matrix"][0][0] == payload["similarity"]
    assert {"box", "emotion", "embedding"} <= set(payload["faces_b"][0])


def test_compare_prints_verdict_similarity_threshold_and_the_matrix():
    result = run_cli("compare", str(EXAMPLES / "group.jpg"), str(EXAMPLES / "astronaut.png"))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(("same person: similarity", "different people: similarity")) and "threshold" in first
    assert "B1" in result.stdout and all(f"A{i}" in result.stdout for i in range(1, 5))
    single = run_cli("compare", str(EXAMPLES / "astronaut.png"), str(EXAMPLES / "astronaut.png"))
    assert single.stdout.startswith("same person: similarity 1.000") and "B1" not in single.stdout


def test_compare_without_a_face_exits_2_naming_the_file(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (90, 140, 200)).save(blank)
    result = run_cli("compare", str(EXAMPLES / "astronaut.png"), str(blank), "--json")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("face-mtl: error: ")
    assert str(blank) in lines[0] and "no face found" in lines[0]
    unreadable = tmp_path / "notes.jpg"
    unreadable.write_text("hello")
    result = run_cli("compare", str(unreadable), str(EXAMPLES / "astronaut.png"))
    assert result.returncode == 2 and str(unreadable) in result.stderr and "Traceback" not in result.stderr


def test_people_groups_the_example_faces_and_skips_bad_files(tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    shutil.copy(EXAMPLES / "group.jpg", photos / "group.jpg")
    shutil.copy(EXAMPLES / "astronaut.png", photos / "more" / "astronaut.PNG")
    shutil.copy(EXAMPLES / "grace_hopper.jpg", photos / "more" / "grace_hopper.jpg")
    Image.new("RGB", (120, 90), (200, 200, 200)).save(photos / "no_face.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / "notes.txt").write_text("ignored: not an image")
    out, sheets = tmp_path / "people.json", tmp_path / "sheets"
    result = run_cli("people", str(photos), "--out", str(out), "--sheets", str(sheets))
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stderr and "skipped" in result.stderr
    people = json.loads(out.read_text())
    faces = [face for person in people for face in person["faces"]]
    # 4 faces in the group photo, 1 in each portrait; every face in exactly one person.
    assert sorted((Path(f["image"]).name, f["face"]) for f in faces) == sorted(
        [("group.jpg", i) for i in range(4)] + [("astronaut.PNG", 0), ("grace_hopper.jpg", 0)]
    )
    assert [p["person"] for p in people] == list(range(1, len(people) + 1))
    assert [len(p["faces"]) for p in people] == sorted((len(p["faces"]) for p in people), reverse=True)
    assert all(len(f["box"]) == 4 for f in faces)

    def person_of(name, index):
        return next(p["person"] for p in people for f in p["faces"] if (Path(f["image"]).name, f["face"]) == (name, index))

    # Eileen Collins: the astronaut photo and faces 2 and 4 (0-based 1 and 3) of the group photo.
    assert person_of("astronaut.PNG", 0) == person_of("group.jpg", 1) == person_of("group.jpg", 3)
    assert person_of("group.jpg", 1) != person_of("group.jpg", 0)  # Collins is not Grace Hopper
    written = sorted(p.name for p in sheets.iterdir())
    assert written == [f"person_{p['person']:03d}.png" for p in people]
    with Image.open(sheets / written[0]) as sheet:
        assert sheet.width >= 3 * 112 and sheet.height > 112  # the biggest group: three faces


def test_people_on_an_empty_folder_exits_2(tmp_path):
    result = run_cli("people", str(tmp_path), "--out", str(tmp_path / "people.json"))
    assert result.returncode == 2 and "no images found" in result.stderr


def test_calibrate_refuses_a_missing_data_folder(tmp_path):
    result = run_cli("calibrate", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "not the training data folder" in result.stderr
