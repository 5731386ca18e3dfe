"""Collections: discovery, records, writers, resume, the local engine and the command line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from face_mtl.batch import (
    AnalyzerOptions,
    ImageLayout,
    LocalEngine,
    VideoLayout,
    analyze_many,
    discover,
    done_inputs,
    map_ahead,
    one_line_reason,
    open_writer,
    read_records,
)
from face_mtl.config import ModelConfig
from face_mtl.images import ImageLoadError, decode_image, load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHARED_VIDEOS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "videos"
LAYOUT = ImageLayout.for_config(ModelConfig())


def run_cli(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "face_mtl", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def small_copy(source: Path, target: Path, side: int = 256) -> Path:
    """``source`` scaled to ``side`` pixels on its longer side: faces stay, detection is cheap."""
    image = Image.open(source).convert("RGB")
    image.thumbnail((side, side))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target)
    return target


def make_collection(root: Path) -> dict[str, Path]:
    """Two faces in nested folders with spaces and unicode, a bad file, an empty one, a
    photo without faces and a file that is not an image by name (ignored in folders)."""
    files = {
        "astronaut": small_copy(EXAMPLES / "astronaut.png", root / "sub dir" / "ünïcode" / "astro naut.png"),
        "hopper": small_copy(EXAMPLES / "grace_hopper.jpg", root / "hopper.jpg"),
        "bad": root / "bad.jpg",
        "empty": root / "empty.png",
        "blank": root / "blank.png",
    }
    files["bad"].write_bytes(b"this is not a jpeg")
    files["empty"].write_bytes(b"")
    Image.new("RGB", (64, 48), (200, 180, 160)).save(files["blank"])
    (root / "notes.md").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"skipped")
    return files


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("collection")
    return root, make_collection(root)


@pytest.fixture(scope="module")
def analyzer():
    from face_mtl import FaceAnalyzer

    return FaceAnalyzer(device="cpu")


@pytest.fixture(scope="module")
def records(collection, analyzer) -> list[dict]:
    root, _ = collection
    return list(analyze_many(root, analyzer))


def cross_process_tolerance(analyzer) -> float:
    """How far another process's numbers may be from this one's. The CLI's and Ray's workers
    run the network on one thread each, the fixtures on the machine's threads: in bf16 (the
    bundled weights on CPUs with native bfloat16) the differently split sums round apart by a
    few bf16 steps (2**-10 near 0.17: 2.2e-3 seen), in fp32 by about 3e-5."""
    from face_mtl.model import effective_precision

    return 4e-3 if effective_precision(analyzer.config, analyzer.device) == "bf16" else 2e-3


def by_image(records: list[dict]) -> dict[str, dict]:
    return {r["image"]: r for r in records}


def assert_same_records(got: list[dict], expected: list[dict], tolerance: float = 2e-3) -> None:
    """The same images, errors and faces; numbers within ``tolerance`` (batching and thread
    counts change the last digits of float sums)."""
    got_map, expected_map = by_image(got), by_image(expected)
    assert sorted(got_map) == sorted(expected_map) and len(got) == len(expected)
    for image, want in expected_map.items():
        have = got_map[image]
        assert have.get("error") == want.get("error"), image
        assert len(have.get("faces", [])) == len(want.get("faces", [])), image
        for a, b in zip(have.get("faces", []), want.get("faces", [])):
            assert a["emotion"] == b["emotion"] and a["gender"] == b["gender"]
            assert a["ethnicity"] == b["ethnicity"]
            assert a["box"] == pytest.approx(b["box"], abs=0.5)
            assert a["age"] == pytest.approx(b["age"], abs=0.2)
            for key in ("emotions", "genders", "ethnicities"):
                assert a[key] == pytest.approx(b[key], abs=tolerance)
            assert a["embedding"] == pytest.approx(b["embedding"], abs=tolerance)


# ---------------------------------------------------------------------------- discovery


def test_discover_walks_folders_and_expands_globs_and_lists(tmp_path, collection):
    root, files = collection
    found = discover([root])
    expected = [files[k] for k in ("bad", "blank", "empty", "hopper", "astronaut")]
    assert found == [str(p) for p in expected]  # sorted, files of a folder before its subfolders
    assert discover([str(root / "**" / "*.png")]) == [str(files["blank"]), str(files["empty"]), str(files["astronaut"])]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two photos\n{files['hopper']}\n\n{files['astronaut'].parent}\n", encoding="utf-8")
    assert discover([listing, files["hopper"]]) == [str(files["hopper"]), str(files["astronaut"])]
    # Explicit files are kept whatever their names; missing ones become error records.
    assert discover([root / "notes.md", root / "missing.jpg"]) == [str(root / "notes.md"), str(root / "missing.jpg")]


# ---------------------------------------------------------------------------- records


def test_records_match_analyze_image_by_image(collection, analyzer, records):
    _, files = collection
    assert [r["image"] for r in records] == discover([collection[0]])
    mapped = by_image(records)
    assert mapped[str(files["bad"])] == {"image": str(files["bad"]), "error": "not an image: a text file; use a JPEG, PNG or WebP photo"}
    assert mapped[str(files["empty"])] == {"image": str(files["empty"]), "error": "empty file"}
    assert mapped[str(files["blank"])] == {"image": str(files["blank"]), "faces": []}
    expected = [
        {"image": str(files[k]), "faces": [f.to_dict() for f in analyzer.analyze(files[k])]}
        for k in ("astronaut", "hopper")
    ]
    assert all(len(e["faces"]) == 1 for e in expected)
    assert_same_records([mapped[e["image"]] for e in expected], expected)


def test_batch_size_threads_and_workers_do_not_change_records(collection, analyzer, records):
    root, _ = collection
    one_by_one = list(analyze_many([root], analyzer, batch_size=1, decode_threads=1, workers=1))
    assert_same_records(one_by_one, records)
    # Three one-image batches in flight at once: records still come back in input order.
    concurrent = list(analyze_many([root], analyzer, batch_size=1, workers=3))
    assert [r["image"] for r in concurrent] == [r["image"] for r in records]
    assert_same_records(concurrent, records)


def test_map_ahead_keeps_order_and_bounds_the_work_in_flight():
    import threading
    import time

    started: list[int] = []
    running, most = 0, 0
    lock = threading.Lock()

    def slow_square(x: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            started.append(x)
        time.sleep(0.02 * (x % 3))  # later items often finish first
        with lock:
            running -= 1
        return x * x

    with ThreadPoolExecutor(4) as pool:
        results = map_ahead(slow_square, range(12), pool, ahead=2)
        assert next(results) == 0
        assert len(started) <= 3  # lazy: only what the window holds was submitted
        assert list(results) == [x * x for x in range(1, 12)]
    assert most <= 2


def test_loader_errors_become_records_and_engine_restores_torch_threads(tmp_path, analyzer, astronaut_path):
    import torch

    from face_mtl.batch import analyze_files

    def loader(path: str):
        if path == "broken":
            raise OSError("device not ready")
        return load_image(path)

    got = list(analyze_files([str(astronaut_path), "broken"], analyzer, workers=2, loader=loader))
    assert got[1] == {"image": "broken", "error": "device not ready"}
    assert len(got[0]["faces"]) == 1

    before = torch.get_num_threads()
    out = tmp_path / "r.jsonl"
    summary = LocalEngine(workers=2, progress=False).run([str(astronaut_path)], out, AnalyzerOptions(device="cpu"))
    assert torch.get_num_threads() == before
    assert summary.errors == 0 and len(list(read_records(out))[0]["faces"]) == 1


def test_decode_image_errors_read_like_load_image(tmp_path):
    bad = tmp_path / "x.png"
    for content in (b"", b"hello", b"\x89PNG\r\n\x1a\nbroken"):
        bad.write_bytes(content)
        with pytest.raises(ImageLoadError) as from_path:
            load_image(bad)
        with pytest.raises(ImageLoadError) as from_bytes:
            decode_image(content, str(bad))
        assert str(from_path.value) == str(from_bytes.value)
    good = (EXAMPLES / "grace_hopper.jpg").read_bytes()
    assert np.array_equal(decode_image(good, "g"), load_image(EXAMPLES / "grace_hopper.jpg"))


def test_reasons_are_one_line_without_the_path():
    assert one_line_reason(ImageLoadError("a b.jpg", "empty file"), "a b.jpg") == "empty file"
    assert one_line_reason(RuntimeError("boom\n  at line 3"), "x") == "RuntimeError: boom at line 3"
    from face_mtl.video import VideoError

    assert one_line_reason(VideoError("c.mp4", "no video stream (not a video file)"), "c.mp4") == (
        "no video stream (not a video file)"
    )
    assert len(one_line_reason(ValueError("x" * 1000), "p")) == 300


# ---------------------------------------------------------------------------- writers


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_read_back_as_the_records(tmp_path, records, suffix):
    out = tmp_path / f"results{suffix}"
    writer = open_writer(out, LAYOUT)
    for record in records:
        writer.write(record)
    writer.close()
    assert list(read_records(out)) == records


def test_parquet_schema_has_every_face_field(records):
    pa = pytest.importorskip("pyarrow")
    face_type = LAYOUT.arrow_schema().field("faces").type.value_type
    face = next(r["faces"][0] for r in records if r.get("faces"))
    assert {face_type.field(i).name for i in range(face_type.num_fields)} == set(face)
    assert isinstance(face_type, pa.StructType)


def test_csv_has_one_row_per_face_and_one_per_faceless_image(tmp_path, records, collection):
    _, files = collection
    out = tmp_path / "results.csv"
    writer = open_writer(out, LAYOUT)
    for record in records:
        writer.write(record)
    writer.close()
    with open(out, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == LAYOUT.csv_columns
    assert len(rows) == sum(max(1, len(r.get("faces", []))) for r in records)
    bad = next(r for r in rows if r["image"] == str(files["bad"]))
    assert bad["error"] == "not an image: a text file; use a JPEG, PNG or WebP photo" and bad["face"] == "" and bad["age"] == ""
    astronaut = next(r for r in rows if r["image"] == str(files["astronaut"]))
    face = by_image(records)[str(files["astronaut"])]["faces"][0]
    assert astronaut["face"] == "1" and astronaut["emotion"] == face["emotion"]
    assert float(astronaut["emotion_happiness"]) == face["emotions"]["happiness"]
    assert json.loads(astronaut["embedding"]) == face["embedding"]
    assert json.loads(astronaut["landmarks"]) == face["landmarks"]


def test_video_rows_flatten_tracks():
    layout = VideoLayout(("happy", "sad"))
    record = {
        "video": "c.mp4",
        "tracks": [{"id": 1, "frames": [{"t": 0.0, "box": [1, 2, 3, 4], "emotions": {"happy": 0.7, "sad": 0.3}}]}],
    }
    assert layout.csv_rows(record) == [
        {"video": "c.mp4", "error": "", "person": 1, "t": 0.0, "x1": 1, "y1": 2, "x2": 3, "y2": 4,
         "emotion": "happy", "happy": 0.7, "sad": 0.3}
    ]  # fmt: skip
    assert layout.csv_rows({"video": "d.mp4", "error": "no video stream"}) == [
        {"video": "d.mp4", "error": "no video stream"}
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_sees_done_inputs_and_drops_a_cut_last_line(tmp_path, records, suffix):
    out = tmp_path / f"results{suffix}"
    writer = open_writer(out, LAYOUT)
    writer.write(records[0])
    writer.close()
    with open(out, "a", encoding="utf-8") as file:
        file.write('{"image": "half a li')  # a run killed mid-line
    assert done_inputs(out, "image") == {records[0]["image"]}
    writer = open_writer(out, LAYOUT, append=True)
    writer.write(records[1])
    writer.close()
    assert done_inputs(out, "image") == {records[0]["image"], records[1]["image"]}
    if suffix == ".jsonl":
        assert list(read_records(out)) == records[:2]


# ---------------------------------------------------------------------------- command line


def test_cli_writes_every_format_and_resumes(tmp_path, collection, records, analyzer):
    root, files = collection
    out = tmp_path / "out" / "results.jsonl"
    # Resume on a file holding only the first record: the others are added once each.
    out.parent.mkdir()
    out.write_text(json.dumps(records[0]) + "\n", encoding="utf-8")
    result = run_cli("analyze", str(root), "--out", str(out), "--resume", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"{len(records) - 1} images" in result.stderr and "1 already done" in result.stderr
    assert_same_records(list(read_records(out)), records, cross_process_tolerance(analyzer))

    csv_out = tmp_path / "results.csv"
    result = run_cli("analyze", str(files["hopper"]), str(root / "*.jpg"), "--out", str(csv_out))
    assert result.returncode == 0, result.stderr
    with open(csv_out, encoding="utf-8", newline="") as file:
        assert [row["image"] for row in csv.DictReader(file)] == [str(files["hopper"]), str(files["bad"])]


def test_cli_refuses_collection_options_without_out(astronaut_path):
    result = run_cli("analyze", str(astronaut_path), "--engine", "ray")
    assert result.returncode == 2 and "--engine" in result.stderr and "--out" in result.stderr
    result = run_cli("analyze", str(astronaut_path), "--out", "results.jsonl", "--workers", "0")
    assert result.returncode == 2 and "--workers: must be 1 or more, got 0" in result.stderr
    result = run_cli("analyze", str(astronaut_path), "--workers", "2")
    assert result.returncode == 2 and "--workers: only with --out" in result.stderr
    result = run_cli("analyze", str(astronaut_path), "--out", "r.parquet", "--engine", "ray", "--threads", "2")
    assert result.returncode == 2 and "--threads and --workers are for --engine local" in result.stderr
    result = run_cli("analyze", str(astronaut_path), "--out", "results.txt")
    assert result.returncode == 2 and "unknown output format" in result.stderr


def test_engine_ray_without_ray_is_a_clear_error(tmp_path, astronaut_path):
    # sys.modules["ray"] = None makes "import ray" fail as if Ray were not installed.
    code = (
        "import sys; sys.modules['ray'] = None; import face_mtl, face_mtl.batch; from face_mtl.cli import main; "
        f"sys.exit(main(['analyze', {str(astronaut_path)!r}, '--engine', 'ray', '--out', {str(tmp_path / 'r.parquet')!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install 'face_mtl[scale]'" in result.stderr and "Traceback" not in result.stderr


def test_importing_face_mtl_does_not_import_ray():
    code = "import sys, face_mtl, face_mtl.batch, face_mtl.cli; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


@pytest.mark.skipif(not (SHARED_VIDEOS / "single_face.mp4").exists(), reason="shared test clips not present")
def test_cli_video_collection(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "single face.mp4").write_bytes((SHARED_VIDEOS / "single_face.mp4").read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "clips.jsonl"
    result = run_cli("video", str(folder), "--out", str(out), "--fps", "2")
    assert result.returncode == 0, result.stderr
    records = {Path(r["video"]).name: r for r in read_records(out)}
    assert set(records) == {"single face.mp4", "broken.mp4"}
    assert "error" in records["broken.mp4"] and "\n" not in records["broken.mp4"]["error"]
    good = records["single face.mp4"]
    assert good["summary"]["people"] == 1 and good["tracks"][0]["frames"]


# ---------------------------------------------------------------------------- Ray engine


def test_ray_engine_writes_the_records_of_the_local_engine(tmp_path, collection, records, analyzer):
    """A local 2-CPU Ray instance over the same folder (a bad file, an empty one and a missing
    path included): the same images, errors and faces as the local engine."""
    pytest.importorskip("ray.data")
    pytest.importorskip("pyarrow")
    root, _ = collection
    missing = str(root / "missing.jpg")
    out = tmp_path / "ray.parquet"
    result = run_cli(
        "analyze", str(root), missing, "--engine", "ray", "--num-cpus", "2", "--device", "cpu", "--out", str(out),
        # Ray runs its workers 15 nice levels below the driver; on a busy machine that starves
        # them for minutes. Same priority as the test instead (scheduling only).
        timeout=900, env={**os.environ, "RAY_worker_niceness": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.is_dir() and list(out.glob("*.parquet"))
    expected = [*records, {"image": missing, "error": "no such file"}]
    assert_same_records(list(read_records(out)), expected, cross_process_tolerance(analyzer))
    assert done_inputs(out, "image") == {r["image"] for r in expected}


def test_ray_actor_plan_leaves_a_cpu_for_reading_and_uses_gpus_when_there():
    pytest.importorskip("ray.data")
    from face_mtl.batch import BatchError
    from face_mtl.ray_engine import plan_actors

    cpu = plan_actors(cpus=8, gpus=0, device=None, concurrency=None, gpus_per_actor=None)
    assert (cpu.actors, cpu.gpus_per_actor, cpu.device) == (7, 0.0, "cpu")
    assert plan_actors(8, 2, None, None, 0.5) == plan_actors(8, 2, "cuda", 4, 0.5)
    assert plan_actors(8, 2, None, None, 0.5).actors == 4 and plan_actors(8, 2, None, None, 0.5).device == "cuda"
    assert plan_actors(8, 2, "cpu", None, None).device == "cpu"  # --device cpu keeps to CPU actors
    # As many CPU actors as CPUs would leave Ray Data's read tasks waiting forever.
    with pytest.raises(BatchError, match="at most 1"):
        plan_actors(2, 0, None, 2, None)
    with pytest.raises(BatchError, match="local engine"):
        plan_actors(1, 0, None, None, None)
    with pytest.raises(BatchError, match="no GPUs"):
        plan_actors(4, 0, "cuda", None, None)
