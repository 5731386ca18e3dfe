"""The Gradio app's handlers and texts; ``app.py`` at the repository root only wires them up.

Serving limits live here so that the app and its tests agree on them.
"""

from __future__ import annotations

import ctypes
import hashlib
import html
import io
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import numpy as np
from PIL import Image

from ..config import ModelConfig
from ..detect import DEFAULT_MIN_FACE_SIZE
from ..errors import FaceMTLInputError, ImageLoadError, LimitExceededError, VideoLoadError

# One CPU process serves everyone: a few requests at a time and a bounded waiting line. Input
# limits (upload size, pixels, faces, clip length) are face_mtl.limits's, shared with the CLI.
QUEUE_CONCURRENCY = 2
QUEUE_MAX_SIZE = 32
# Gradio's cache (uploads, outputs) is swept every 30 minutes of files older than an hour.
DELETE_CACHE = (1800, 3600)

# glibc gives each thread that contends for malloc an arena of its own (up to 8 per core) and
# seldom returns what they free: with Gradio's worker threads decoding photos and clips of every
# size, a server's memory grew by 590 MB over 57 requests of bench/load_test.py (8 users), and
# by 310 MB over 75 requests with two arenas, at times falling back (one machine, shared CPU).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, glibc's malloc.h

ERROR_TITLES = {
    ImageLoadError: "Not a photo that can be read",
    VideoLoadError: "Not a clip that can be read",
    LimitExceededError: "Outside the limits",
}

# What the detector needs, for the Photo and Video tabs' "No face found" messages.
FACE_HINT = (
    f"Faces need to be at least about {DEFAULT_MIN_FACE_SIZE} pixels tall, mostly frontal and reasonably lit"
)

F = TypeVar("F", bound=Callable)


def on_gpu(fn: F, duration: int | None = None) -> F:
    """``fn`` under ``spaces.GPU`` when the ``spaces`` package is importable (Hugging Face
    ZeroGPU, where a GPU is attached only inside such calls), else ``fn`` unchanged."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn) if duration else spaces.GPU(fn)


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (``mallopt(M_ARENA_MAX, count)``), unless
    $MALLOC_ARENA_MAX already says how many. The server calls it once at start. Returns whether
    the cap was set (False elsewhere than glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


# glibc returns freed memory to the system only from the top of each heap: one live block above
# a photo's freed buffers keeps them resident. malloc_trim(0) also releases whole free pages in
# the middle of every arena (madvise), so calling it now and then bounds a long-running server's
# RSS by what it uses, not by its high-water mark.
TRIM_EVERY_S = 30.0


def release_freed_memory() -> bool:
    """Hand the pages glibc's malloc holds free back to the system (``malloc_trim(0)``).
    Returns whether any was released (False elsewhere than glibc)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def start_memory_trimmer(every_s: float = TRIM_EVERY_S) -> threading.Thread | None:
    """A daemon thread calling ``release_freed_memory`` every ``every_s`` seconds, for the
    server's lifetime; None where malloc_trim is not available (not glibc)."""
    try:
        if not hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim"):
            return None
    except OSError:
        return None

    def trim() -> None:
        while True:
            time.sleep(every_s)
            release_freed_memory()

    thread = threading.Thread(target=trim, name="face_mtl-malloc-trim", daemon=True)
    thread.start()
    return thread


def uploaded_file(value: Any) -> tuple[str, str] | None:
    """(path on the server, the user's own file name) of an upload, or None when there is none.
    ``value`` is a path (a preprocessed input) or Gradio's FileData as a dict (an input left
    unprocessed, so that face_mtl, not the component, reads the file and words any refusal)."""
    if isinstance(value, dict):
        path = value.get("path")
        if not path:
            return None
        return str(path), str(value.get("orig_name") or Path(path).name)
    if value is None or str(value) == "":
        return None
    return str(value), Path(value).name


def input_error(error: FaceMTLInputError, name: str) -> gr.Error:
    """The gr.Error (and API AppError) for a refused input: the library's one-line message
    with the uploaded file's own name, never a server path; the name is escaped, as the
    browser shows messages as HTML."""
    title = next((t for kind, t in ERROR_TITLES.items() if isinstance(error, kind)), "Cannot analyse this file")
    return gr.Error(error.message_for(html.escape(name)), title=title, print_exception=False)


def example_clips(folder: str | Path) -> list[str]:
    """Video example paths in ``folder`` (mp4, webm, mov), sorted by name."""
    suffixes = (".mp4", ".webm", ".mov")
    return sorted(str(p) for p in Path(folder).glob("*") if p.suffix.lower() in suffixes)


def _is_placeholder(config: ModelConfig) -> bool:
    note = str(config.training.get("note", ""))
    return "placeholder" in note.lower() or not config.metrics


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def comparing_markdown(config: ModelConfig) -> str:
    """The About tab's section on comparing faces: what the similarity means, how the threshold
    was chosen and its error rates, read from the loaded weights' config (``verification``)."""
    from ..identity import verdict_threshold

    threshold, source = verdict_threshold(config.verification)
    calibration = config.verification
    if source == "calibrated":
        chosen = (
            f"The threshold, **{threshold:.3f}**, is the one that was right most often on "
            f"{calibration.get('pairs', '?')} pairs of photos ({calibration.get('same_pairs', '?')} "
            f"of the same person, {calibration.get('different_pairs', '?')} of two different people) of "
            f"{calibration.get('people', '?')} CelebA people the network never saw in training. On those "
            f"pairs it is right {_percent(calibration.get('accuracy'))} of the time; it calls "
            f"{_percent(calibration.get('false_accept_rate'))} of different-people pairs the same person "
            f"(false accepts) and {_percent(calibration.get('false_reject_rate'))} of same-person pairs "
            "different people (false rejects)."
        )
        if calibration.get("cross_validated_accuracy") is not None:
            chosen += (
                f" With the threshold chosen on other pairs than those it is tested on, accuracy is "
                f"{_percent(calibration['cross_validated_accuracy'])}."
            )
    else:
        chosen = (
            f"These weights carry no calibration, so a generic default threshold ({threshold:.2f}) is "
            "used and its error rates are unknown (`face-mtl calibrate` measures them)."
        )
    return f"""**Comparing faces (Compare tab).** Each face becomes {config.embedding_size} numbers (its
identity embedding); the *similarity* of two faces is the cosine of the angle between them, from
-1 to 1: near 1 for near-identical faces, near 0 for unrelated ones. Two faces are called the
same person when the similarity reaches a threshold. {chosen} Expect more errors on photos unlike
CelebA's (children, profile views, poor light, low resolution), and for look-alikes and relatives.
A verdict is a statistical guess, never proof of who someone is. The photos you compare are not
stored and no face is kept or searched against any collection.
"""


def about_markdown(config: ModelConfig, model_card_url: str = "MODEL_CARD.md") -> str:
    """The About text: the models, their training data and licences, and what the attributes
    mean and do not mean. ``config`` is the loaded model's; ``model_card_url`` the card's link."""
    warning = ""
    if _is_placeholder(config):
        warning = (
            "> **Note:** the weights loaded here carry no evaluation metrics "
            f"({config.training.get('note', 'untrained')}), so their predictions are not meaningful.\n\n"
        )
    side = config.input_size
    return f"""## About

{warning}**What runs.** Faces are found by **MTCNN** (the `facenet-pytorch` implementation). Each face
is cropped and resized to {side}×{side} pixels, and **one lightweight CNN** (`{config.backbone}`
backbone with one small head per task, in the style of HSEmotion) predicts:

- **expression**: one of {len(config.emotions)} labels ({", ".join(config.emotions)});
- **age**: an apparent age in years, the mean of a predicted distribution over 0–{config.max_age};
- **gender**: {" / ".join(config.genders)};
- **ethnicity**: {", ".join(config.ethnicities)};
- an **identity embedding** ({config.embedding_size} numbers, in the JSON download) for comparing faces
  (the **Compare** tab).

**Training data and licences.**

| Output | Trained on | Terms |
|---|---|---|
| expression | FER2013 images with the FER+ relabelling (10 annotators per image); CelebA's `smiling` for happiness | FER2013: research use (Kaggle challenge data); FER+ labels: MIT licence; CelebA: non-commercial research use only |
| age, ethnicity | UTKFace | non-commercial research use only |
| gender | UTKFace and CelebA's `male` | non-commercial research use only |
| identity embedding | CelebA identities (about 3,900 people) | non-commercial research use only |
| face detector | MTCNN weights shipped with facenet-pytorch | see facenet-pytorch |

Because of these datasets' terms, **the model weights are for non-commercial research use only**
(the code is Apache-2.0). Details, evaluation results and known limitations are in the
[model card (MODEL_CARD.md)]({model_card_url}).

**What the attributes mean, and what they do not.** Every output is an *estimate of appearance*
in this one photo, learned from how annotators labelled other photos. None of them is a fact
about the person.

- *Expression* says which labelled facial expression the face looks most like. It is not what
  the person feels: people smile when sad and look neutral when happy.
- *Age* is apparent age. Errors of several years are normal, and larger for children, older
  people, heavy make-up, poor light and low resolution.
- *Gender* is the binary label UTKFace's and CelebA's annotators gave to a face's appearance. It is not the
  person's gender identity or sex.
- *Ethnicity* is one of UTKFace's five coarse appearance categories ("others" merges many
  groups). It is not ancestry, nationality or how the person identifies.
- Probabilities are the model's confidence, not a guarantee, and accuracy differs between
  groups of people (see the model card).

{comparing_markdown(config)}
**Live camera (Live tab).** Frames from your camera are analysed in memory as they arrive and
dropped at once; the labels and chart are averaged over the last moments so that they do not
flicker. Nothing of a live stream is stored, and a session's people and chart are forgotten
when it ends.

Do not use these outputs to make decisions about people (hiring, admission, policing, access,
credit, or anything similar). Uploaded photos and results are not kept: the server deletes its
temporary copies after about an hour.
"""


# Gradio copies a handler's files into its own cache as soon as the handler returns, so a
# request's exports are stale within seconds; five minutes keeps this folder small under load.
EXPORT_MAX_AGE_S = 300


def _export_root(kind: str) -> Path:
    """The temp dir's folder for ``kind``'s downloads, with folders older than
    EXPORT_MAX_AGE_S removed: exports are only needed until Gradio has copied them."""
    root = Path(tempfile.gettempdir()) / f"face_mtl_{kind}"
    root.mkdir(exist_ok=True)
    cutoff = time.time() - EXPORT_MAX_AGE_S
    for old in root.iterdir():
        try:
            stale = old.stat().st_mtime < cutoff
        except FileNotFoundError:  # a concurrent request removed it first
            continue
        if stale:
            shutil.rmtree(old, ignore_errors=True)
    return root


def fresh_export_folder(kind: str) -> Path:
    """A new empty folder under the temp dir for one request's downloads (``kind``: photo,
    video). Exports are only needed until Gradio has copied them: older ones are dropped."""
    folder = _export_root(kind) / uuid.uuid4().hex
    folder.mkdir()
    return folder


def picture_file(rgb: np.ndarray, kind: str, name: str) -> str:
    """Save a picture the app shows (H x W x 3 uint8 RGB) as ``name``.webp and return its path,
    for a ``gr.Image`` output; the same picture is written once (in a folder named after its
    bytes, like Gradio's cache) and always whole.

    Why not return the array: Gradio caches an array under a path named after its encoded bytes
    and rewrites that file in place, so when two users get the same picture at once (an example
    photo), one can download it while the other's copy truncates it. Here a picture appears
    under its name only complete (written aside, then renamed), and Gradio copies a returned
    file into its cache atomically (Gradio 6: ``save_pil_to_cache`` against
    ``save_file_to_cache``). WebP at Pillow's default quality, as Gradio encodes arrays."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="WEBP")
    data = buffer.getvalue()
    folder = _export_root(kind) / hashlib.sha256(data).hexdigest()[:32]
    folder.mkdir(exist_ok=True)
    os.utime(folder)  # in use (again): the sweep keeps it for another EXPORT_MAX_AGE_S
    path = folder / f"{name}.webp"
    if not path.is_file():
        staging = folder / f".{uuid.uuid4().hex}.tmp"
        staging.write_bytes(data)
        os.replace(staging, path)
    return str(path)
