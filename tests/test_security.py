"""Security: nothing in the runtime unpickles, the app serves only its own files, uploads are
read by their content, and an API call cannot make the app read a file on the server."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = [*sorted((ROOT / "face_mtl").rglob("*.py")), ROOT / "app.py"]
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def pickle_loading(source: str) -> list[str]:
    """What in ``source`` can unpickle: pickle-family imports, ``torch.load`` without
    ``weights_only=True``, ``torch.jit.load``, ``np.load(..., allow_pickle=True)``,
    ``read_pickle``. Returns "line: what" strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLE_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif node.module == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{node.lineno}: from torch import load")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.split(".")[0] in PICKLE_MODULES or name.endswith(("read_pickle", "Unpickler")):
                found.append(f"{node.lineno}: {name}(")
            elif name == "torch.load" and not _keyword_is_true(node, "weights_only"):
                found.append(f"{node.lineno}: torch.load( without weights_only=True")
            elif name == "torch.jit.load":
                found.append(f"{node.lineno}: torch.jit.load(")
            elif name in ("np.load", "numpy.load") and _keyword_is_true(node, "allow_pickle"):
                found.append(f"{node.lineno}: {name}(..., allow_pickle=True)")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.loads(b)",
        "from pickle import load",
        "import joblib",
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "torch.jit.load(path)",
        "np.load(path, allow_pickle=True)",
        "pd.read_pickle(path)",
        "from torch import load",
    ],
)
def test_the_scan_finds_pickle_loading(snippet):
    assert pickle_loading(snippet)


@pytest.mark.parametrize("snippet", ["torch.load(p, weights_only=True)", "np.load(p)", "load_file(p)"])
def test_the_scan_accepts_safe_loading(snippet):
    assert pickle_loading(snippet) == []


def test_nothing_in_the_runtime_unpickles():
    findings = {
        str(path.relative_to(ROOT)): found
        for path in RUNTIME
        if (found := pickle_loading(path.read_text(encoding="utf-8")))
    }
    assert findings == {}


# ---------------------------------------------------------------------------- the server


def _get_file(app_server, path: Path | str) -> int:
    return httpx.get(f"{app_server.url}gradio_api/file={path}", timeout=30).status_code


def test_only_the_apps_own_files_are_served(app_server, tmp_path):
    outside = tmp_path / "private.txt"  # under the system's temp folder, not uploaded
    outside.write_text("secret\n")
    for path in ("/etc/passwd", outside, ROOT / "face_mtl" / "assets" / "model.safetensors", ROOT / "app.py"):
        assert _get_file(app_server, path) in (403, 404), path
    assert _get_file(app_server, "../../../../etc/passwd") in (403, 404)
    assert _get_file(app_server, ROOT / "MODEL_CARD.md") == 200  # the one static file


def test_an_api_call_cannot_name_a_file_on_the_server(app_server, tmp_path):
    # The Photo input reaches the handler unprocessed (face_mtl reads it): Gradio must still
    # refuse file references that were not uploaded, before the handler runs.
    photo = tmp_path / "astronaut.png"
    shutil.copy(ROOT / "examples" / "astronaut.png", photo)
    for path in ("/etc/passwd", str(photo)):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
        started = httpx.post(f"{app_server.url}gradio_api/call/analyze_image", json=payload, timeout=30)
        assert started.status_code == 200
        stream = httpx.get(
            f"{app_server.url}gradio_api/call/analyze_image/{started.json()['event_id']}", timeout=120
        ).text
        assert "event: error" in stream and "event: complete" not in stream, stream[:500]
        assert "root:" not in stream


def test_the_detectors_own_weights_load_without_unpickling_code():
    # facenet-pytorch loads its bundled MTCNN weights with a bare torch.load(); since torch 2.6
    # that means weights_only=True, unless this variable switches it off.
    import os

    import torch

    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)
    assert not os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
