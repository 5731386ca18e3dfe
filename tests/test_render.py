"""Drawing, tables, charts and exports, on synthetic faces (no model, no detector)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from face_mtl.config import EMOTIONS, ETHNICITIES, GENDERS
from face_mtl.render.draw import (
    EMOTION_COLORS,
    MIN_FONT,
    default_label,
    draw_faces,
    emotion_color,
    font_size_for,
    layout_label,
    place_label,
    text_color,
)
from face_mtl.render.photo import (
    DISPLAY_MAX_SIDE,
    TABLE_COLUMNS,
    PhotoResult,
    annotate_photo,
    emotion_chart,
    render_photo,
    results_csv,
    results_dict,
    results_table,
)
from face_mtl.types import Face


def make_face(box=(20.0, 30.0, 80.0, 100.0), emotion="happiness", age=34.4) -> Face:
    emotions = {e: (0.65 if e == emotion else 0.05) for e in EMOTIONS}
    return Face(
        box=box,
        score=0.998,
        landmarks=None
        if box is None
        else ((30.0, 50.0), (60.0, 50.0), (45.0, 65.0), (35.0, 80.0), (55.0, 80.0)),
        emotion=emotion,
        emotions=emotions,
        age=age,
        gender="female",
        genders={"female": 0.8, "male": 0.2},
        ethnicity="white",
        ethnicities={e: (0.6 if e == "white" else 0.1) for e in ETHNICITIES},
        embedding=np.full(8, 1 / np.sqrt(8), np.float32),
    )


def gray(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


def inside(rect, width, height) -> bool:
    x1, y1, x2, y2 = rect
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


# --- colours and labels ---------------------------------------------------------------------


def test_every_emotion_has_a_distinct_rgb_colour():
    assert set(EMOTION_COLORS) == set(EMOTIONS)
    assert len(set(EMOTION_COLORS.values())) == len(EMOTIONS)
    for color in EMOTION_COLORS.values():
        assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
    assert emotion_color("not-an-emotion") not in EMOTION_COLORS.values()


def test_text_colour_contrasts_with_background():
    assert text_color(EMOTION_COLORS["happiness"]) == (0, 0, 0)  # yellow
    assert text_color(EMOTION_COLORS["sadness"]) == (255, 255, 255)  # blue


def test_default_label_names_number_and_every_attribute():
    assert default_label(1, make_face()) == "1 happiness 34 female white"


def test_font_grows_with_the_image():
    sizes = [font_size_for(w, h) for w, h in [(64, 64), (512, 512), (1920, 1080), (6000, 4000)]]
    assert sizes == sorted(sizes) and sizes[0] >= MIN_FONT and sizes[-1] > 3 * sizes[1]


# --- label layout: always inside the image ----------------------------------------------------


@pytest.mark.parametrize("width", [40, 90, 200, 640, 4000])
def test_label_layout_fits_the_width(width):
    layout = layout_label("12 happiness 34 female white", font_size_for(width, width), width)
    assert layout.width <= width and layout.size >= MIN_FONT
    assert " ".join(layout.lines).split() == "12 happiness 34 female white".split()  # nothing lost


def test_long_label_on_a_narrow_image_wraps():
    assert len(layout_label("1 happiness 34 female white", 20, 90).lines) > 1


@pytest.mark.parametrize(
    "box",
    [(0, 0, 30, 30), (170, 170, 200, 200), (0, 170, 30, 200), (170, 0, 200, 30), (-20, -20, 250, 250)],
)
def test_labels_stay_inside_the_image_at_every_edge(box):
    rect = place_label(box, (150, 24), (200, 200))
    assert inside(rect, 200, 200)


def test_label_wider_or_taller_than_the_image_is_clamped():
    assert inside(place_label((5, 5, 20, 20), (500, 300), (100, 80)), 100, 80)


def test_label_goes_above_the_box_when_there_is_room_else_below_or_inside():
    assert place_label((50, 100, 90, 140), (60, 20), (300, 300)) == (50, 80, 110, 100)
    assert place_label((50, 5, 90, 40), (60, 20), (300, 300)) == (50, 40, 110, 60)


def test_second_label_avoids_the_first():
    first = place_label((50, 100, 90, 140), (120, 20), (300, 300))
    second = place_label((60, 100, 100, 140), (120, 20), (300, 300), taken=[first])
    assert second != first and inside(second, 300, 300)


# --- draw_faces -------------------------------------------------------------------------------


def test_draw_faces_returns_an_annotated_copy():
    image = gray(120, 160)
    before = image.copy()
    out = draw_faces(image, [make_face()])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, before), "input must not change"
    assert not np.array_equal(out, image)
    # The box outline is drawn in the face's emotion colour.
    assert tuple(out[60, 20]) == EMOTION_COLORS["happiness"]


def test_draw_faces_with_custom_labels_and_no_faces():
    image = gray(100, 100)
    assert np.array_equal(draw_faces(image, []), image)
    out = draw_faces(image, [make_face(emotion="sadness")], labels=["P7"])
    assert (out == np.array(EMOTION_COLORS["sadness"], np.uint8)).all(axis=2).any()
    with pytest.raises(ValueError, match="labels"):
        draw_faces(image, [make_face()], labels=["a", "b"])


def test_faces_without_a_box_are_skipped():
    image = gray(50, 50)
    assert np.array_equal(draw_faces(image, [make_face(box=None)]), image)


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3))]
)
def test_draw_faces_rejects_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        draw_faces(bad, [])


@pytest.mark.parametrize("size", [(48, 64), (3000, 4000)])
def test_draw_faces_on_tiny_and_huge_images(size):
    height, width = size
    face = make_face(box=(width * 0.7, height * 0.05, width * 0.99, height * 0.4))
    out = draw_faces(gray(height, width), [face])
    assert out.shape == (height, width, 3)


# --- table, chart, exports --------------------------------------------------------------------


def faces3() -> list[Face]:
    return [
        make_face(),
        make_face((100, 20, 150, 80), "anger", 61.0),
        make_face((200, 40, 230, 75), "neutral"),
    ]


def test_results_table_has_one_numbered_row_per_face():
    table = results_table(faces3())
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["face"].tolist() == [1, 2, 3]
    assert table.loc[1, "emotion"] == "anger" and table.loc[1, "emotion prob"] == 0.65
    assert table.loc[0, "box (x1, y1, x2, y2)"] == "20, 30, 80, 100"
    assert results_table([]).empty and list(results_table([]).columns) == list(TABLE_COLUMNS)


def test_emotion_chart_has_a_bar_per_emotion_and_face():
    chart = emotion_chart(faces3())
    assert [trace.name for trace in chart.data] == list(EMOTIONS)
    assert all(list(trace.x) == ["Face 1", "Face 2", "Face 3"] for trace in chart.data)
    happiness = chart.data[EMOTIONS.index("happiness")]
    assert happiness.y[0] == pytest.approx(0.65) and happiness.marker.color == "rgb(250,204,21)"


def test_results_dict_is_json_ready_and_csv_has_one_row_per_face():
    results = results_dict(faces3(), 320, 240)
    decoded = json.loads(json.dumps(results))
    assert decoded["count"] == 3 and decoded["image"] == {"width": 320, "height": 240}
    assert [f["face"] for f in decoded["faces"]] == [1, 2, 3]
    assert decoded["faces"][0]["box"] == [20.0, 30.0, 80.0, 100.0]
    table = pd.read_csv(io.StringIO(results_csv(decoded)))
    assert len(table) == 3 and table["emotion"].tolist() == ["happiness", "anger", "neutral"]
    expected = {f"emotion_{e}" for e in EMOTIONS} | {f"gender_{g}" for g in GENDERS} | {"x1", "y2", "age"}
    assert expected <= set(table.columns)
    assert "embedding" not in table.columns


def test_large_photos_are_drawn_downscaled_but_reported_in_original_pixels():
    faces = [make_face((1000.0, 800.0, 1600.0, 1500.0))]
    image = gray(3000, 4096)
    annotated = annotate_photo(image, faces)
    assert max(annotated.shape[:2]) == DISPLAY_MAX_SIDE and annotated.shape[:2] == (1500, 2048)
    result = render_photo(image, faces)
    assert isinstance(result, PhotoResult) and result.face_count == 1
    assert result.results["faces"][0]["box"] == [1000.0, 800.0, 1600.0, 1500.0]
    assert result.results["image"] == {"width": 4096, "height": 3000}
    assert result.table.loc[0, "box (x1, y1, x2, y2)"] == "1000, 800, 1600, 1500"
