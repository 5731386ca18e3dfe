"""Weights travel as model.safetensors + config.json; nothing is unpickled."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from face_mtl import FaceAnalyzer, WeightsMismatchError, WeightsNotFoundError
from face_mtl.config import ConfigError, ModelConfig
from face_mtl.model import FaceMTLNet, UnknownBackboneError, predict
from face_mtl.weights import load_model, resolve_weights, save_model


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=64)
    model = FaceMTLNet(config).eval()
    save_model(model, config, tmp_path, half=False)
    loaded, loaded_config = load_model(tmp_path)
    assert loaded_config == config
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        before, after = predict(model, x), predict(loaded, x)
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_half_precision_storage_halves_the_file_and_keeps_outputs_close(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(1)
    config = ModelConfig(backbone="resnet18", input_size=64)
    model = FaceMTLNet(config).eval()
    with torch.no_grad():  # a statistic beyond float16's range must survive as float32
        model.backbone.bn1.running_var[0] = 1e6
    full, half = save_model(model, config, tmp_path / "full", half=False), save_model(model, config, tmp_path / "half")
    size = lambda folder: (folder / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.55 * size(full)
    stored = load_file(str(half / "model.safetensors"))
    assert stored["backbone.conv1.weight"].dtype == torch.float16
    assert stored["backbone.bn1.running_var"].dtype == torch.float32
    assert stored["backbone.bn1.num_batches_tracked"].dtype == torch.int64
    loaded, _ = load_model(half)
    assert loaded.backbone.conv1.weight.dtype == torch.float32
    x = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        before, after = predict(model, x), predict(loaded, x)
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=2e-2, rtol=2e-2)


def test_safetensors_file_path_is_accepted(random_weights):
    assert resolve_weights(random_weights / "model.safetensors") == random_weights


def test_label_count_mismatch_is_a_clear_error(random_weights, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(random_weights, broken)
    config = json.loads((broken / "config.json").read_text())
    config["emotions"] = config["emotions"][:7]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsMismatchError, match="emotion head 7 outputs but model.safetensors has 8"):
        load_model(broken)


def test_wrong_backbone_is_a_clear_error(random_weights, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(random_weights, broken)
    config = json.loads((broken / "config.json").read_text())
    config["backbone"] = "resnet18"
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsMismatchError, match="do not fit backbone 'resnet18'"):
        load_model(broken)


def test_unknown_backbone_and_fields_are_refused():
    with pytest.raises(UnknownBackboneError):
        FaceMTLNet(ModelConfig(backbone="no_such_net"))
    with pytest.raises(ConfigError, match="unknown config fields: colour"):
        ModelConfig.from_dict({"colour": "blue"})


def test_missing_weights_list_everything_tried(tmp_path, monkeypatch):
    import face_mtl.weights as weights_module

    asked = []

    def offline_hub(repo_id, revision=None):
        asked.append(repo_id)
        raise OSError("offline")

    monkeypatch.setattr(weights_module, "_from_hub", offline_hub)
    with pytest.raises(WeightsNotFoundError, match="tried: path"):
        resolve_weights(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(WeightsNotFoundError, match="tried: path runs/nothing"):
        resolve_weights("runs/nothing")  # a mistyped local folder is not sent to the Hub
    with pytest.raises(WeightsNotFoundError, match="Hugging Face Hub repo nobody/nothing"):
        resolve_weights("nobody/nothing")
    assert asked == ["nobody/nothing"]


def test_hub_fallback_uses_the_configured_repo(tmp_path, monkeypatch, random_weights):
    import face_mtl.weights as weights_module

    monkeypatch.setattr(weights_module, "BUNDLED_DIR", tmp_path / "absent")
    asked = []
    monkeypatch.setattr(weights_module, "_from_hub", lambda repo_id, revision=None: asked.append(
        (repo_id, revision)) or random_weights)
    monkeypatch.setenv("FACE_MTL_HUB_REPO", "someone/face-mtl")
    monkeypatch.delenv("FACE_MTL_HUB_REVISION", raising=False)
    assert resolve_weights() == random_weights
    monkeypatch.setenv("FACE_MTL_HUB_REVISION", "0123abcd")  # a Space pins the revision
    assert resolve_weights() == random_weights
    assert asked == [("someone/face-mtl", None), ("someone/face-mtl", "0123abcd")]
    monkeypatch.delenv("FACE_MTL_HUB_REPO")
    with pytest.raises(WeightsNotFoundError, match="set \\$FACE_MTL_HUB_REPO"):
        resolve_weights()


def test_bundled_weights_load_with_no_arguments():
    analyzer = FaceAnalyzer(device="cpu")
    assert analyzer.config.input_size >= 32
    faces = analyzer.predict_crops([np.full((48, 48), 128, np.uint8)])
    assert abs(float(np.linalg.norm(faces[0].embedding)) - 1) < 1e-4
