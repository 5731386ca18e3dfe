"""``face-mtl space build`` and ``space push``, offline: what the folder holds, that it serves on
its own, and what the push sends to the Hub (a stand-in records the calls)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from face_mtl import space
from face_mtl.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"app.py", "face_mtl", "requirements.txt", "README.md", "MODEL_CARD.md", "examples",
             ".gitattributes", space.MANIFEST}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "out"
    assert main(["space", "build", str(out)]) == 0
    return out


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_build_holds_the_runtime_only(built):
    files = _files(built)
    assert {f.split("/")[0] for f in files} == TOP_LEVEL
    assert not [f for f in files if f.startswith("face_mtl/train/") or "__pycache__" in f or f.endswith(".pyc")]
    for left_out in ("tests", "bench", "training", "scripts", "docs", "runs", ".cache"):
        assert not (built / left_out).exists()
    assert not [f for f in files if "shared" in f.split("/")]
    assert (built / "app.py").read_bytes() == (ROOT / "app.py").read_bytes()
    # Every module of the package but the training code, and the weights.
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "face_mtl").rglob("*.py")
              if "train" not in p.relative_to(ROOT / "face_mtl").parts[:1]}
    assert source <= set(files)
    assert {"face_mtl/assets/model.safetensors", "face_mtl/assets/config.json"} <= set(files)
    examples = sorted(f for f in files if f.startswith("examples/"))
    assert examples == ["examples/astronaut.png", "examples/grace_hopper.jpg", "examples/group.jpg",
                        "examples/two_people.mp4"]
    manifest = json.loads((built / space.MANIFEST).read_text())
    assert manifest["weights"] == "bundled" and set(manifest["files"]) == set(files) - {space.MANIFEST}


def test_binaries_and_large_files_are_named_by_gitattributes(built):
    patterns = space.lfs_patterns((built / ".gitattributes").read_text())
    binaries = space.binary_files(built)
    assert "face_mtl/assets/model.safetensors" in binaries and "examples/two_people.mp4" in binaries
    assert [b for b in binaries if not space.named_by(patterns, b)] == []
    large = [f for f in _files(built) if (built / f).stat().st_size > space.MAX_PLAIN_FILE_BYTES]
    assert "face_mtl/assets/model.safetensors" in large  # 23 MB: over the Hub's plain-file limit
    assert [f for f in large if not space.named_by(patterns, f)] == []
    # Text stays plain text: no Python file or README is sent as a large file.
    assert not [f for f in _files(built) if f.endswith((".py", ".md", ".txt")) and space.named_by(patterns, f)]


def test_readme_front_matter_and_requirements(built):
    readme = (built / "README.md").read_text()
    front = readme.split("---\n")[1]
    for line in ("sdk: gradio", "app_file: app.py", "suggested_hardware: cpu-basic", 'python_version: "3.11"'):
        assert line in front.splitlines()
    import gradio

    assert f"sdk_version: {gradio.__version__}" in front.splitlines()
    requirements = (built / "requirements.txt").read_text().splitlines()
    assert "torch==2.14.1" in requirements and not [r for r in requirements if r.startswith("gradio")]


def test_hub_weights_build_leaves_the_weights_out(tmp_path):
    out = tmp_path / "hub"
    build = space.build_space(out, hub_repo="someone/face-mtl", hub_revision="0123abcd")
    assert build.weights == "hub:someone/face-mtl@0123abcd"
    assert not (out / "face_mtl" / "assets").exists()
    assert "- someone/face-mtl model.safetensors,config.json 0123abcd" in (out / "README.md").read_text()
    assert "*.safetensors" not in (out / ".gitattributes").read_text()
    with pytest.raises(space.SpaceError, match="--hub-revision is required"):
        space.build_space(tmp_path / "unpinned", hub_repo="someone/face-mtl")


def test_build_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["space", "build", str(tmp_path)]) == 2
    assert "is not an earlier Space build" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


class RecordingHub:
    """Stands in for huggingface_hub.HfApi: records the calls push_space makes."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def add_space_variable(self, *args, **kwargs):
        self.calls.append(("add_space_variable", args, kwargs))

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/spaces/u/n/commit/1"})()


def test_push_uploads_the_folder_as_a_space(built, monkeypatch, capsys):
    hub = RecordingHub()
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    made = []
    monkeypatch.setattr(space, "_hub_api", lambda token: made.append(token) or hub)
    assert main(["space", "push", str(built), "--repo-id", "someone/face-mtl-demo"]) == 0
    assert made == ["hf_test_token"]
    names = [name for name, _, _ in hub.calls]
    assert names == ["create_repo", "upload_folder"]  # bundled weights: no Space variables
    _, args, kwargs = hub.calls[0]
    assert args == ("someone/face-mtl-demo",)
    assert kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio" and kwargs["exist_ok"] is True
    _, args, kwargs = hub.calls[1]
    assert kwargs["repo_id"] == "someone/face-mtl-demo" and kwargs["repo_type"] == "space"
    assert Path(kwargs["folder_path"]) == built
    assert space.MANIFEST in kwargs["ignore_patterns"]
    assert "**/__pycache__/**" in kwargs["ignore_patterns"] and "*.pyc" in kwargs["ignore_patterns"]
    assert kwargs["delete_patterns"] == ["face_mtl/**", "examples/**"]
    assert "someone/face-mtl-demo" in capsys.readouterr().err


def test_push_of_a_hub_weights_build_sets_the_space_variables(tmp_path):
    out = tmp_path / "hub"
    space.build_space(out, hub_repo="someone/face-mtl", hub_revision="0123abcd")
    hub = RecordingHub()
    space.push_space(out, "someone/demo", api=hub)
    variables = [args[1:] for name, args, _ in hub.calls if name == "add_space_variable"]
    assert variables == [("FACE_MTL_HUB_REPO", "someone/face-mtl"), ("FACE_MTL_HUB_REVISION", "0123abcd")]


def test_push_needs_a_token_and_a_build(built, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(space, "_token", lambda: None)
    assert main(["space", "push", str(built), "--repo-id", "someone/demo"]) == 2
    assert "set HF_TOKEN" in capsys.readouterr().err
    assert main(["space", "push", str(tmp_path), "--repo-id", "someone/demo"]) == 2
    assert "is not a Space build" in capsys.readouterr().err
    assert main(["space", "push", str(built), "--repo-id", "demo"]) == 2
    assert "USER/NAME" in capsys.readouterr().err


def test_built_folder_serves_on_its_own(built, tmp_path):
    """``python app.py`` in the built folder, PYTHONPATH unset: the API finds the faces."""
    gradio_client = pytest.importorskip("gradio_client")
    from app_server import serve_app

    served = tmp_path / "served"
    import shutil

    shutil.copytree(built, served)  # the module's build stays free of the run's caches
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    with serve_app(tmp_path, env={"PYTHONDONTWRITEBYTECODE": ""}, app_dir=served) as (server, _process):
        client = gradio_client.Client(server.url, verbose=False, analytics_enabled=False,
                                      download_files=str(tmp_path / "downloads"))
        _image, table, _chart, results = client.predict(
            gradio_client.handle_file(str(served / "examples" / "group.jpg")), api_name="/analyze_image"
        )
    assert results["count"] == 4 and len(table["data"]) == 4
    # The server imported the package from the folder (its bytecode cache is written there),
    # not from this checkout.
    assert (served / "face_mtl" / "__pycache__").is_dir()
