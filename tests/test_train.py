"""A tiny end-to-end training run on data the test builds from the example photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from face_mtl import FaceAnalyzer
from face_mtl.data.sets import FERPLUS_COLUMNS, build_splits, crop_cache_complete, split_of, wild_part
from face_mtl.train import TrainSettings, train
from face_mtl.train.loop import snapshot_dir
from face_mtl.train.persist import persist_run
from face_mtl.train.runlog import epoch_records, read_records


def _face_views(path: Path, box: tuple[int, int, int, int], count: int, size: int) -> list[np.ndarray]:
    """``count`` shifted and flipped views of a face with margins, size x size RGB."""
    image = Image.open(path).convert("RGB")
    x1, y1, x2, y2 = box
    views = []
    for k in range(count):
        dx, dy = (k % 3 - 1) * 4, (k // 3 % 3 - 1) * 4
        view = image.crop((x1 + dx, y1 + dy, x2 + dx, y2 + dy)).resize((size, size))
        views.append(np.asarray(view.transpose(Image.FLIP_LEFT_RIGHT) if k % 2 else view))
    return views


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, astronaut_path, grace_hopper_path) -> Path:
    root = tmp_path_factory.mktemp("data")
    astronaut = _face_views(astronaut_path, (150, 30, 300, 200), 6, 200)
    grace = _face_views(grace_hopper_path, (130, 70, 400, 390), 6, 200)
    utk = root / "utkface" / "images"
    utk.mkdir(parents=True)
    names = []
    for k, view in enumerate(astronaut + grace):
        age, gender, race = (30, 1, 0) if k < 6 else (79, 1, 0)
        # Alternate stems until both splits hold images.
        stem = f"{age}_{gender}_{race}_2017010{k}"
        names.append(stem)
        Image.fromarray(view).save(utk / f"{stem}.jpg.chip.jpg", quality=95)
    (utk / "badname.jpg.chip.jpg").write_bytes(b"not parsed")
    assert {split_of(f"{n}.jpg.chip.jpg", 0.1) for n in names} >= {"train"}

    votes = np.zeros((12, 10), np.uint8)
    votes[:6, FERPLUS_COLUMNS.index("happiness")] = 8
    votes[6:, FERPLUS_COLUMNS.index("surprise")] = 7
    votes[:, FERPLUS_COLUMNS.index("neutral")] = 2
    pixels = np.stack([np.asarray(Image.fromarray(v).convert("L").resize((48, 48))) for v in astronaut + grace])
    (root / "ferplus").mkdir()
    for split in ("train", "valid"):
        np.savez(root / "ferplus" / f"{split}.npz", pixels=pixels, votes=votes,
                 vote_columns=np.array(FERPLUS_COLUMNS), names=np.array([f"{i}.png" for i in range(12)]))

    celeba = root / "celeba_ids"
    (celeba / "images").mkdir(parents=True)
    train_id = next(i for i in range(1, 500) if split_of(f"id{i}", 0.16) == "train")
    val_ids = [i for i in range(1, 500) if split_of(f"id{i}", 0.16) == "val"][:2]
    rows = []
    for k, view in enumerate(astronaut + grace):
        identity = [train_id, val_ids[0]][k % 2] if k < 6 else [train_id, val_ids[1]][k % 2]
        name = f"{k:06d}.jpg"
        Image.fromarray(view).resize((160, 160)).save(celeba / "images" / name)
        rows.append({"file": name, "identity": identity})
    with open(celeba / "identities.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "identity"])
        writer.writeheader()
        writer.writerows(rows)

    # celeba_wild: small aligned-style photos (89x109) of people not in celeba_ids, two of them
    # trained on and two held out, labelled male and smiling like CelebA's attribute file.
    wild = root / "celeba_wild"
    (wild / "images").mkdir(parents=True)
    wild_train = [i for i in range(1000, 2000) if wild_part(i, set(), 0.1) == "train"][:2]
    wild_val = [i for i in range(1000, 2000) if wild_part(i, set(), 0.1) == "val"][:2]
    rows = []
    for k, view in enumerate(astronaut + grace):
        people = wild_train if k % 2 else wild_val
        name = f"{k + 100:06d}.jpg"
        face = Image.fromarray(view).resize((50, 50))
        photo = Image.new("RGB", (89, 109), (128, 128, 128))
        photo.paste(face, (20, 30))
        photo.save(wild / "images" / name)
        rows.append({"file": name, "identity": people[k // 6], "celeba_partition": 0,
                     "male": 0, "smiling": int(k < 6)})
    with open(wild / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "identity", "celeba_partition", "male", "smiling"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_tiny_training_lowers_loss_and_exports_loadable_weights(tiny_data, tmp_path):
    settings = TrainSettings(
        data_dir=str(tiny_data), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
        backbone="mobilenetv4_conv_small", input_size=64, epochs=5, max_steps=3, lr=2e-3,
        warmup_epochs=0.0, ema_decay=0.5, batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu",
        bn_recalibration_batches=5, embedding_head="pca", loss_teacher=2.0, prefetch_batches=2, snapshot_every=2,
        loss_smiling=1.0, emotion_logit_adjustment=0.5,
    )
    # Identity teacher descriptors for the cached CelebA training faces (random directions
    # stand in for dlib's: the loop only needs the cache in the crop cache's order).
    celeba_train = build_splits(tiny_data, tmp_path / "cache", 64)["celeba_train"]
    (tmp_path / "cache" / "teacher").mkdir()
    np.savez(tmp_path / "cache" / "teacher" / "celeba_train.npz",
             teacher=np.random.default_rng(0).normal(size=(len(celeba_train), 128)).astype(np.float32),
             names=np.array([str(i) for i in range(len(celeba_train))]))
    exported = train(settings)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "identity teacher descriptors: celeba_train" in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    history = [line for line in lines if "epoch" in line]
    assert len(history) == 5
    assert set(lines[-1]["final"]) == set(history[-1]["val"])
    chosen = next(line for line in lines if "identity_head" in line)
    assert chosen["identity_head"] == "pca" and set(chosen["verification"]) == {"pca"}
    assert 0.0 <= chosen["verification"]["pca"] <= 1.0
    assert history[-1]["train_loss"]["total"] < history[0]["train_loss"]["total"]
    assert "teacher" in history[-1]["train_loss"]
    assert "smiling" in history[-1]["train_loss"]  # celeba_wild's smiling labels reach the loss
    assert set(history[-1]["val"]) == {"ferplus_accuracy", "ferplus_tight_accuracy", "age_mae", "gender_accuracy",
                                       "ethnicity_accuracy", "verification_accuracy", "ferplus_balanced_accuracy",
                                       "wild_verification_accuracy", "wild_gender_accuracy", "wild_smiling_auc"}
    # Crops were cached once: the cache holds every split, detections are cached beside it.
    assert len(list((tmp_path / "cache" / "crops64").glob("*.npz"))) == 9
    assert {p.stem for p in (tmp_path / "cache" / "boxes").glob("*.npz")} == {
        "utk_train", "utk_val", "celeba_train", "celeba_val", "ferplus_tight_val", "celeba_wild_train",
        "celeba_wild_val"}

    # --snapshot-every 2 kept the EMA weights validated after epochs 2 and 4, and the last
    # epoch's (5), each with its figures.
    assert sorted(p.name for p in (tmp_path / "run" / "epochs").iterdir()) == ["002", "004", "005"]
    for epoch in (2, 4, 5):
        snapshot = FaceAnalyzer(weights=snapshot_dir(tmp_path / "run", epoch), device="cpu").config
        assert snapshot.training["epochs_done"] == epoch
        assert snapshot.metrics["summary"] == pytest.approx(history[epoch - 1]["val"], abs=1e-4)
        assert "grouping_by_faces" not in snapshot.verification  # seconds per epoch: the final export's

    analyzer = FaceAnalyzer(weights=exported, device="cpu")
    assert analyzer.config.input_size == 64
    assert analyzer.config.training["epochs_done"] == 5
    assert analyzer.config.training["identity_head"] == {k: v for k, v in chosen.items() if k != "celeba_train_images"}
    # The same-person threshold is calibrated with the exported weights, on held-out people.
    calibration = analyzer.config.verification
    assert calibration["split"] == "celeba_val" and calibration["people"] == 2
    assert analyzer.verdict_threshold == (calibration["threshold"], "calibrated")
    # ... and so is the threshold ``face-mtl people`` groups at, on simulated folders of them.
    assert -1.0 <= calibration["grouping_threshold"] <= 1.0 and 0.0 <= calibration["grouping_f1"] <= 1.0
    # ... with one per folder size: two held-out people make folders of up to 16 faces.
    assert [(b["min_faces"], b["max_faces"]) for b in calibration["grouping_by_faces"]] == [(1, 30)]
    assert 0.0 <= calibration["false_accept_rate"] <= 1.0 and 0.0 <= calibration["false_reject_rate"] <= 1.0
    faces = analyzer.predict_crops([np.zeros((48, 48), np.uint8)])
    assert len(faces) == 1 and abs(sum(faces[0].emotions.values()) - 1) < 1e-5
    # The exported identity head is the PCA projection of the training people's features:
    # orthonormal rows, as many as there are training photos, the rest zero. The weights file
    # stores float16 (relative precision 2**-11), so a row's norm is 1 within about 1e-3.
    head = analyzer.model.heads["embedding"].weight.detach().double()
    kept = chosen["celeba_train_images"]
    assert 0 < kept < head.shape[0]
    torch.testing.assert_close(head[:kept] @ head[:kept].T, torch.eye(kept, dtype=torch.float64), atol=2e-3, rtol=0)
    assert float(head[kept:].abs().max()) == 0.0


def test_a_teacher_cache_that_grows_during_training_is_read_again(tiny_data, tmp_path, monkeypatch):
    """train/teacher.py rewrites its cache as it goes: a run started beside it picks up the
    descriptors added since, at the next epoch."""
    import face_mtl.train.loop as loop

    settings = TrainSettings(
        data_dir=str(tiny_data), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
        backbone="mobilenetv4_conv_small", input_size=64, epochs=3, max_steps=1, warmup_epochs=0.0,
        batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu", bn_recalibration_batches=1,
        loss_teacher=1.0, embedding_head="trained",
    )
    faces = len(build_splits(tiny_data, tmp_path / "cache", 64)["celeba_train"])
    teacher = tmp_path / "cache" / "teacher" / "celeba_train.npz"
    teacher.parent.mkdir()
    vectors = np.zeros((faces, 128), np.float32)
    vectors[:1] = 1.0  # one face described when training starts
    np.savez(teacher, teacher=vectors, names=np.arange(faces).astype(str))
    save_checkpoint = loop.save_checkpoint

    def checkpoint_then_grow_the_cache(*args, **kwargs):
        save_checkpoint(*args, **kwargs)
        vectors[:] = 1.0  # every face described after the first epoch
        np.savez(teacher, teacher=vectors, names=np.arange(faces).astype(str))

    fer_faces = len(build_splits(tiny_data, tmp_path / "cache", 64)["ferplus_train"])
    fer_teacher = teacher.with_name("ferplus_train.npz")

    def checkpoint_then_grow_the_caches(*args, **kwargs):
        checkpoint_then_grow_the_cache(*args, **kwargs)
        np.savez(fer_teacher, teacher=np.ones((fer_faces, 128), np.float32), names=np.arange(fer_faces).astype(str))

    # What each step's FER+ images bring to the teacher loss: the reread must reach them too.
    fer_described = []
    views = loop.training_views

    def recording_views(parts, *args, **kwargs):
        fer_described.append(bool(parts[0][0].teacher[parts[0][1]].any()))
        return views(parts, *args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", checkpoint_then_grow_the_caches)
    monkeypatch.setattr(loop, "training_views", recording_views)
    train(settings)
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    rereads = [line for line in log if line.startswith("identity teacher descriptors reread")]
    # Read again before epochs 2 and 3 (the files changed after each checkpoint), now whole.
    assert rereads == [f"identity teacher descriptors reread: {{'ferplus_train': {fer_faces}, 'celeba_train': {faces}}}"] * 2
    assert fer_described[:3] == [False, True, True]  # one training step per epoch (max_steps=1)


def test_teacher_command_builds_the_detection_cache_on_a_new_machine(tiny_data, tmp_path):
    """``python -m face_mtl.train.teacher`` on a machine without the crop cache detects the
    faces first, then describes them (dlib: the [train] extra; without it, a clear error after
    the cache is built)."""
    from face_mtl.train import teacher

    cache = tmp_path / "cache"
    argv = ["--cache", str(cache), "--data", str(tiny_data), "--sets", "celeba_train"]
    try:
        teacher.main(argv)
    except teacher.TeacherUnavailableError as error:
        assert "pip install" in str(error)
    else:
        faces = len(build_splits(tiny_data, cache, 64)["celeba_train"])
        with np.load(cache / "teacher" / "celeba_train.npz") as data:
            assert data["teacher"].shape == (faces, 128) and data["teacher"].any(axis=1).all()
    assert (cache / "boxes" / "celeba_train.npz").exists() and (cache / "crops64" / "celeba_train.npz").exists()


class _Interrupted(Exception):
    pass


def test_training_resumes_from_its_checkpoint(tiny_data, tmp_path, monkeypatch):
    import face_mtl.train.loop as loop
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.weights import save_model

    reference_config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=64)
    reference = save_model(FaceMTLNet(reference_config), reference_config, tmp_path / "reference")
    settings = TrainSettings(
        data_dir=str(tiny_data), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
        backbone="mobilenetv4_conv_small", input_size=64, max_steps=2, warmup_epochs=0.0, epochs=2,
        batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu", bn_recalibration_batches=2,
        max_hours=1e6,  # the schedule then follows steps, not the (differing) wall time
        drop_path=0.1,  # its random draws come back with the RNG state too
        reference_weights=str(reference), loss_reference=1.0,  # targets cached, then read again
    )
    exported_config = loop._exported_config

    def crash_after_first_checkpoint(*args, **kwargs):
        raise _Interrupted

    monkeypatch.setattr(loop, "_exported_config", crash_after_first_checkpoint)
    with pytest.raises(_Interrupted):
        train(settings)
    # A run that has not exported is not persisted, and nothing is half-copied.
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        persist_run(tmp_path / "run", tmp_path / "kept" / "last_run", tmp_path / "kept" / "logs")
    assert not (tmp_path / "kept").exists()
    monkeypatch.setattr(loop, "_exported_config", exported_config)
    resumed = train(settings)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed" in log
    epochs = [json.loads(line) for line in log.splitlines() if line.startswith('{"epoch"')]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert log.count("reference targets from") == 2 and all(e["train_loss"]["reference"] > 0 for e in epochs)

    # Weights, optimizer, RNG and sampler positions all come back: a crash and a resume
    # give the weights of one uninterrupted run.
    uninterrupted = train(TrainSettings(**{**settings.to_dict(), "run_dir": str(tmp_path / "one_go")}))
    a, b = load_file(str(resumed / "model.safetensors")), load_file(str(uninterrupted / "model.safetensors"))
    assert a.keys() == b.keys()
    # Only float rounding of the wall-time term may differ; other samples would move weights by ~1e-3.
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-6) for k in a)

    # Resuming a finished run only re-exports it.
    train(settings)
    log = (tmp_path / "run" / "train.log").read_text()
    assert len([line for line in log.splitlines() if line.startswith('{"epoch"')]) == 2

    # The finished run is kept in tracked folders: weights the next run continues from, and
    # the log, settings and config that the learning curve and the model card read.
    kept = persist_run(tmp_path / "run", tmp_path / "kept" / "last_run", tmp_path / "kept" / "logs")
    assert kept.logs_dir == tmp_path / "kept" / "logs" / "run"
    assert sorted(p.name for p in kept.weights_dir.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in kept.logs_dir.iterdir()) == ["config.json", "settings.json", "train.log"]
    assert (kept.logs_dir / "train.log").read_text() == log
    continued = FaceAnalyzer(weights=kept.weights_dir, device="cpu")
    assert continued.config.training["epochs_done"] == 2
    assert load_file(str(kept.weights_dir / "model.safetensors")).keys() == a.keys()
    assert [e["epoch"] for e in epoch_records(read_records(kept.logs_dir / "train.log"))] == [1, 2]


def test_another_input_size_reuses_the_cached_detections(tiny_data, tmp_path, monkeypatch):
    import face_mtl.data.sets as datasets

    first = build_splits(tiny_data, tmp_path, 64)
    assert tuple(first) == ("ferplus_train", "ferplus_val", "ferplus_tight_val", "utk_train", "utk_val",
                            "celeba_train", "celeba_val", "celeba_wild_train", "celeba_wild_val")
    assert crop_cache_complete(tmp_path, 64) and not crop_cache_complete(tmp_path, 80)

    def no_detection(*args, **kwargs):
        raise AssertionError("the detector ran again")

    monkeypatch.setattr(datasets, "_detect_arrays", no_detection)
    second = build_splits(tiny_data, tmp_path, 80)
    assert second["utk_train"].crops.shape[1:] == (96, 96, 3)  # 80 px inside a 10 % margin
    assert len(second["utk_train"]) == len(first["utk_train"]) and len(second["celeba_val"]) == len(first["celeba_val"])
    assert len(second["celeba_wild_val"]) == len(first["celeba_wild_val"]) > 0
    np.testing.assert_array_equal(second["utk_train"].age, first["utk_train"].age)


def test_a_relative_data_folder_reuses_the_detections_cached_under_its_absolute_path(tiny_data, tmp_path, monkeypatch):
    import face_mtl.data.sets as datasets

    first = build_splits(tiny_data, tmp_path / "cache", 64)

    def no_detection(*args, **kwargs):
        raise AssertionError("the detector ran again")

    monkeypatch.setattr(datasets, "_detect_arrays", no_detection)
    monkeypatch.chdir(tiny_data.parent)
    second = build_splits(Path(tiny_data.name), tmp_path / "cache", 72)
    assert len(second["utk_train"]) == len(first["utk_train"]) > 0
    assert len(second["celeba_wild_train"]) == len(first["celeba_wild_train"]) > 0


def test_a_run_continues_weights_trained_at_another_input_size(tiny_data, tmp_path):
    """--init-weights of another input size: the network pools globally, so the run starts from
    those weights at its own size (how the 72 px weights continued the 64 px ones)."""
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.weights import save_model

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=64)
    source = save_model(FaceMTLNet(config), config, tmp_path / "at64")
    settings = TrainSettings(
        data_dir=str(tiny_data), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
        init_weights=str(source), backbone="mobilenetv4_conv_small", input_size=72, epochs=1, max_steps=1,
        lr=0.0, warmup_epochs=0.0, batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu",
        bn_recalibration_batches=1, loss_teacher=0.0, loss_teacher_relation=0.0, embedding_head="trained",
    )
    exported = train(settings)
    assert "--init-weights: 64 px weights continue at 72 px" in (tmp_path / "run" / "train.log").read_text()
    continued = FaceAnalyzer(weights=exported, device="cpu").config
    assert continued.input_size == 72
    assert continued.training["initialised_from"]["weights"] == str(source)
    # At a learning rate of 0 every learned weight is the 64 px network's; only BatchNorm's
    # running statistics were estimated again, on 72 px faces.
    before, after = load_file(str(source / "model.safetensors")), load_file(str(exported / "model.safetensors"))
    assert before.keys() == after.keys()
    learned = [name for name in before if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert learned and all(torch.equal(before[name], after[name]) for name in learned)
    statistics = [name for name in before if name.endswith("running_mean")]
    assert any(not torch.equal(before[name], after[name]) for name in statistics)


def test_identity_head_command_refits_exported_weights(tiny_data, tmp_path, capsys):
    from face_mtl.cli import main
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.weights import load_model, save_model

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=64)
    source = save_model(FaceMTLNet(config), config, tmp_path / "source")
    before = load_file(str(source / "model.safetensors"))
    common = ["--data", str(tiny_data), "--cache", str(tmp_path / "cache")]

    assert main(["identity-head", "--weights", str(source), "--out", str(tmp_path / "pca"), "--head", "pca", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["identity_head"] == "pca" and set(summary["verification"]) == {"pca"}
    assert 0.0 <= summary["validation"]["verification_accuracy"] <= 1.0
    model, refitted = load_model(tmp_path / "pca")
    assert refitted.training["identity_head"]["identity_head"] == "pca"
    # The same-person threshold was calibrated again, for the new head.
    assert -1.0 <= refitted.verification["threshold"] <= 1.0 and refitted.verification["split"] == "celeba_val"
    assert set(refitted.metrics["summary"]) >= {"ferplus_accuracy", "verification_accuracy"}
    after = load_file(str(tmp_path / "pca" / "model.safetensors"))
    # Only the embedding head changed, and the source folder was left as it was.
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and changed <= {"heads.embedding.weight", "heads.embedding.bias"}
    assert all(torch.equal(t, load_file(str(source / "model.safetensors"))[n]) for n, t in before.items())

    with pytest.raises(SystemExit):
        main(["identity-head", "--weights", str(source), "--head", "svm", *common])
    assert main(["identity-head", "--weights", str(tmp_path / "missing"), *common]) != 0
    assert "no such weights folder" in capsys.readouterr().err


def test_attribute_heads_command_refits_only_those_heads_towards_the_reference(tiny_data, tmp_path, capsys):
    from face_mtl.cli import main
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.train.reference import attach_reference, reference_probabilities
    from face_mtl.weights import load_model, save_model

    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=64)
    torch.manual_seed(0)
    source = save_model(FaceMTLNet(config), config, tmp_path / "source")
    torch.manual_seed(1)
    reference = save_model(FaceMTLNet(config), config, tmp_path / "reference")
    before = load_file(str(source / "model.safetensors"))
    common = ["--data", str(tiny_data), "--cache", str(tmp_path / "cache")]

    assert main(["attribute-heads", "--weights", str(source), "--reference", str(reference), "--out",
                 str(tmp_path / "refitted"), "--epochs", "25", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 25 and summary["label_weight"] == 0.0
    assert summary["sets"] == ["utk_train", "celeba_train", "ferplus_train"] and summary["samples"] > 0
    assert set(summary["utk_val_after"]) == {"age_mae", "gender_accuracy", "ethnicity_accuracy"}
    assert set(summary["validation"]) >= {"ferplus_accuracy", "age_mae", "verification_accuracy"}
    after = load_file(str(tmp_path / "refitted" / "model.safetensors"))
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    heads = {f"heads.{h}.{p}" for h in ("age", "gender", "ethnicity") for p in ("weight", "bias")}
    assert changed == heads  # backbone, expression and identity untouched
    source_now = load_file(str(source / "model.safetensors"))
    assert all(torch.equal(t, source_now[n]) for n, t in before.items())
    model, refitted = load_model(tmp_path / "refitted")
    assert refitted.training["attribute_heads"]["reference"] == str(reference)
    assert refitted.metrics["summary"] == summary["validation"]
    assert summary["utk_val_after"]["age_mae"] == summary["validation"]["age_mae"]

    # On the training faces, the refitted heads now predict much what the reference did.
    faces = build_splits(tiny_data, tmp_path / "cache", 64)
    attach_reference(faces, reference, config, tmp_path / "cache")
    targets = torch.from_numpy(faces["utk_train"].reference)

    def divergence(weights) -> float:
        student, _ = load_model(weights)
        p = torch.from_numpy(reference_probabilities(student, config, faces["utk_train"].crops)).clamp_min(1e-12)
        return float((targets * (targets.clamp_min(1e-12).log() - p.log())).sum(dim=1).mean())

    assert divergence(tmp_path / "refitted") < 0.5 * divergence(source)

    assert main(["attribute-heads", "--weights", str(source), "--reference", str(tmp_path / "missing"), *common]) != 0
    assert "no such weights folder" in capsys.readouterr().err
    # A reference that predicts other classes cannot teach: a clear error, nothing written.
    other = save_model(FaceMTLNet(config.with_updates(max_age=80)), config.with_updates(max_age=80),
                       tmp_path / "other_ages")
    assert main(["attribute-heads", "--weights", str(source), "--reference", str(other), "--out",
                 str(tmp_path / "not_written"), *common]) != 0
    assert "max_age" in capsys.readouterr().err and not (tmp_path / "not_written").exists()
    # Without --out the weights folder itself is rewritten.
    assert main(["attribute-heads", "--weights", str(tmp_path / "refitted"), "--reference", str(reference),
                 "--epochs", "1", *common]) == 0
    assert load_model(tmp_path / "refitted")[1].training["attribute_heads"]["epochs"] == 1
    with pytest.raises(SystemExit):
        main(["attribute-heads", "--weights", str(source), "--reference", str(reference), "--lr", "0", *common])
    with pytest.raises(SystemExit):
        main(["attribute-heads", "--weights", str(source), "--reference", str(reference), "--label-weight", "-1",
              *common])


def test_packed_caches_train_on_a_machine_without_the_photos(tiny_data, tmp_path):
    """``python -m face_mtl.train.portable pack`` shrinks the crop caches (JPEG mosaics, int8
    teacher directions) for another machine; ``unpack`` there rebuilds caches that training
    reads without any photo. ``eval_every`` validates every so many epochs, and at the end."""
    from face_mtl.data.sets import crop_cache_complete
    from face_mtl.train.portable import pack, unpack

    source = tmp_path / "cache"
    splits = build_splits(tiny_data, source, 64)
    descriptors = np.random.default_rng(0).normal(size=(len(splits["celeba_train"]), 128)).astype(np.float32)
    descriptors[0] = 0.0  # a face the teacher has not described yet stays without one
    (source / "teacher").mkdir()
    np.savez(source / "teacher" / "celeba_train.npz", teacher=descriptors)
    sizes = pack(source, 64, tmp_path / "packs", quality=90)
    assert set(sizes) == set(splits) and all(size > 0 for size in sizes.values())

    target = tmp_path / "elsewhere"
    assert not crop_cache_complete(target, 64)
    assert sorted(unpack([tmp_path / "packs"], target, 64)) == sorted(splits)
    assert crop_cache_complete(target, 64)
    moved = build_splits(tmp_path / "no_photos_here", target, 64)
    for name, crop_set in splits.items():
        copy = moved[name]
        for field in ("emotion", "age", "gender", "ethnicity", "identity"):
            np.testing.assert_array_equal(getattr(copy, field), getattr(crop_set, field))
        assert copy.crops.shape == crop_set.crops.shape
        # JPEG at quality 90 with colour at half resolution: a few levels of 255 (another crop: tens)
        assert np.abs(copy.crops.astype(int) - crop_set.crops).mean() < 4.0
    # FER+ crops are grayscale and stay so (they travel as one channel).
    ferplus = moved["ferplus_train"].crops
    assert (ferplus[..., 0] == ferplus[..., 1]).all() and (ferplus[..., 0] == ferplus[..., 2]).all()
    with np.load(target / "teacher" / "celeba_train.npz") as data:
        teacher = data["teacher"]
    assert not teacher[0].any() and not (target / "teacher" / "utk_train.npz").exists()
    unit = descriptors[1:] / np.linalg.norm(descriptors[1:], axis=1, keepdims=True)
    assert (teacher[1:] * unit).sum(axis=1).min() > 0.999  # the direction, to int8's precision

    settings = TrainSettings(
        data_dir=str(tmp_path / "no_photos_here"), cache_dir=str(target), run_dir=str(tmp_path / "run"),
        backbone="mobilenetv4_conv_small", input_size=64, epochs=3, max_steps=1, warmup_epochs=0.0,
        batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu", bn_recalibration_batches=1,
        loss_teacher=1.0, embedding_head="trained", eval_every=2, max_hours=1e6,
    )
    train(settings)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "identity teacher descriptors: celeba_train" in log
    history = [json.loads(line) for line in log.splitlines() if line.startswith('{"epoch"')]
    assert [record["epoch"] for record in history] == [2, 3]
    assert [record["steps"] for record in history] == [2, 1]  # losses averaged over both epochs
    with pytest.raises(ValueError, match="eval_every"):
        TrainSettings(eval_every=0)


def test_teacher_workers_describe_the_same_faces_as_one_process(tmp_path, astronaut_path, grace_hopper_path):
    """``--workers N`` splits dlib's work over processes; the descriptors come back in order."""
    pytest.importorskip("dlib")
    from face_mtl.train.teacher import dlib_descriptors

    paths = [astronaut_path, grace_hopper_path] * 3
    boxes = np.array([(150, 30, 300, 200), (130, 70, 400, 390)] * 3, np.float32)
    one = dlib_descriptors(paths, boxes)
    two = dlib_descriptors(paths, boxes, workers=2)
    np.testing.assert_allclose(two, one, atol=1e-6)
    assert np.linalg.norm(one[0] - one[1]) > 0.3  # two people, two descriptors


def test_teacher_describes_the_ferplus_training_images_in_crop_set_order(tiny_data, tmp_path):
    """``--sets ferplus_train``: dlib describes the whole FER+ images (no detection cache), one
    descriptor per image that training keeps; the same person's images come out closer."""
    pytest.importorskip("dlib")
    from face_mtl.data.sets import attach_teacher
    from face_mtl.train import teacher

    cache = tmp_path / "cache"
    teacher.main(["--cache", str(cache), "--data", str(tiny_data), "--sets", "ferplus_train"])
    assert not (cache / "boxes").exists()  # whole images: nothing detected
    splits = build_splits(tiny_data, cache, 64)
    assert "ferplus_train" in attach_teacher(splits, cache)
    descriptors = splits["ferplus_train"].teacher
    assert descriptors.shape == (12, 128) and descriptors.any(axis=1).all()
    unit = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    person = np.arange(12) < 6  # the fixture's first six images are the astronaut, the rest Grace Hopper
    same = (person[:, None] == person[None, :]) & ~np.eye(12, dtype=bool)
    different = person[:, None] != person[None, :]
    assert similarity[same].mean() > similarity[different].mean() + 0.05


def test_teacher_describes_the_students_own_crops_with_views_crops(tiny_data, tmp_path):
    """``--views crops``: dlib describes the cached crops at the input size (what the student
    sees), into their own folder; training with ``teacher_views="crops"`` distils from those."""
    pytest.importorskip("dlib")
    from face_mtl.data.sets import attach_teacher
    from face_mtl.train import teacher

    cache = tmp_path / "cache"
    teacher.main(["--cache", str(cache), "--data", str(tiny_data), "--sets", "ferplus_train", "--views", "crops"])
    assert not (cache / "teacher").exists() and (cache / "teacher_crops64" / "ferplus_train.npz").exists()
    splits = build_splits(tiny_data, cache, 64)
    assert attach_teacher(splits, cache) == []  # the photos' cache is another one
    assert attach_teacher(splits, cache, views="crops64") == ["ferplus_train"]
    unit = splits["ferplus_train"].teacher / np.linalg.norm(splits["ferplus_train"].teacher, axis=1, keepdims=True)
    similarity = unit @ unit.T
    person = np.arange(12) < 6  # the fixture's first six images are the astronaut, the rest Grace Hopper
    same = (person[:, None] == person[None, :]) & ~np.eye(12, dtype=bool)
    assert similarity[same].mean() > similarity[person[:, None] != person[None, :]].mean() + 0.05

    settings = TrainSettings(
        data_dir=str(tiny_data), cache_dir=str(cache), run_dir=str(tmp_path / "run"),
        backbone="mobilenetv4_conv_small", input_size=64, epochs=1, max_steps=1, warmup_epochs=0.0,
        batch_emotion=4, batch_utk=4, batch_identity=4, device="cpu", bn_recalibration_batches=1,
        loss_teacher=1.0, embedding_head="trained", teacher_views="crops",
    )
    train(settings)
    assert "identity teacher descriptors: ferplus_train" in (tmp_path / "run" / "train.log").read_text().splitlines()
