"""Shared fixtures: the example photos, a randomly initialised model in the shipped format, and
one ``python app.py`` server (with a gradio_client) for every test module that needs one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return EXAMPLES / "astronaut.png"


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    return EXAMPLES / "grace_hopper.jpg"


def compose_side_by_side(left: np.ndarray, right: np.ndarray, right_scale: float) -> np.ndarray:
    """Both photos on one white canvas, the right one scaled by ``right_scale``."""
    small = Image.fromarray(right)
    small = np.asarray(small.resize((round(small.width * right_scale), round(small.height * right_scale))))
    height = max(left.shape[0], small.shape[0])
    canvas = np.full((height, left.shape[1] + small.shape[1], 3), 255, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: small.shape[0], left.shape[1] :] = small
    return canvas


@pytest.fixture(scope="session")
def two_face_composite(astronaut_path, grace_hopper_path) -> np.ndarray:
    """Grace Hopper (larger face) on the left, the astronaut on the right, one canvas."""
    from face_mtl.images import load_image

    return compose_side_by_side(load_image(grace_hopper_path), load_image(astronaut_path), 1.0)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A randomly initialised model of the default config, saved in the shipped format."""
    import torch

    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.weights import save_model

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=96)
    folder = tmp_path_factory.mktemp("random_weights")
    return save_model(FaceMTLNet(config), config, folder)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """``python app.py`` serving on a free loopback port, shared by the whole session."""
    from app_server import serve_app

    with serve_app(tmp_path_factory.mktemp("app_server")) as (server, _process):
        yield server


@pytest.fixture(scope="session")
def client(app_server, tmp_path_factory):
    """A gradio_client.Client of the session's server (files it downloads go to a temp folder)."""
    gradio_client = pytest.importorskip("gradio_client")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # the client reports usage unless told not to
    return gradio_client.Client(
        app_server.url,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("client_downloads")),
    )


@pytest.fixture(scope="session")
def bad_input_corpus(tmp_path_factory) -> dict[str, Path]:
    """Every kind of tests/bad_inputs.py written once per session: {kind name: path}."""
    from bad_inputs import build_corpus

    return build_corpus(tmp_path_factory.mktemp("bad_inputs"))
