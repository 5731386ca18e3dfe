"""face_mtl.mtcnn, the batched MTCNN, against facenet-pytorch's own ``MTCNN.detect`` on real
photos, and its parts (area crops, NMS) against the operations they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from face_mtl.images import load_image
from face_mtl.mtcnn import MTCNNNets, area_crops, detect_faces, nms_min, pyramid_scales, summed_area_table
from tests.conftest import EXAMPLES, compose_side_by_side


@pytest.fixture(scope="module", params=["modules", "traced"])
def nets(request) -> MTCNNNets:
    # Both forms: the modules, and the traced copies that MTCNNDetector runs on the CPU.
    return MTCNNNets() if request.param == "modules" else MTCNNNets().trace_for_cpu()


@pytest.fixture(scope="module")
def reference():
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, min_face_size=20)


def _reference_faces(reference, batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    boxes, scores, points = reference.detect(batch, landmarks=True)
    out = []
    for b, s, p in zip(boxes, scores, points):
        if b is None:
            out.append((np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))))
        else:
            out.append((np.asarray(b, np.float32), np.asarray(s, np.float32), np.asarray(p, np.float32)))
    return out


def _largest_first(found):
    order = np.argsort(-(found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1]), kind="stable")
    return found.boxes[order], found.scores[order], found.landmarks[order]


def _photo_batches() -> list[np.ndarray]:
    """Real photos, each as a batch of same-size images: single photos, a group, a blank
    image, a photo beside its mirror image and shrunken copies (many faces, small faces)."""
    astronaut = load_image(EXAMPLES / "astronaut.png")
    grace = load_image(EXAMPLES / "grace_hopper.jpg")
    group = load_image(EXAMPLES / "group.jpg")
    mixed = compose_side_by_side(grace, astronaut, 0.5)
    small = np.asarray(Image.fromarray(group).resize((group.shape[1] // 3, group.shape[0] // 3)))
    blank = np.full_like(astronaut, 200)
    return [
        astronaut[None],
        np.stack([astronaut, astronaut[:, ::-1], blank]),
        grace[None],
        group[None],
        mixed[None],
        small[None],
    ]


@pytest.mark.parametrize("index", range(6))
def test_same_faces_as_facenet_pytorch(nets, reference, index):
    batch = _photo_batches()[index]
    expected = _reference_faces(reference, batch)
    got = detect_faces(batch, nets, 20)
    assert len(got) == len(batch)
    for (boxes, scores, points), found in zip(expected, got):
        assert len(found.boxes) == len(boxes)
        mine_boxes, mine_scores, mine_points = _largest_first(found)
        np.testing.assert_allclose(mine_boxes, boxes, atol=0.05)
        np.testing.assert_allclose(mine_scores, scores, atol=1e-4)
        np.testing.assert_allclose(mine_points, points, atol=0.05)
    assert sum(len(found.boxes) for found in got) >= 1 or index == 5


def test_a_blank_image_and_a_tiny_one_have_no_faces(nets):
    assert len(detect_faces(np.full((2, 120, 160, 3), 90, np.uint8), nets, 20)[1].boxes) == 0
    # Shorter than P-Net's window at the smallest face size: no pyramid at all.
    found = detect_faces(np.zeros((1, 10, 400, 3), np.uint8), nets, 20)
    assert found[0].boxes.shape == (0, 4) and found[0].landmarks.shape == (0, 5, 2)


@pytest.mark.parametrize("scale", [1, 9])  # 57 x 83 and 513 x 747: float32 and int32 tables
def test_area_crops_equal_interpolate_area_on_each_window(scale):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (2, 57 * scale, 83 * scale, 3), dtype=np.uint8))
    table = summed_area_table(images)
    images = images.permute(0, 3, 1, 2)
    windows = [(0, 0, 57, 83), (3, 5, 4, 9), (10, 2, 55, 30), (20, 40, 21, 41), (0, 60, 57, 83)]
    windows = [tuple(v * scale for v in window) for window in windows]
    index = torch.tensor([0, 1, 1, 0, 1])
    top, left, bottom, right = (torch.tensor(v) for v in zip(*windows))
    for size in (24, 48):
        crops = area_crops(table, index, top, bottom, left, right, size)
        for k, (t, left_, b, r) in enumerate(windows):
            region = images[index[k] : index[k] + 1, :, t:b, left_:r].to(torch.float32)
            expected = F.interpolate(region, size=(size, size), mode="area")[0]
            torch.testing.assert_close(crops[k], expected, atol=1e-3, rtol=0)


def test_nms_min_keeps_the_best_box_per_overlap_group_within_each_image():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 9, 9], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], np.float32)
    image = np.array([0, 0, 0, 1])
    # Box 1 lies inside box 0: overlap over the smaller box is 1, so only the better one stays.
    assert nms_min(boxes, scores, image, 0.7).tolist() == [1, 2, 3]


def test_pyramid_starts_at_the_smallest_face_and_stops_at_the_window():
    scales = pyramid_scales(200, 300, 20)
    assert scales[0] == pytest.approx(0.6)
    assert min(200, 300) * scales[-1] >= 12 > min(200, 300) * scales[-1] * 0.709
    assert pyramid_scales(10, 400, 20) == []
