"""The documents' figures, written from a weights folder's config.json.

README.md and MODEL_CARD.md quote what config.json holds: the validation figures
(``metrics.validation``), the same-person threshold and its error rates (``verification``) and
the training data counts (``training.data``). Each quote sits in a marked region, rewritten
whole by ``python scripts/sync_figures.py`` and checked by the tests, so the documents cannot
drift from the shipped weights:

    <!-- figures:NAME -->  ...  <!-- /figures:NAME -->       (Markdown: a block, or words in a sentence)
    # figures:NAME  ...  # /figures:NAME                       (the card's YAML front matter)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

EVAL_COMMAND = "face-mtl eval --weights face_mtl/assets --no-pipeline"
GROUPS_COMMAND = "face-mtl eval --weights face_mtl/assets --utkface-groups"
_MARKERS = {
    "md": (r"<!-- figures:{name} -->", r"<!-- /figures:{name} -->"),
    "yaml": (r"# figures:{name}\n", r"# /figures:{name}"),
}


class FiguresError(ValueError):
    pass


def _pct(value: float) -> str:
    return f"{100 * float(value):.1f}%"


def _need(config: dict[str, Any], *path: str) -> Any:
    value: Any = config
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise FiguresError(f"config.json has no {'.'.join(path)}")
        value = value[key]
    return value


def threshold_block(config: dict[str, Any]) -> str:
    """The same-person threshold and its error rates (README and card)."""
    v = _need(config, "verification")
    return (
        f"For the bundled weights the threshold is **{v['threshold']:.3f}**, chosen as the most accurate "
        f"cut on {v['pairs']:,} pairs ({v['same_pairs']:,} same-person, {v['different_pairs']:,} "
        f"different-person, seed {v['seed']}) of the {v['images']:,} photos of the {v['people']} CelebA "
        f"people held out of training: accuracy **{_pct(v['accuracy'])}** on those pairs "
        f"({_pct(v['cross_validated_accuracy'])} when the threshold is chosen on other folds, 10-fold), "
        f"false-accept rate **{_pct(v['false_accept_rate'])}** and false-reject rate "
        f"**{_pct(v['false_reject_rate'])}**.\n"
    )


def data_block(config: dict[str, Any]) -> str:
    """Training and validation data counts (card)."""
    data = _need(config, "training", "data")
    val = _need(config, "metrics", "validation")
    ver = config.get("verification", {})
    rows = [
        "| set | training | validation (held out) |",
        "|---|---|---|",
        f"| FER+ (FER2013 images, FER+ labels) | {data['ferplus_train']:,} images | "
        f"{val['ferplus']['count']:,} images of FER2013's PublicTest split |",
        f"| UTKFace (aligned & cropped) | {data['utkface_train']:,} faces | "
        f"{val['utkface']['count']:,} faces (10 % by a hash of the file name) |",
        f"| CelebA identity subset | {data['celeba_train']:,} photos of {data['celeba_train_identities']} "
        f"people | {ver.get('images', '?'):,} photos of {ver.get('people', '?')} other people |",
    ]
    if "celeba_wild_train" in data:  # weights trained on the in-the-wild set too
        wild = val.get("celeba_wild", {})
        rows.append(f"| CelebA in the wild (aligned, 89×109) | {data['celeba_wild_train']:,} photos of "
                    f"{data['celeba_wild_train_identities']:,} people | {wild.get('count', '?'):,} photos of "
                    f"{wild.get('identity', {}).get('people', '?')} other people |")
    return "\n".join(rows) + "\n"


def validation_block(config: dict[str, Any]) -> str:
    """Every validation figure of config.json, with the command that gives it (card)."""
    val = _need(config, "metrics", "validation")
    fer, utk, ident = val["ferplus"], val["utkface"], val["identity"]
    rows = [
        f"All from `{EVAL_COMMAND}` (two views per face, as shipped).",
        "",
        "| task | metric | validation split | value |",
        "|---|---|---|---|",
        f"| expression | 8-class accuracy, FER+ majority protocol | FER+ valid, {fer['count']:,} images "
        f"| **{fer['accuracy']:.3f}** |",
    ]
    if "ferplus_tight" in val:
        tight = val["ferplus_tight"]
        rows.append(f"| expression | same, faces framed by MTCNN's tight box (as in the app) | same "
                    f"| **{tight['accuracy']:.3f}** |")
    rows += [
        f"| age | mean absolute error, years | UTKFace, {utk['count']:,} faces | **{utk['age_mae']:.2f}** |",
        f"| gender | accuracy | same | **{utk['gender_accuracy']:.3f}** |",
        f"| ethnicity | accuracy (5 classes) | same | **{utk['ethnicity_accuracy']:.3f}** |",
        f"| identity | verification accuracy, 10-fold threshold | {ident['pairs']:,} pairs of {ident['people']} "
        f"held-out CelebA people | **{ident['accuracy']:.3f}** |",
    ]
    if fer.get("balanced_accuracy") is not None:
        rows.append(f"| expression | mean class recall (balanced accuracy) | FER+ valid | **{fer['balanced_accuracy']:.3f}** |")
    if "celeba_wild" in val:  # small colour in-the-wild CelebA faces of people never trained on
        wild = val["celeba_wild"]
        rows += [
            f"| identity | verification accuracy, 10-fold threshold | {wild['identity']['pairs']:,} pairs of "
            f"{wild['identity']['people']} held-out people, small in-the-wild CelebA faces "
            f"| **{wild['identity']['accuracy']:.3f}** |",
            f"| gender | accuracy against CelebA's `male` | same people, {wild['count']:,} photos "
            f"| **{wild['gender_accuracy']:.3f}** |",
            f"| expression | AUC of P(happiness) against CelebA's `smiling` | same | **{wild['smiling_auc']:.3f}** |",
        ]
    rows += [
        "",
        "Expression recall per class (FER+ valid):",
        "",
        "| " + " | ".join(fer["recall"]) + " |",
        "|" + "---|" * len(fer["recall"]),
        "| " + " | ".join("n/a" if r is None else f"{r:.2f}" for r in fer["recall"].values()) + " |",
    ]
    return "\n".join(rows) + "\n"


def groups_block(config: dict[str, Any]) -> str:
    """UTKFace errors per gender, ethnicity and age band (card)."""
    groups = _need(config, "metrics", "validation", "utkface_groups")
    rows = [
        f"From `{GROUPS_COMMAND}` (also in the full report), per true label of the validation faces:",
        "",
        "| group | faces | age MAE (years) | gender error | ethnicity error |",
        "|---|---|---|---|---|",
    ]
    for kind, title in (("gender", "gender"), ("ethnicity", "ethnicity"), ("age", "age")):
        for label, row in groups[kind].items():
            if not row.get("count"):
                rows.append(f"| {title}: {label} | 0 | | | |")
                continue
            rows.append(f"| {title}: {label} | {row['count']:,} | {row['age_mae']:.2f} | "
                        f"{_pct(1 - row['gender_accuracy'])} | {_pct(1 - row['ethnicity_accuracy'])} |")
    return "\n".join(rows) + "\n"


def model_index_block(config: dict[str, Any]) -> str:
    """The card's ``model-index`` (YAML) with the validation results."""
    val = _need(config, "metrics", "validation")
    results = [
        ("image-classification", "Facial expression recognition", "FER+", "ferplus", "accuracy",
         "FER+ 8-class accuracy", val["ferplus"]["accuracy"]),
        ("image-regression", "Age estimation", "UTKFace", "utkface", "mae", "age MAE (years)",
         val["utkface"]["age_mae"]),
        ("image-classification", "Gender classification", "UTKFace", "utkface", "accuracy", "gender accuracy",
         val["utkface"]["gender_accuracy"]),
        ("image-classification", "Ethnicity classification", "UTKFace", "utkface", "accuracy",
         "ethnicity accuracy", val["utkface"]["ethnicity_accuracy"]),
        ("image-classification", "Face verification", "CelebA", "celeba", "accuracy",
         "verification accuracy (held-out people)", val["identity"]["accuracy"]),
    ]
    lines = ["model-index:", "- name: face_mtl", "  results:"]
    for task_type, task, dataset, dataset_type, metric, name, value in results:
        lines += [
            f"  - task: {{type: {task_type}, name: {task}}}",
            f"    dataset: {{name: {dataset}, type: {dataset_type}, split: validation}}",
            "    metrics:",
            f"    - {{type: {metric}, value: {value:.4f}, name: {name}}}",
        ]
    return "\n".join(lines) + "\n"


def summary_block(config: dict[str, Any]) -> str:
    """The headline validation figures in one sentence (README)."""
    val = _need(config, "metrics", "validation")
    fer, utk = val["ferplus"], val["utkface"]
    tight = f" ({val['ferplus_tight']['accuracy']:.3f} on MTCNN's tight crops)" if "ferplus_tight" in val else ""
    return (
        f"FER+ expression accuracy {fer['accuracy']:.3f}{tight}, age MAE {utk['age_mae']:.2f} years, "
        f"gender accuracy {utk['gender_accuracy']:.3f}, ethnicity accuracy {utk['ethnicity_accuracy']:.3f} "
        f"and identity verification of held-out people {val['identity']['accuracy']:.3f}"
    )


def grouping_block(config: dict[str, Any]) -> str:
    """The grouping thresholds by folder size, in words (README)."""
    by_faces = _need(config, "verification", "grouping_by_faces")
    cuts = [f"{row['threshold']:.2f}" for row in by_faces]
    return ", ".join(cuts[:-1]) + f" and {cuts[-1]}" if len(cuts) > 1 else cuts[0]


def _block(render: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """A region on lines of its own: its markers stay on their lines."""
    return lambda config: "\n" + render(config)


BLOCKS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "model-index": ("yaml", model_index_block),
    "data": ("md", _block(data_block)),
    "validation": ("md", _block(validation_block)),
    "groups": ("md", _block(groups_block)),
    "threshold": ("md", _block(threshold_block)),
    "summary": ("md", summary_block),
    "grouping": ("md", grouping_block),
}


def _pattern(name: str, kind: str) -> re.Pattern[str]:
    start, end = (m.format(name=re.escape(name)) for m in _MARKERS[kind])
    return re.compile(f"({start})(.*?)({end})", re.S)


def regions(text: str) -> list[str]:
    """Names of the figure regions in ``text``, in order."""
    found = re.findall(r"<!-- figures:([\w-]+) -->|^# figures:([\w-]+)$", text, re.M)
    return [md or yaml for md, yaml in found]


def sync_text(text: str, config: dict[str, Any]) -> str:
    """``text`` with every figure region rewritten from ``config`` (config.json as a dict)."""
    for name in regions(text):
        if name not in BLOCKS:
            raise FiguresError(f"unknown figure region {name!r} (known: {', '.join(BLOCKS)})")
        kind, render = BLOCKS[name]
        block = render(config)
        text, count = _pattern(name, kind).subn(lambda m, b=block: m.group(1) + b + m.group(3), text)
        if count != 1:
            raise FiguresError(f"figure region {name!r}: start and end markers do not pair up")
    return text


def stale_regions(text: str, config: dict[str, Any]) -> list[str]:
    """Names of the regions whose text differs from what ``config`` gives (empty: in sync)."""
    stale = []
    for name in regions(text):
        kind, render = BLOCKS[name]
        match = _pattern(name, kind).search(text)
        if match is None or match.group(2) != render(config):
            stale.append(name)
    return stale


def merge_eval_report(config: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its ``metrics`` replaced by a ``face-mtl eval`` report of the same
    weights (validation: every split's figures; summary: the headline figures)."""
    keep = ("ferplus", "ferplus_tight", "utkface", "utkface_groups", "identity", "celeba_wild")
    validation = {k: report[k] for k in keep if k in report}
    missing = {"ferplus", "utkface", "identity"} - set(validation)
    if missing:
        raise FiguresError(f"not a face-mtl eval report: no {', '.join(sorted(missing))}")
    metrics = {"validation": validation, "summary": report["summary"],
               "command": EVAL_COMMAND, "runtime": report.get("runtime"),
               "computed_precision": report.get("computed_precision")}
    return {**config, "metrics": metrics}
