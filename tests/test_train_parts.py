"""Pieces of the training loop: the batch prefetcher, precision, zoom augmentation, teacher cache,
the training log."""

from __future__ import annotations

import copy
import json
import threading
import time

import numpy as np
import pytest
import torch

from face_mtl.data.sets import CropSet, _empty_labels, attach_teacher
from face_mtl.data.views import TIGHT_EXTENT
from face_mtl.model import cpu_has_native_bf16
from face_mtl.train.augment import AugmentSettings, erase_rectangles, random_theta
from face_mtl.train.loop import autocast_for, prefetched
from face_mtl.train.runlog import FIGURES, append_line, epoch_records, flatness, lineage, read_records
from face_mtl.train.settings import TrainSettings


def test_prefetched_yields_every_item_in_order_computed_ahead_in_one_worker():
    threads, started = set(), []

    def make(i: int) -> int:
        threads.add(threading.get_ident())
        started.append(i)
        time.sleep(0.01)
        return i * i

    consumed = []
    for value in prefetched(make, 7, depth=2):
        consumed.append(value)
        if len(consumed) == 1:
            time.sleep(0.05)
            assert started[:3] == [0, 1, 2]  # the next ones were made while this one was used
    assert consumed == [i * i for i in range(7)]
    assert started == list(range(7)) and len(threads) == 1 and threading.get_ident() not in threads


def test_prefetched_stops_cleanly_when_the_consumer_stops_early():
    made = []
    batches = prefetched(lambda i: made.append(i) or i, 100, depth=2)
    assert [next(batches), next(batches)] == [0, 1]
    batches.close()
    assert len(made) <= 4  # at most depth items beyond what was taken


def test_precision_names():
    assert autocast_for("cpu", "bf16").fast_dtype == torch.bfloat16
    with autocast_for("cpu", "bf16"):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16
    # auto: bf16 only where the CPU computes it natively (emulated bf16 trains several times slower).
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    with autocast_for("cpu", "auto"):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == expected
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(precision="fp8")
    with pytest.raises(ValueError, match="embedding_head"):
        TrainSettings(embedding_head="random")


def test_zoom_in_applies_only_to_zoomable_samples():
    settings = AugmentSettings(scale=0.0, rotate_degrees=0.0, flip=False, zoom_in=0.3)
    zoomable = torch.tensor([True] * 200 + [False] * 200)
    theta = random_theta(400, settings, torch.Generator().manual_seed(0), zoomable)
    scales = theta[:, 0, 0]
    assert torch.allclose(scales[200:], torch.full((200,), TIGHT_EXTENT))
    assert float(scales[:200].max()) <= TIGHT_EXTENT + 1e-6
    assert float(scales[:200].min()) < TIGHT_EXTENT * 0.75  # some windows shrink by most of 30 %
    assert float(scales[:200].min()) >= TIGHT_EXTENT * 0.7 - 1e-6


def test_random_erasing_hides_one_rectangle_in_the_chosen_share_of_views():
    images = torch.ones(400, 3, 32, 32)
    generator = torch.Generator().manual_seed(0)
    erased = erase_rectangles(images, AugmentSettings(erase_p=0.5), generator)
    hidden = erased[:, 0] == 0
    assert torch.equal(hidden, (erased == 0).all(dim=1))  # every channel of the same pixels
    touched = hidden.flatten(1).any(dim=1)
    assert 0.4 < float(touched.float().mean()) < 0.6
    assert torch.equal(erased[~touched], images[~touched])
    for mask in hidden[touched]:
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert int(mask.sum()) == height * width  # one solid rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        assert 0.01 <= height * width / 32**2 <= 0.25  # 2-20 % of the view, give or take rounding
        assert 1 / 3.5 <= height / width <= 3.5

    state = generator.get_state()
    assert erase_rectangles(images, AugmentSettings(), generator) is images
    assert torch.equal(generator.get_state(), state)  # off: no draws, so older runs keep their streams
    with pytest.raises(ValueError, match="erase_p"):
        TrainSettings(erase_p=1.5)


def _crop_set(n: int) -> CropSet:
    return CropSet(crops=np.zeros((n, 4, 4, 3), np.uint8), **_empty_labels(n))


def test_attach_teacher_fills_the_sets_that_have_a_cache(tmp_path):
    splits = {"celeba_train": _crop_set(3), "utk_train": _crop_set(2)}
    descriptors = np.arange(3 * 128, dtype=np.float32).reshape(3, 128)
    (tmp_path / "teacher").mkdir()
    np.savez(tmp_path / "teacher" / "celeba_train.npz", teacher=descriptors, names=np.array(["a", "b", "c"]))
    assert attach_teacher(splits, tmp_path) == ["celeba_train"]
    np.testing.assert_array_equal(splits["celeba_train"].teacher, descriptors)
    assert not splits["utk_train"].teacher.any()

    np.savez(tmp_path / "teacher" / "utk_train.npz", teacher=descriptors, names=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="3 descriptors for 2 faces"):
        attach_teacher(splits, tmp_path)


def test_centred_teacher_targets_subtract_the_training_mean_and_keep_missing_rows_empty(tmp_path):
    rng = np.random.default_rng(0)
    shared = rng.normal(size=128).astype(np.float32) * 3  # the direction all descriptors share
    train = shared + rng.normal(size=(5, 128)).astype(np.float32)
    train[2] = 0  # a face the teacher did not describe
    val = shared + rng.normal(size=(4, 128)).astype(np.float32)
    (tmp_path / "teacher").mkdir()
    np.savez(tmp_path / "teacher" / "celeba_train.npz", teacher=train)
    np.savez(tmp_path / "teacher" / "celeba_val.npz", teacher=val)
    splits = {"celeba_train": _crop_set(5), "celeba_val": _crop_set(4)}
    assert attach_teacher(splits, tmp_path, "centred") == ["celeba_train", "celeba_val"]

    mean = train[[0, 1, 3, 4]].mean(axis=0)  # the training faces with descriptors only
    expected = (val - mean) / np.linalg.norm(val - mean, axis=1, keepdims=True)
    np.testing.assert_allclose(splits["celeba_val"].teacher, expected, rtol=1e-5, atol=1e-6)
    centred_train = splits["celeba_train"].teacher
    assert not centred_train[2].any()
    np.testing.assert_array_equal(splits["celeba_train"].described(), [0, 1, 3, 4])
    np.testing.assert_allclose(np.linalg.norm(centred_train[[0, 1, 3, 4]], axis=1), 1.0, rtol=1e-5)
    # The shared direction is gone: different faces' targets are no longer nearly parallel.
    raw = train[[0, 1]] / np.linalg.norm(train[[0, 1]], axis=1, keepdims=True)
    assert float(raw[0] @ raw[1]) > 0.8
    assert abs(float(centred_train[0] @ centred_train[1])) < 0.5

    with pytest.raises(ValueError, match="teacher target must be one of raw, centred"):
        attach_teacher(splits, tmp_path, "whitened")


def test_centred_targets_centre_on_every_training_split_and_wait_for_one(tmp_path):
    rng = np.random.default_rng(1)
    celeba = rng.normal(size=(3, 128)).astype(np.float32) + 2
    utk = rng.normal(size=(5, 128)).astype(np.float32) - 1
    val = rng.normal(size=(2, 128)).astype(np.float32)
    (tmp_path / "teacher").mkdir()
    np.savez(tmp_path / "teacher" / "celeba_val.npz", teacher=val)
    splits = {"celeba_train": _crop_set(3), "utk_train": _crop_set(5), "celeba_val": _crop_set(2)}
    # Only held-out faces described so far (a cache being built): raw descriptors would be the
    # wrong targets, so none is attached until a training split has some.
    assert attach_teacher(splits, tmp_path, "centred") == []
    assert not splits["celeba_val"].teacher.any()

    np.savez(tmp_path / "teacher" / "celeba_train.npz", teacher=celeba)
    np.savez(tmp_path / "teacher" / "utk_train.npz", teacher=utk)
    assert attach_teacher(splits, tmp_path, "centred") == ["celeba_train", "utk_train", "celeba_val"]
    mean = np.concatenate([celeba, utk]).mean(axis=0)  # over all 8 training faces, not per split
    expected = (val - mean) / np.linalg.norm(val - mean, axis=1, keepdims=True)
    np.testing.assert_allclose(splits["celeba_val"].teacher, expected, rtol=1e-5, atol=1e-6)


def test_crop_sets_cached_before_the_teacher_field_load_without_descriptors(tmp_path):
    old = _crop_set(2)
    np.savez(tmp_path / "old.npz", **{f: getattr(old, f) for f in CropSet.__dataclass_fields__ if f != "teacher"})
    loaded = CropSet.load(tmp_path / "old.npz")
    assert loaded.teacher.shape == (2, 128) and not loaded.teacher.any()


def test_averaged_weights_are_the_weighted_mean_and_record_what_was_averaged(random_weights, tmp_path):
    from safetensors.torch import load_file, save_file

    from face_mtl.config import ModelConfig
    from face_mtl.train.average import average_weights
    from face_mtl.weights import load_model

    first = load_file(str(random_weights / "model.safetensors"))
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in first.items()}
    save_file(second, str(second_dir / "model.safetensors"))
    (second_dir / "config.json").write_text((random_weights / "config.json").read_text())

    out = average_weights([random_weights, second_dir], tmp_path / "soup", [3.0, 1.0])
    soup = load_file(str(out / "model.safetensors"))
    key = next(k for k, v in first.items() if v.is_floating_point() and v.ndim == 4)
    torch.testing.assert_close(soup[key].float(), first[key].float() + 0.25, atol=2e-3, rtol=0)  # float16 storage
    integer = next(k for k, v in first.items() if not v.is_floating_point())
    assert torch.equal(soup[integer], second[integer])
    record = ModelConfig.from_json(out / "config.json").training["weight_average"]
    assert record["of"] == [str(random_weights), str(second_dir)] and record["weights"] == [3.0, 1.0]
    load_model(out)  # a loadable weights folder


def test_weights_of_different_networks_are_not_averaged(random_weights, tmp_path):
    from safetensors.torch import load_file

    from face_mtl.train.average import average_state

    state = load_file(str(random_weights / "model.safetensors"))
    with pytest.raises(ValueError, match="differ"):
        average_state([state, {k: v for k, v in list(state.items())[1:]}], [1.0, 1.0])
    with pytest.raises(ValueError, match="3 averaging weights"):
        average_state([state, state], [1.0, 1.0, 1.0])


def _log_epochs(run_dir, epochs: list[tuple[float, float, float]]) -> None:
    """A train.log as the loop writes it: text lines around JSON epoch records of
    (minutes, FER+ accuracy, age MAE), the last one without validation."""
    run_dir.mkdir()
    append_line(run_dir, "identity teacher descriptors: celeba_train")
    for epoch, (minutes, fer, age) in enumerate(epochs, 1):
        append_line(run_dir, json.dumps({"epoch": epoch, "lr": 1e-3 / epoch, "elapsed_min": minutes,
                                         "val": {"ferplus_accuracy": fer, "age_mae": age}}))
    append_line(run_dir, json.dumps({"epoch": len(epochs) + 1, "lr": 1e-4, "elapsed_min": 999}))
    append_line(run_dir, json.dumps({"final": {"ferplus_accuracy": 0.0}}))


def test_lineage_lays_runs_end_to_end_and_flatness_fits_each_figure_over_the_last_hours(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    _log_epochs(first, [(60, 0.70, 6.0), (120, 0.72, 5.8), (180, 0.90, 9.9)])
    _log_epochs(second, [(60, 0.74, 5.6), (120, 0.76, 5.4), (180, 0.78, 5.2)])
    assert "identity teacher descriptors: celeba_train" in capsys.readouterr().out  # printed too
    assert [r["epoch"] for r in epoch_records(read_records(first / "train.log"))] == [1, 2, 3]  # no val, no final

    # first:2 drops the epoch the second run did not continue from, and its hour.
    rows = lineage([f"{first}:2", str(second)], start_hours=10.0)
    assert [(r["run"], r["epoch"], r["hours"]) for r in rows] == [
        (str(first), 1, 11.0), (str(first), 2, 12.0), (str(second), 1, 13.0), (str(second), 2, 14.0),
        (str(second), 3, 15.0)]
    assert rows[0]["ferplus_tight_accuracy"] is None  # not logged: left empty, not zero

    last = flatness(rows, window_hours=3.0)  # hours 12..15: FER+ +0.02/hour, age -0.2/hour
    assert last["FER+"]["first"] == 0.72 and last["FER+"]["last"] == 0.78
    assert last["FER+"]["slope_per_hour"] == pytest.approx(0.02)
    assert last["age MAE"]["slope_per_hour"] == pytest.approx(-0.2)
    assert "FER+ tight" not in last
    assert last["FER+"]["slope_se"] == pytest.approx(0.0, abs=1e-9)  # exactly on a line
    # Off a line: slope 0.6, residuals -0.1, 0.3, -0.3, 0.1, so SE = sqrt(0.2 / 2 / 5).
    wobbly = [{"hours": float(h), **dict.fromkeys(FIGURES), "ferplus_accuracy": v} for h, v in enumerate([0, 1, 1, 2])]
    assert flatness(wobbly, window_hours=3.0)["FER+"]["slope_se"] == pytest.approx(0.02**0.5)
    assert np.isnan(flatness(wobbly[:2], window_hours=3.0)["FER+"]["slope_se"])  # two epochs: no error
    with pytest.raises(FileNotFoundError, match="no such training log"):
        lineage([str(tmp_path / "missing")])

    # Exported weights stand for their run: config.json's training.history, once the run folder is gone.
    exported = tmp_path / "exported"
    exported.mkdir()
    history = epoch_records(read_records(second / "train.log"))
    (exported / "config.json").write_text(json.dumps({"training": {"history": history + [{"epoch": 4}]}}))
    (second / "train.log").unlink()
    assert [(r["epoch"], r["hours"], r["ferplus_accuracy"]) for r in lineage([str(exported)], start_hours=1.0)] == [
        (1, 2.0, 0.74), (2, 3.0, 0.76), (3, 4.0, 0.78)]
    (exported / "config.json").write_text(json.dumps({"training": {}}))  # weights trained elsewhere
    with pytest.raises(FileNotFoundError, match="nor a config.json with a training history"):
        lineage([str(exported)])


def test_flatness_sets_each_figures_change_against_its_sampling_noise(tmp_path):
    from face_mtl.train.runlog import sampling_noise, validation_counts

    # Hours 0..3: FER+ rises 0.004/hour (0.012 in all), age MAE rises 0.05/hour (worse),
    # verification wobbles about a flat line.
    rows = [{"hours": float(h), **dict.fromkeys(FIGURES), "ferplus_accuracy": 0.82 + 0.004 * h,
             "age_mae": 5.0 + 0.05 * h, "verification_accuracy": 0.845 + (0.002 if h % 2 else -0.002)}
            for h in range(4)]
    assert "verdict" not in flatness(rows, 3.0)["FER+"]  # no counts: no verdict
    few = flatness(rows, 3.0, {"ferplus_accuracy": 3400, "age_mae": 2000, "verification_accuracy": 6000})
    assert few["FER+"]["change"] == pytest.approx(0.012)
    assert few["FER+"]["noise"] == pytest.approx((0.826 * 0.174 / 3400) ** 0.5)
    assert few["FER+"]["verdict"] == "improving"  # 0.012 against 0.0065
    assert few["age MAE"]["noise"] == pytest.approx(5.075 / 2000**0.5)
    assert few["age MAE"]["verdict"] == "worsening"  # +0.15 years against 0.113: up is worse
    assert few["verification"]["verdict"] == "flat"
    # The same rise measured on 100 faces is within their noise.
    assert flatness(rows, 3.0, {"ferplus_accuracy": 100})["FER+"]["verdict"] == "flat"
    assert sampling_noise("gender_accuracy", 0.94, 2074) == pytest.approx(0.00521, abs=1e-5)

    # The counts come from exported weights' validation report; a run folder has none.
    (tmp_path / "config.json").write_text(json.dumps({"metrics": {"validation": {
        "ferplus": {"accuracy": 0.8, "count": 3427}, "utkface": {"age_mae": 5.0, "count": 2074},
        "identity": {"accuracy": 0.84, "pairs": 6000},
        "celeba_wild": {"count": 816, "identity": {"accuracy": 0.8, "pairs": 1200}}}}}))
    assert validation_counts(tmp_path) == {"ferplus_accuracy": 3427, "age_mae": 2074, "gender_accuracy": 2074,
                                           "ethnicity_accuracy": 2074, "verification_accuracy": 6000,
                                           "ferplus_balanced_accuracy": 3427, "wild_verification_accuracy": 1200,
                                           "wild_gender_accuracy": 816, "wild_smiling_auc": 816}
    assert validation_counts(tmp_path / "missing") == {}


def test_stochastic_depth_fills_timms_slots_like_drop_path_rate_and_leaves_the_weights_alone():
    import timm

    from face_mtl.train.stochastic_depth import residual_blocks, set_drop_path

    torch.manual_seed(0)
    plain = timm.create_model("resnet18", num_classes=0)
    for module in plain.modules():  # timm zeroes each block's last BatchNorm: branches would add 0
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    built = timm.create_model("resnet18", num_classes=0, drop_path_rate=0.1)  # timm's own construction
    backbone = copy.deepcopy(plain)
    rates = set_drop_path(backbone, 0.1)
    assert len(rates) == 8 and rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)  # 2 blocks x 4 stages
    assert rates == pytest.approx([getattr(b.drop_path, "drop_prob", 0.0) for b in residual_blocks(built)])
    assert backbone.state_dict().keys() == plain.state_dict().keys()  # loads and exports as before

    x = torch.randn(6, 3, 64, 64)
    backbone.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), plain(x))  # inference: the same network
        backbone.train()
        plain.train()
        reference = plain(x)
        dropped = [backbone(x) for _ in range(2)]
        assert not torch.allclose(dropped[0], dropped[1])  # training: random branches skipped
        assert not torch.allclose(dropped[0], reference)
        set_drop_path(backbone, 0.0)  # off again
        torch.testing.assert_close(backbone(x), reference)

    with pytest.raises(ValueError, match="drop path rate"):
        set_drop_path(backbone, 1.0)
    with pytest.raises(ValueError, match="no residual blocks"):
        set_drop_path(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), 0.1)
    with pytest.raises(ValueError, match="drop_path"):
        TrainSettings(drop_path=1.0)


def test_reference_targets_are_the_flip_averaged_probabilities_cached_once_per_reference(random_weights, tmp_path,
                                                                                        monkeypatch):
    import face_mtl.train.reference as reference
    from face_mtl.evaluate import cached_inputs
    from face_mtl.weights import load_model

    model, config = load_model(random_weights)
    rng = np.random.default_rng(5)

    def faces(n: int) -> CropSet:
        return CropSet(crops=rng.integers(0, 256, size=(n, 40, 40, 3), dtype=np.uint8), **_empty_labels(n))

    splits = {"utk_train": faces(3), "celeba_train": faces(2), "utk_val": faces(2)}
    torch.manual_seed(7)
    key, attached = reference.attach_reference(splits, random_weights, config, tmp_path)
    # Loading the reference left torch's generator where it was: a run's own draws are unchanged.
    drawn_after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(drawn_after, torch.rand(3))
    assert attached == ["utk_train", "celeba_train"] and key == reference.reference_key(random_weights)
    assert (tmp_path / "reference" / key / f"crops{config.input_size}" / "utk_train.npz").is_file()
    targets = splits["utk_train"].reference
    assert targets.shape == (3, config.max_age + 1 + len(config.genders) + len(config.ethnicities))
    assert splits["utk_val"].reference.shape == (2, 0)  # held-out faces get none
    # Each head's columns are a distribution: the mean of the face's and its mirror's softmax.
    x = next(cached_inputs(splits["utk_train"].crops, config))
    with torch.inference_mode():
        views = model(torch.cat([x, torch.flip(x, dims=[3])]))
    start = 0
    for head in ("age", "gender", "ethnicity"):
        p = views[head].float().softmax(dim=1)
        expected = ((p[:3] + p[3:]) / 2).numpy()
        np.testing.assert_allclose(targets[:, start:start + p.shape[1]], expected, atol=1e-5)
        start += p.shape[1]
    assert not np.allclose(targets[0], targets[1])

    # Cached once per reference: a second run reads them (no network pass) ...
    monkeypatch.setattr(reference, "reference_probabilities", lambda *a, **k: pytest.fail("recomputed"))
    again = {name: crop_set for name, crop_set in splits.items()}
    reference.attach_reference(again, random_weights, config, tmp_path)
    np.testing.assert_array_equal(again["utk_train"].reference, targets)
    # ... and a rebuilt crop cache gets targets of its own, even with as many faces.
    monkeypatch.undo()
    rebuilt = {"utk_train": faces(3)}
    reference.attach_reference(rebuilt, random_weights, config, tmp_path)
    assert rebuilt["utk_train"].reference.shape == targets.shape
    assert not np.allclose(rebuilt["utk_train"].reference, targets)
    # The weights file itself names the cache, as a path or as the folder.
    assert reference.reference_key(random_weights / "model.safetensors") == key

    # A student at another input size gets the reference's view at the reference's own size,
    # cached beside (not over) the targets for the first size's crops.
    smaller = config.with_updates(input_size=64)
    other_size = {"utk_train": splits["utk_train"]}
    reference.attach_reference(other_size, random_weights, smaller, tmp_path)
    np.testing.assert_allclose(other_size["utk_train"].reference, targets, atol=1e-6)
    assert (tmp_path / "reference" / key / "crops64" / "utk_train.npz").is_file()
    x64 = next(cached_inputs(splits["utk_train"].crops, smaller))
    with torch.inference_mode():
        at_student_size = model(torch.cat([x64, torch.flip(x64, dims=[3])]))["age"].float().softmax(dim=1)
    assert not np.allclose(targets[:, :at_student_size.shape[1]], ((at_student_size[:3] + at_student_size[3:]) / 2).numpy(),
                           atol=1e-3)
    monkeypatch.setattr(reference, "reference_probabilities", lambda *a, **k: pytest.fail("recomputed"))
    reference.attach_reference({"utk_train": rebuilt["utk_train"]}, random_weights, config, tmp_path)
    monkeypatch.undo()
    # A reference that predicts other classes cannot teach.
    with pytest.raises(ValueError, match="max_age"):
        reference.attach_reference({"utk_train": faces(1)}, random_weights, config.with_updates(max_age=80), tmp_path)
    with pytest.raises(ValueError, match="reference_weights"):
        TrainSettings(loss_reference=1.0)
    with pytest.raises(ValueError, match="loss_reference"):
        TrainSettings(loss_reference=-1.0, reference_weights=str(random_weights))
    # Crop sets built without targets carry none, and subsets keep the columns.
    assert _crop_set(3).reference.shape == (3, 0)
    assert splits["utk_train"].subset(np.array([2, 0])).reference.shape == (2, targets.shape[1])


def test_refitted_linear_heads_predict_what_the_reference_did_and_leave_the_start_alone():
    from face_mtl.train.attribute_heads import refit_heads
    from face_mtl.train.losses import REFERENCE_HEADS, reference_loss

    generator = torch.Generator().manual_seed(3)
    widths = {"age": 12, "gender": 2, "ethnicity": 5}
    features = torch.randn(600, 16, generator=generator)

    def random_heads(scale: float) -> dict:
        return {h: (torch.randn(c, 16, generator=generator) * scale, torch.randn(c, generator=generator))
                for h, c in widths.items()}

    def loss_of(heads: dict) -> float:
        logits = {h: features @ w.T + b for h, (w, b) in heads.items()}
        return float(reference_loss(logits, targets, REFERENCE_HEADS))

    teacher = random_heads(0.5)
    targets = torch.cat([(features @ w.T + b).softmax(dim=1) for w, b in teacher.values()], dim=1)
    start = random_heads(0.5)
    kept = {h: (w.clone(), b.clone()) for h, (w, b) in start.items()}
    seen = []
    refitted = refit_heads(start, features, targets, epochs=30, lr=0.05, batch=100, generator=generator,
                           report=lambda epoch, heads: seen.append((epoch, loss_of(heads))))
    assert [epoch for epoch, _ in seen] == list(range(1, 31))
    assert loss_of(refitted) < 0.1 * loss_of(start) and loss_of(refitted) == pytest.approx(seen[-1][1])
    assert all(torch.equal(start[h][0], kept[h][0]) and torch.equal(start[h][1], kept[h][1]) for h in widths)
    # Labels pull the heads towards them where known: every face is 2 years old, the first half
    # labelled gender 1 (the rest unknown), ethnicity unknown throughout.
    years = torch.full((600,), 2.0)
    gender = torch.cat([torch.ones(300, dtype=torch.long), torch.full((300,), -1)])
    labels = {"age": years, "gender": gender, "ethnicity": torch.full((600,), -1)}
    labelled = refit_heads(start, features, targets, labels, label_weight=20.0, epochs=30, lr=0.05, batch=100,
                           generator=generator)
    bins = torch.arange(widths["age"], dtype=torch.float32)

    def mean_years(heads: dict) -> float:
        return float(((features @ heads["age"][0].T + heads["age"][1]).softmax(dim=1) * bins).sum(dim=1).mean())

    def share_of_gender_1(heads: dict, rows: slice) -> float:
        return float((features[rows] @ heads["gender"][0].T + heads["gender"][1]).argmax(dim=1).float().mean())

    assert abs(mean_years(labelled) - 2.0) < abs(mean_years(refitted) - 2.0) - 1.0
    assert share_of_gender_1(labelled, slice(0, 300)) > 0.95 > share_of_gender_1(refitted, slice(0, 300))
    # The ethnicity head saw no labels: it still follows the reference alone.
    torch.testing.assert_close(labelled["ethnicity"][0], refitted["ethnicity"][0], atol=0.5, rtol=0)
    with pytest.raises(ValueError, match="labels"):
        refit_heads(start, features, targets, label_weight=1.0)


def test_persist_command_refuses_an_unfinished_run_and_names_what_is_missing(tmp_path, capsys):
    from face_mtl.train.persist import main

    run = tmp_path / "r18zz"
    run.mkdir()
    (run / "train.log").write_text('{"epoch": 1}\n')
    with pytest.raises(SystemExit) as exit_info:
        main([str(run), "--weights", str(tmp_path / "last_run"), "--logs", str(tmp_path / "logs")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "not a finished run" in error and "model.safetensors" in error and "settings.json" in error
    assert "train.log" not in error  # present, so not named
    assert not (tmp_path / "last_run").exists() and not (tmp_path / "logs").exists()


def test_the_teachers_view_of_a_crop_boxes_the_face_inside_its_margin():
    from face_mtl.data.sets import CACHE_MARGIN
    from face_mtl.train.teacher import CROP_VIEW_FACE, crop_view

    side = round(64 * (1 + 2 * CACHE_MARGIN))
    crop = np.zeros((side, side, 3), np.uint8)
    inset = round(side * CACHE_MARGIN / (1 + 2 * CACHE_MARGIN))
    crop[inset:side - inset, inset:side - inset] = 255  # the face: white, the margin black
    image, (x1, y1, x2, y2) = crop_view(crop)
    assert abs((x2 - x1) - CROP_VIEW_FACE) <= 2 and x2 - x1 == y2 - y1
    face = image[round(y1) + 4:round(y2) - 4, round(x1) + 4:round(x2) - 4]
    assert face.min() > 200  # all of the box is face
    assert image[round(y1) - 6, round(x1) - 6].max() < 50 and image[0, 0].max() < 50  # margin and padding are not
