"""Refit the identity head of weights already exported (weights folder in, weights folder out).

Training's export chooses the head itself (``train/loop.py``); this is for weights exported
before a head existed, or to compare heads on the same network. The backbone and the other
heads are left as they are; the config's validation figures and same-person threshold are
recomputed for the new head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.sets import build_splits
from ..evaluate import headline
from ..weights import load_model, save_model
from .embedding import fit_identity_head


def refit_identity_head(
    weights: str | Path, out: str | Path, data_dir: Path, cache_dir: Path, device: str = "cpu", kind: str = "best"
) -> dict[str, Any]:
    """Fit the identity head ``kind`` (or the best of trained, PCA and LDA) of ``weights`` on
    the CelebA training people, and write the weights with it to ``out`` (may be ``weights``
    itself). Returns the head's summary with the new validation figures."""
    model, config = load_model(weights, device=device)
    fitted = fit_identity_head(model, config, build_splits(Path(data_dir), Path(cache_dir), config.input_size),
                               device, kind)
    training = {**config.training, "identity_head": fitted.summary}
    metrics = {"validation": fitted.report, "summary": headline(fitted.report)}
    save_model(model, config.with_updates(training=training, metrics=metrics, verification=fitted.verification), out)
    return {**fitted.summary, "validation": metrics["summary"]}
