"""The Gradio app's handlers and texts; ``app.py`` at the repository root only wires them up.

Serving limits live here so that the app and its tests agree on them.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..config import ModelConfig
from ..detect import DEFAULT_MIN_FACE_SIZE

# One CPU process serves everyone: a few requests at a time, a bounded waiting line, and no
# upload bigger than a phone camera's largest JPEGs.
QUEUE_CONCURRENCY = 2
QUEUE_MAX_SIZE = 32
MAX_FILE_SIZE = "25mb"
# Gradio's cache (uploads, outputs) is swept every 30 minutes of files older than an hour.
DELETE_CACHE = (1800, 3600)

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
| expression | FER2013 images with the FER+ relabelling (10 annotators per image) | FER2013: research use (Kaggle challenge data); FER+ labels: MIT licence |
| age, gender, ethnicity | UTKFace | non-commercial research use only |
| identity embedding | CelebA identities | non-commercial research use only |
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
- *Gender* is the binary label UTKFace's annotators gave to a face's appearance. It is not the
  person's gender identity or sex.
- *Ethnicity* is one of UTKFace's five coarse appearance categories ("others" merges many
  groups). It is not ancestry, nationality or how the person identifies.
- Probabilities are the model's confidence, not a guarantee, and accuracy differs between
  groups of people (see the model card).

{comparing_markdown(config)}
Do not use these outputs to make decisions about people (hiring, admission, policing, access,
credit, or anything similar). Uploaded photos and results are not kept: the server deletes its
temporary copies after about an hour.
"""


EXPORT_MAX_AGE_S = 3600


def fresh_export_folder(kind: str) -> Path:
    """A new empty folder under the temp dir for one request's downloads (``kind``: photo,
    video). Exports are only needed until Gradio has copied them: older ones are dropped."""
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
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder
