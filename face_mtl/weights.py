"""The one place that reads and writes weight files or talks to the Hugging Face Hub.

A model travels as a folder holding ``model.safetensors`` (a state dict) and ``config.json``
(a ModelConfig). Nothing is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ConfigError, ModelConfig
from .model import FaceMTLNet

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
BUNDLED_DIR = Path(__file__).parent / "assets"
# The Hub is a fallback only where a repo is named (argument or this variable): the project
# owns no public repo yet, and a default id would send users to someone else's files.
HUB_REPO_ENV = "FACE_MTL_HUB_REPO"
# The revision (commit hash, tag or branch) of that repo to read: a Space pins its weights with it,
# so a later push to the model repo cannot change what a running Space serves.
HUB_REVISION_ENV = "FACE_MTL_HUB_REVISION"


class WeightsNotFoundError(FileNotFoundError):
    pass


class WeightsMismatchError(ConfigError):
    pass


def _is_weights_dir(path: Path) -> bool:
    return (path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file()


def _from_hub(repo_id: str, revision: str | None = None) -> Path:
    from huggingface_hub import snapshot_download

    # snapshot_download caches, and honours HF_HUB_OFFLINE by reading the cache only.
    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=[WEIGHTS_FILE, CONFIG_FILE]))


def _looks_like_path(weights: str | Path) -> bool:
    text = str(weights)
    return (
        isinstance(weights, Path)
        or text.startswith((".", "/", "~"))
        or text.count("/") != 1
        or Path(text).parent.exists() and Path(text).parent != Path(".")
    )


def resolve_weights(weights: str | Path | None = None) -> Path:
    """Find a weights folder: the explicit path, else the bundled weights, else the Hub.

    ``weights`` may be a folder, a ``model.safetensors`` file (its config.json beside it) or a
    Hub repo id ("owner/name"). Without it the bundled folder is used when present, else the
    repo named by $FACE_MTL_HUB_REPO when set. A Hub repo is read at $FACE_MTL_HUB_REVISION
    when set (else its default branch). Raises WeightsNotFoundError listing every place tried.
    """
    tried: list[str] = []
    revision = os.environ.get(HUB_REVISION_ENV) or None
    if weights is not None:
        path = Path(weights)
        if path.is_file() and path.name.endswith(".safetensors"):
            path = path.parent
        if _is_weights_dir(path):
            return path
        tried.append(f"path {path} (no {WEIGHTS_FILE} + {CONFIG_FILE} there)")
        if path.exists() or _looks_like_path(weights):
            raise WeightsNotFoundError("no face_mtl weights found; tried: " + "; ".join(tried))
        repos = [str(weights)]
    else:
        if _is_weights_dir(BUNDLED_DIR):
            return BUNDLED_DIR
        tried.append(f"bundled weights {BUNDLED_DIR}")
        repos = [os.environ[HUB_REPO_ENV]] if os.environ.get(HUB_REPO_ENV) else []
        if not repos:
            tried.append(f"no Hub repo (set ${HUB_REPO_ENV} to use one)")
    for repo in repos:
        at = f"{repo}@{revision}" if revision else repo
        try:
            folder = _from_hub(repo, revision)
        except Exception as error:  # any Hub failure (offline, missing repo) is reported below
            tried.append(f"Hugging Face Hub repo {at} ({type(error).__name__})")
            continue
        if _is_weights_dir(folder):
            return folder
        tried.append(f"Hugging Face Hub repo {at} (files missing)")
    raise WeightsNotFoundError("no face_mtl weights found; tried: " + "; ".join(tried))


FP16_LIMIT = 60000.0  # float16's largest finite value is 65504


def _storage_tensor(value: torch.Tensor, half: bool) -> torch.Tensor:
    value = value.detach().to("cpu")
    fits = value.numel() > 0 and float(value.abs().max()) < FP16_LIMIT
    if half and value.is_floating_point() and fits:
        value = value.half()
    return value.contiguous()


def save_model(model: FaceMTLNet, config: ModelConfig, folder: str | Path, half: bool = True) -> Path:
    """Write model.safetensors + config.json into ``folder`` (created if needed), atomically.

    ``half``: store floating tensors as float16 (half the file; loading casts them back to
    float32; ``face-mtl eval`` measures the stored weights); a tensor beyond float16's range
    stays float32.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: _storage_tensor(v, half) for k, v in model.state_dict().items()}
    tmp_weights = folder / (WEIGHTS_FILE + ".tmp")
    tmp_config = folder / (CONFIG_FILE + ".tmp")
    save_file(state, str(tmp_weights), metadata={"format": "pt"})
    config.to_json(tmp_config)
    tmp_weights.replace(folder / WEIGHTS_FILE)
    tmp_config.replace(folder / CONFIG_FILE)
    return folder


def write_config(folder: str | Path, config: ModelConfig) -> Path:
    """Replace ``folder``'s config.json with ``config`` atomically (the weights stay as they are)."""
    folder = Path(folder)
    tmp_config = folder / (CONFIG_FILE + ".tmp")
    config.to_json(tmp_config)
    tmp_config.replace(folder / CONFIG_FILE)
    return folder / CONFIG_FILE


def _check_heads(config: ModelConfig, state: dict[str, torch.Tensor], folder: Path) -> None:
    for name, width in config.head_sizes.items():
        key = f"heads.{name}.weight"
        if key not in state:
            raise WeightsMismatchError(f"{folder / WEIGHTS_FILE}: no '{name}' head ({key} missing)")
        actual = state[key].shape[0]
        if actual != width:
            raise WeightsMismatchError(
                f"{folder}: config.json gives the {name} head {width} outputs "
                f"but {WEIGHTS_FILE} has {actual}"
            )


def load_model(weights: str | Path | None = None, device: str = "cpu") -> tuple[FaceMTLNet, ModelConfig]:
    """Resolve, read and check weights; returns the model in eval mode on ``device``."""
    folder = resolve_weights(weights)
    config = ModelConfig.from_json(folder / CONFIG_FILE)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as error:
        raise WeightsMismatchError(f"{folder / WEIGHTS_FILE}: unreadable ({error})") from error
    _check_heads(config, state, folder)
    model = FaceMTLNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsMismatchError(
            f"{folder}: weights do not fit backbone {config.backbone!r}: {str(error).splitlines()[0]}"
        ) from error
    return model.to(device).eval(), config
