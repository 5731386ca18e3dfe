"""A Hugging Face Space from this source tree: ``face-mtl space build OUT`` and ``face-mtl space push``.

The build writes a folder that runs on its own (``python app.py`` inside it): the app, the
runtime package (no training code), requirements.txt, a README with the Space's front matter,
the model card, the example photos and clips, and a ``.gitattributes`` naming every binary file
in it. The weights go in too (``face_mtl/assets``), unless the build is told to read them from a
Hub model repo at a pinned revision (``hub_repo``/``hub_revision``; the Space then gets
$FACE_MTL_HUB_REPO and $FACE_MTL_HUB_REVISION as variables when pushed).

The push uploads the folder with ``huggingface_hub.upload_folder(repo_type="space")``, which
stores binary files as large files on the Hub itself: no git history goes along.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .weights import CONFIG_FILE, HUB_REPO_ENV, HUB_REVISION_ENV, WEIGHTS_FILE

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding app.py
MANIFEST = ".face_mtl_space.json"  # what the build wrote; read by push, never uploaded
# Left out of the runtime package: training code, and Python's caches.
PACKAGE_EXCLUDES = ("train", "__pycache__", "*.pyc", "*.pyo", "*.tmp", "*.tmp.npz")
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".mp4", ".webm", ".mov")
# File kinds stored as large files whatever their size; any other file holding binary data is
# named too (see binary_files).
BINARY_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".npz", ".npy", *EXAMPLE_SUFFIXES, ".gif", ".pdf")
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"
MAX_PLAIN_FILE_BYTES = 10 * 1024 * 1024  # the Hub refuses larger files outside large-file storage
# Never uploaded: the manifest, caches a local run of the folder leaves behind.
IGNORE_PATTERNS = [MANIFEST, "**/__pycache__/**", "*.pyc", "**/*.pyc", ".gradio/**", "flagged/**"]
# Replaced on every push, so files dropped from a build (an old module, the weights when they
# move to a Hub repo) do not linger in the Space. Files at the top level outside these stay.
DELETE_PATTERNS = ["face_mtl/**", "examples/**"]
SPACE_TITLE = "face_mtl"
HARDWARE = "cpu-basic"  # 2 vCPU, 16 GB; the app also runs on ZeroGPU (see README)


class SpaceError(Exception):
    """A user-facing build or push failure (the CLI prints it as one line)."""


@dataclass(frozen=True)
class SpaceBuild:
    folder: Path
    files: dict[str, int]  # relative POSIX path -> bytes
    weights: str  # "bundled", or "hub:OWNER/NAME@REVISION"

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": len(self.files), "bytes": self.total_bytes,
                "weights": self.weights}


def _gradio_version() -> str:
    import gradio

    return gradio.__version__


def space_readme(gradio_version: str, hub_repo: str | None = None, hub_revision: str | None = None) -> str:
    """README.md of the Space: the front matter the Hub reads, then a short description."""
    lines = [
        "---",
        f"title: {SPACE_TITLE}",
        "emoji: 🙂",
        "colorFrom: indigo",
        "colorTo: blue",
        "sdk: gradio",
        f"sdk_version: {gradio_version}",
        'python_version: "3.11"',
        "app_file: app.py",
        "pinned: false",
        "license: other",  # code Apache-2.0, weights non-commercial research only (see below)
        f"suggested_hardware: {HARDWARE}",
        "short_description: Faces, expressions, age, gender, ethnicity from one small CNN",
        "tags:",
        "- face",
        "- facial-expression-recognition",
        "- age-estimation",
    ]
    if hub_repo:
        # Downloaded when the Space is built, so a restart does not fetch the weights again.
        lines += ["preload_from_hub:", f"- {hub_repo} {WEIGHTS_FILE},{CONFIG_FILE} {hub_revision}"]
    lines.append("---")
    weights = (
        f"The weights are read from the model repo `{hub_repo}` at revision `{hub_revision}` "
        f"(Space variables ${HUB_REPO_ENV} and ${HUB_REVISION_ENV})."
        if hub_repo
        else "The weights are in `face_mtl/assets` (stored on the Hub as large files)."
    )
    body = f"""
# face_mtl

Every face in a photo or clip, with its facial expression, apparent age, gender and ethnicity,
and an identity embedding for comparing faces, from one lightweight CNN (ResNet-18)
behind the MTCNN face detector. These are estimates of appearance, not facts about people: read
the **About** tab and the [model card](MODEL_CARD.md) before using them, and do not use them to
make decisions about people.

{weights}
It runs on CPU basic (2 vCPU, 16 GB); on ZeroGPU hardware each request gets a GPU slot.

Licences: code Apache-2.0; model weights non-commercial research use only (they are trained on
UTKFace, CelebA and FER2013/FER+, whose terms allow that use only).
"""
    return "\n".join(lines) + "\n" + body


def space_requirements(source: Path) -> str:
    """The project's requirements.txt without Gradio: a Space installs the Gradio named by the
    README's ``sdk_version``, and a second pin could disagree with it."""
    kept = [line for line in source.read_text(encoding="utf-8").splitlines()
            if not line.strip().lower().startswith("gradio")]
    header = "# The face_mtl Space's packages (Gradio itself comes from README.md's sdk_version)."
    body = [line for line in kept if not line.startswith("#")]
    return "\n".join([header, *body]) + "\n"


def is_binary(path: Path) -> bool:
    """Whether ``path`` should be stored as a large file: a known binary kind, or content that
    is not UTF-8 text (a NUL byte or undecodable bytes in its first 64 KB)."""
    if path.suffix.lower() in BINARY_SUFFIXES:
        return True
    head = path.read_bytes()[:65536]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < len(head) - 4  # a multi-byte character cut by the 64 KB window is text
    return False


def binary_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the binary files under ``folder`` (``is_binary``)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and is_binary(p))


def gitattributes(binaries: list[str]) -> str:
    """A ``.gitattributes`` storing ``binaries`` (relative paths) as large files: one ``*.ext``
    line per extension, and the path itself for a binary file without one."""
    patterns = sorted({f"*{Path(b).suffix.lower()}" if Path(b).suffix else b for b in binaries})
    lines = ["# Every binary file of this Space, stored as a large file (written by face-mtl space build)."]
    lines += [f"{pattern} {LFS_ATTRIBUTES}" for pattern in patterns]
    return "\n".join(lines) + "\n"


def lfs_patterns(text: str) -> list[str]:
    """The patterns a ``.gitattributes`` text stores as large files (``filter=lfs``)."""
    patterns = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def named_by(patterns: list[str], relative: str) -> bool:
    """Whether a git attribute pattern names ``relative``: a pattern without a slash matches the
    file name at any depth, one with a slash the whole path."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative if "/" in p else name, p.lstrip("/")) for p in patterns)


def _copy_package(source: Path, target: Path, with_weights: bool) -> None:
    excludes = list(PACKAGE_EXCLUDES)
    if not with_weights:
        excludes.append("assets")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*excludes))


def _check_hub_pin(hub_repo: str | None, hub_revision: str | None) -> None:
    if hub_repo is None and hub_revision is None:
        return
    if not hub_repo or hub_repo.count("/") != 1:
        raise SpaceError(f"--hub-repo must be a Hub model repo id OWNER/NAME, got {hub_repo!r}")
    if not hub_revision:
        raise SpaceError("--hub-revision is required with --hub-repo: a Space pins the weights it serves "
                         "(a commit hash or tag of the model repo)")


def build_space(out: str | Path, hub_repo: str | None = None, hub_revision: str | None = None,
                source: Path = SOURCE_ROOT) -> SpaceBuild:
    """Write the Space folder ``out`` from the checkout ``source`` (see the module docstring).

    ``out`` must not exist, be empty, or be an earlier build (replaced whole). With ``hub_repo``
    (OWNER/NAME) and ``hub_revision`` the weights stay out of the folder and the Space reads
    them from that model repo. Raises SpaceError on a bad argument or an incomplete checkout.
    """
    _check_hub_pin(hub_repo, hub_revision)
    out = Path(out)
    for needed in ("app.py", "requirements.txt", "MODEL_CARD.md", "examples", "face_mtl"):
        if not (source / needed).exists():
            raise SpaceError(f"{source} holds no {needed}: build the Space from a source checkout of face_mtl")
    bundled = source / "face_mtl" / "assets"
    if not hub_repo and not ((bundled / WEIGHTS_FILE).is_file() and (bundled / CONFIG_FILE).is_file()):
        raise SpaceError(f"no weights in {bundled}: put them there, or build with --hub-repo/--hub-revision")
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file()):
            raise SpaceError(f"{out} exists and is not an earlier Space build: give a new or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(source / "app.py", out / "app.py")
    shutil.copy2(source / "MODEL_CARD.md", out / "MODEL_CARD.md")
    _copy_package(source / "face_mtl", out / "face_mtl", with_weights=not hub_repo)
    (out / "examples").mkdir()
    for example in sorted((source / "examples").iterdir()):
        if example.is_file() and example.suffix.lower() in EXAMPLE_SUFFIXES:
            shutil.copy2(example, out / "examples" / example.name)
    (out / "requirements.txt").write_text(space_requirements(source / "requirements.txt"), encoding="utf-8")
    (out / "README.md").write_text(space_readme(_gradio_version(), hub_repo, hub_revision), encoding="utf-8")
    (out / ".gitattributes").write_text(gitattributes(binary_files(out)), encoding="utf-8")
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    weights = f"hub:{hub_repo}@{hub_revision}" if hub_repo else "bundled"
    manifest = {"weights": weights, "hub_repo": hub_repo, "hub_revision": hub_revision, "files": files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return SpaceBuild(out, files, weights)


def _hub_api(token: str):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _token() -> str | None:
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def push_space(folder: str | Path, repo_id: str, private: bool = False, api=None) -> str:
    """Create the Space ``repo_id`` (OWNER/NAME; Gradio SDK) if needed and upload the built
    ``folder`` to it in one commit; returns the commit's URL. The token is $HF_TOKEN (else the
    one ``hf auth login`` stored). ``api``: an ``HfApi`` (default: one with that token).
    A build that reads its weights from a Hub repo sets the Space's variables for it."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file() or not (folder / "app.py").is_file():
        raise SpaceError(f"{folder} is not a Space build: run `face-mtl space build {folder}` first")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise SpaceError(f"--repo-id must be USER/NAME (the Space's id), got {repo_id!r}")
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if api is None:
        token = _token()
        if not token:
            raise SpaceError("no Hugging Face token: set HF_TOKEN to a write token "
                             "(https://huggingface.co/settings/tokens)")
        api = _hub_api(token)
    variables = []
    if manifest.get("hub_repo"):
        variables = [{"key": HUB_REPO_ENV, "value": manifest["hub_repo"]},
                     {"key": HUB_REVISION_ENV, "value": manifest["hub_revision"]}]
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
    for variable in variables:  # create_repo sets variables only on a new Space: set them always
        api.add_space_variable(repo_id, variable["key"], variable["value"])
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="space",
        ignore_patterns=IGNORE_PATTERNS,
        delete_patterns=DELETE_PATTERNS,
        commit_message=f"face_mtl Space build ({manifest.get('weights', 'bundled')} weights)",
    )
    return str(getattr(info, "commit_url", info))
