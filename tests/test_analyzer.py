"""FaceAnalyzer on real photos: detection, ordering, EXIF, fields, batching, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from face_mtl import EMOTIONS, ETHNICITIES, FaceAnalyzer, ImageLoadError
from face_mtl.images import load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Hand-marked points between the eyes and the mouth of each example face.
ASTRONAUT_FACE_CENTRE = (224, 118)
GRACE_FACE_CENTRE = (265, 230)


def _contains(box, point) -> bool:
    x1, y1, x2, y2 = box
    return x1 <= point[0] <= x2 and y1 <= point[1] <= y2


@pytest.fixture(scope="module")
def analyzer(random_weights) -> FaceAnalyzer:
    return FaceAnalyzer(weights=random_weights, device="cpu")


@pytest.mark.parametrize(
    ("photo", "centre", "width_range"),
    [("astronaut_path", ASTRONAUT_FACE_CENTRE, (60, 130)), ("grace_hopper_path", GRACE_FACE_CENTRE, (120, 260))],
)
def test_one_face_boxed_where_the_face_is(analyzer, request, photo, centre, width_range):
    faces = analyzer.analyze(request.getfixturevalue(photo))
    assert len(faces) == 1
    face = faces[0]
    assert _contains(face.box, centre)
    assert width_range[0] <= face.box[2] - face.box[0] <= width_range[1]
    assert face.score > 0.95
    assert len(face.landmarks) == 5 and all(_contains(face.box, p) for p in face.landmarks)


def test_every_field_is_well_formed(analyzer, astronaut_path):
    face = analyzer.analyze(astronaut_path)[0]
    assert tuple(face.emotions) == EMOTIONS and face.emotion == max(face.emotions, key=face.emotions.get)
    assert tuple(face.ethnicities) == ETHNICITIES
    assert set(face.genders) == {"female", "male"} and face.gender in face.genders
    for probabilities in (face.emotions, face.genders, face.ethnicities):
        assert abs(sum(probabilities.values()) - 1.0) < 1e-5
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert 0.0 <= face.age <= analyzer.config.max_age
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (analyzer.config.embedding_size,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-4
    encoded = json.loads(json.dumps(face.to_dict()))
    assert set(encoded) >= {"box", "score", "landmarks", "emotion", "emotions", "age", "gender", "ethnicity", "embedding"}


def test_composite_gives_two_faces_largest_first(analyzer, two_face_composite, grace_hopper_path):
    grace_width = load_image(grace_hopper_path).shape[1]
    faces = analyzer.analyze(two_face_composite)
    assert len(faces) == 2
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas[0] > areas[1]
    assert _contains(faces[0].box, GRACE_FACE_CENTRE)
    shifted = (ASTRONAUT_FACE_CENTRE[0] + grace_width, ASTRONAUT_FACE_CENTRE[1])
    assert _contains(faces[1].box, shifted)


def test_inputs_path_pil_and_array_agree(analyzer, grace_hopper_path):
    from_path = analyzer.analyze(grace_hopper_path)[0]
    from_pil = analyzer.analyze(Image.open(grace_hopper_path))[0]
    from_array = analyzer.analyze(np.asarray(Image.open(grace_hopper_path).convert("RGB")))[0]
    np.testing.assert_allclose(from_path.box, from_pil.box)
    np.testing.assert_allclose(from_path.box, from_array.box)
    np.testing.assert_allclose(from_path.embedding, from_array.embedding, atol=1e-5)


def test_exif_rotation_gives_the_matching_box(analyzer, grace_hopper_path, tmp_path):
    upright = Image.open(grace_hopper_path).convert("RGB")
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
    stored = upright.transpose(Image.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated_path = tmp_path / "rotated.jpg"
    stored.save(rotated_path, exif=exif, quality=95)
    assert load_image(rotated_path).shape == np.asarray(upright).shape
    upright_box = analyzer.analyze(upright)[0].box
    rotated_box = analyzer.analyze(rotated_path)[0].box
    np.testing.assert_allclose(rotated_box, upright_box, atol=8)


def test_max_faces_and_threshold_are_applied(random_weights, two_face_composite):
    composite = two_face_composite
    capped = FaceAnalyzer(weights=random_weights, device="cpu", max_faces=1)
    assert len(capped.analyze(composite)) == 1
    impossible = FaceAnalyzer(weights=random_weights, device="cpu", threshold=1.0)
    assert impossible.analyze(composite) == []


def test_no_face_gives_an_empty_list(analyzer):
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    assert analyzer.analyze(gradient) == []


def test_predict_crops_batches_in_order(analyzer, astronaut_path, grace_hopper_path):
    faces = [analyzer.analyze(p)[0] for p in (astronaut_path, grace_hopper_path)]
    crops = [
        np.asarray(Image.open(p).convert("RGB").crop(tuple(round(v) for v in f.box)))
        for p, f in zip((astronaut_path, grace_hopper_path), faces)
    ]
    gray = np.asarray(Image.fromarray(crops[0]).convert("L").resize((48, 48)))
    results = analyzer.predict_crops([crops[0], Image.fromarray(crops[1]), gray])
    assert len(results) == 3 and all(r.box is None and r.score is None for r in results)
    # A crop of the detected box gives (almost) the analyzer's own prediction.
    for face, result in zip(faces, results[:2]):
        assert float(face.embedding @ result.embedding) > 0.98
    assert analyzer.predict_crops([]) == []


def _assert_same_faces(got, expected) -> None:
    """The same faces in the same order; numbers to a tolerance (a network batch of other
    faces changes the last digits of float sums)."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.box == pytest.approx(b.box, abs=0.5) and a.score == pytest.approx(b.score, abs=1e-3)
        assert np.asarray(a.landmarks) == pytest.approx(np.asarray(b.landmarks), abs=0.5)
        assert (a.emotion, a.gender, a.ethnicity) == (b.emotion, b.gender, b.ethnicity)
        assert a.age == pytest.approx(b.age, abs=0.2)
        for key in ("emotions", "genders", "ethnicities"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), abs=2e-3)
        assert a.embedding == pytest.approx(b.embedding, abs=2e-3)


def test_analyze_batch_agrees_with_analyze_on_each_image(analyzer, astronaut_path, grace_hopper_path):
    """Photos of three sizes (two of one size, which share a detector call), a four-face group
    and a photo without faces: one list per photo, each as ``analyze`` gives it."""
    astronaut, grace = load_image(astronaut_path), load_image(grace_hopper_path)
    group = load_image(EXAMPLES / "group.jpg")
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])  # same size as the astronaut, face elsewhere
    blank = np.full((240, 320, 3), 200, np.uint8)
    images = [astronaut, group, blank, grace, mirrored]
    batched = analyzer.analyze_batch(images)
    one_by_one = [analyzer.analyze(image) for image in images]
    assert [len(faces) for faces in one_by_one] == [1, 4, 0, 1, 1]
    assert len(batched) == len(images)
    for got, expected in zip(batched, one_by_one):
        _assert_same_faces(got, expected)
    # The mirrored photo's face is found where the mirror puts it, not copied from its size-mate.
    width = astronaut.shape[1]
    assert batched[4][0].box[0] == pytest.approx(width - batched[0][0].box[2], abs=3)
    # Given detections skip the detector and give the same faces; no images, no faces.
    given = analyzer.analyze_batch(images, analyzer.detect_batch(images))
    for got, expected in zip(given, batched):
        _assert_same_faces(got, expected)
    assert analyzer.analyze_batch([]) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"\xff\xd8\xff\xe0 corrupt jpeg bytes", "corrupt"), (b"", "empty"), (b"just some text\n", "not an image")],
)
def test_unreadable_files_raise_a_clear_error(analyzer, tmp_path, content, problem):
    path = tmp_path / "input.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as error:
        analyzer.analyze(path)
    message = str(error.value)
    assert str(path) in message
    assert problem in message


def test_missing_file_is_named(analyzer, tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        analyzer.analyze(tmp_path / "nope.png")


def test_cpu_runner_matches_the_module(analyzer):
    import torch

    x = torch.randn(5, 3, analyzer.config.input_size, analyzer.config.input_size)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager, fast = analyzer.model(x), analyzer._runner(x)
    for key in eager:
        torch.testing.assert_close(fast[key], eager[key], atol=1e-4, rtol=1e-4)


def test_test_time_flip_averages_a_face_and_its_mirror_image(random_weights, grace_hopper_path):
    with_flip = FaceAnalyzer(weights=random_weights, device="cpu")
    without = FaceAnalyzer(weights=random_weights, device="cpu", test_time_flip=False)
    assert with_flip.config.test_time_flip and with_flip.test_time_flip and not without.test_time_flip
    box = tuple(round(v) for v in with_flip.analyze(grace_hopper_path)[0].box)
    size = with_flip.config.input_size
    crop = np.asarray(Image.open(grace_hopper_path).convert("RGB").crop(box).resize((size, size)))
    mirror = np.ascontiguousarray(crop[:, ::-1])

    plain, plain_mirror = without.predict_crops([crop, mirror])
    flipped, flipped_mirror = with_flip.predict_crops([crop, mirror])
    plain_emotions = np.array(list(plain.emotions.values()))
    plain_mirror_emotions = np.array(list(plain_mirror.emotions.values()))
    # One view alone depends on which way the face looks; the two views together do not.
    assert np.abs(plain_emotions - plain_mirror_emotions).max() > 1e-3
    np.testing.assert_allclose(list(flipped.emotions.values()), list(flipped_mirror.emotions.values()), atol=1e-5)
    np.testing.assert_allclose(list(flipped.emotions.values()), (plain_emotions + plain_mirror_emotions) / 2, atol=1e-5)
    assert flipped.age == pytest.approx((plain.age + plain_mirror.age) / 2, abs=1e-3)
    assert flipped.age == pytest.approx(flipped_mirror.age, abs=1e-3)
    assert float(flipped.embedding @ flipped_mirror.embedding) > 0.9999


def test_bf16_inference_stays_close_to_float32(random_weights, grace_hopper_path):
    from face_mtl.model import cpu_has_native_bf16, effective_precision

    fp32 = FaceAnalyzer(weights=random_weights, device="cpu", inference_precision="fp32")
    bf16 = FaceAnalyzer(weights=random_weights, device="cpu", inference_precision="bf16")
    assert bf16.config.inference_precision == "bf16" and fp32.config.inference_precision == "fp32"
    a, b = fp32.analyze(grace_hopper_path)[0], bf16.analyze(grace_hopper_path)[0]
    assert a.box == b.box  # the detector is the same; only the network's precision differs
    np.testing.assert_allclose(list(b.emotions.values()), list(a.emotions.values()), atol=0.05)
    assert sum(b.emotions.values()) == pytest.approx(1.0, abs=1e-5)
    assert b.embedding.dtype == np.float32 and float(a.embedding @ b.embedding) > 0.98
    if not cpu_has_native_bf16():  # bf16 is then ignored: the same float32 network runs
        np.testing.assert_allclose(list(b.emotions.values()), list(a.emotions.values()), atol=1e-6)
    assert effective_precision(fp32.config, "cpu") == "fp32"
    assert effective_precision(bf16.config, "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="inference_precision"):
        FaceAnalyzer(weights=random_weights, device="cpu", inference_precision="int8")


def test_bf16_full_batches_run_a_fused_graph_that_agrees_with_autocast():
    import torch

    from face_mtl.config import ModelConfig
    from face_mtl.model import (
        FaceMTLNet,
        _BF16Autocast,
        _FusedFullBatches,
        cpu_has_native_bf16,
        inference_runner,
    )

    if not cpu_has_native_bf16():
        pytest.skip("bf16 inference runs only on CPUs with native bfloat16")
    torch.manual_seed(0)
    config = ModelConfig(backbone="resnet18", input_size=64, inference_precision="bf16")
    model = FaceMTLNet(config).eval().to(memory_format=torch.channels_last)
    fusion_before = torch.jit.onednn_fusion_enabled()
    runner = inference_runner(model, config, "cpu", full_batch=6)
    assert torch.jit.onednn_fusion_enabled() == fusion_before  # the process-wide flag is left alone
    assert isinstance(runner, _FusedFullBatches) and runner.batch == 6
    x = torch.randn(6, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _BF16Autocast(model)(x)
        for n in (6, 6, 4):  # the fused graph (twice: compiled once), then the plain one
            got = runner(x[:n])
            for name, value in expected.items():
                assert got[name].dtype == torch.float32
                np.testing.assert_allclose(got[name].numpy(), value[:n].numpy(), atol=0.1)
            assert (got["emotion"].argmax(1) == expected["emotion"][:n].argmax(1)).float().mean() >= 0.8


def test_onnx_and_torch_runtimes_give_the_same_faces(grace_hopper_path):
    import torch

    from face_mtl.onnx_runner import OnnxRunner

    onnx = FaceAnalyzer(device="cpu", runtime="onnx")  # float32, although the weights prefer bf16
    traced = FaceAnalyzer(device="cpu", runtime="torch", inference_precision="fp32")
    assert onnx.config.inference_precision == "fp32"
    assert isinstance(onnx._runner, OnnxRunner) and not isinstance(traced._runner, OnnxRunner)
    a, b = onnx.analyze(grace_hopper_path)[0], traced.analyze(grace_hopper_path)[0]
    np.testing.assert_allclose(list(a.emotions.values()), list(b.emotions.values()), atol=1e-4)
    np.testing.assert_allclose(list(a.ethnicities.values()), list(b.ethnicities.values()), atol=1e-4)
    assert a.age == pytest.approx(b.age, abs=1e-3) and float(a.embedding @ b.embedding) > 0.99999
    # Any batch size, and the thread count torch is set to at call time.
    crops = [np.asarray(load_image(grace_hopper_path))[40 + 9 * i : 300, 60:320] for i in range(5)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = onnx.predict_crops(crops)
    finally:
        torch.set_num_threads(before)
    for x, y in zip(one_thread, traced.predict_crops(crops)):
        np.testing.assert_allclose(list(x.emotions.values()), list(y.emotions.values()), atol=1e-4)
    with pytest.raises(ValueError, match="runtime"):
        FaceAnalyzer(device="cpu", runtime="tensorrt")


def test_auto_runtime_falls_back_to_torch_without_onnxruntime(random_weights, monkeypatch):
    import sys

    from face_mtl.model import RuntimeUnavailableError, inference_runner
    from face_mtl.onnx_runner import OnnxRunner
    from face_mtl.weights import load_model

    model, config = load_model(random_weights, device="cpu")
    assert isinstance(inference_runner(model, config, "cpu"), OnnxRunner)
    with pytest.raises(RuntimeUnavailableError, match="CPU only"):
        inference_runner(model, config, "cuda", runtime="onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert not isinstance(inference_runner(model, config, "cpu"), OnnxRunner)
    with pytest.raises(RuntimeUnavailableError, match="pip install onnxruntime"):
        inference_runner(model, config, "cpu", runtime="onnx")
