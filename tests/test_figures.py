"""README.md and MODEL_CARD.md against the shipped weights' config.json (scripts/sync_figures.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from face_mtl.figures import FiguresError, regions, stale_regions, sync_text

ROOT = Path(__file__).resolve().parent.parent
CONFIG = json.loads((ROOT / "face_mtl" / "assets" / "config.json").read_text())
README = (ROOT / "README.md").read_text()
CARD = (ROOT / "MODEL_CARD.md").read_text()


def test_readme_and_card_quote_config_json():
    assert set(regions(README)) >= {"summary", "threshold", "grouping"}
    assert set(regions(CARD)) >= {"model-index", "data", "validation", "groups", "threshold"}
    assert stale_regions(README, CONFIG) == [], "run: python scripts/sync_figures.py"
    assert stale_regions(CARD, CONFIG) == [], "run: python scripts/sync_figures.py"


def test_the_threshold_and_its_error_rates_are_config_json_s():
    v = CONFIG["verification"]
    for text in (README, CARD):
        assert f"**{v['threshold']:.3f}**" in text
        assert f"**{100 * v['accuracy']:.1f}%**" in text
        assert f"**{100 * v['false_accept_rate']:.1f}%**" in text
    assert f"{CONFIG['training']['data']['ferplus_train']:,} images" in CARD


def test_a_changed_figure_makes_the_region_stale_and_sync_rewrites_it():
    changed = json.loads(json.dumps(CONFIG))
    changed["verification"]["threshold"] = 0.123
    changed["metrics"]["validation"]["utkface"]["age_mae"] = 9.87
    assert stale_regions(README, changed) == ["summary", "threshold"]
    assert set(stale_regions(CARD, changed)) == {"model-index", "validation", "threshold"}
    synced = sync_text(CARD, changed)
    assert "**0.123**" in synced and "**9.87**" in synced and stale_regions(synced, changed) == []
    assert sync_text(synced, CONFIG) == CARD  # and back again: nothing outside the regions moves


def test_the_card_shows_the_in_the_wild_figures_only_where_config_json_has_them():
    from face_mtl.figures import validation_block

    val = CONFIG["metrics"]["validation"]
    wild = val["celeba_wild"]
    block = validation_block(CONFIG)
    assert f"| **{wild['identity']['accuracy']:.3f}** |" in block and f"{wild['identity']['pairs']:,} pairs" in block
    assert f"**{wild['smiling_auc']:.3f}**" in block and f"**{val['ferplus']['balanced_accuracy']:.3f}**" in block
    older = json.loads(json.dumps(CONFIG))
    del older["metrics"]["validation"]["celeba_wild"]
    assert "in-the-wild" not in validation_block(older)


def test_unpaired_or_unknown_regions_are_errors():
    with pytest.raises(FiguresError, match="unknown figure region"):
        sync_text("<!-- figures:nonsense --><!-- /figures:nonsense -->", CONFIG)
    with pytest.raises(FiguresError, match="do not pair up"):
        sync_text("<!-- figures:threshold -->\nno end", CONFIG)


def test_card_is_a_hub_model_card():
    front = yaml.safe_load(CARD.split("---\n")[1])
    assert front["license"] and front["tags"] and front["datasets"] and front["metrics"]
    results = front["model-index"][0]["results"]
    values = {r["metrics"][0]["name"]: r["metrics"][0]["value"] for r in results}
    validation = CONFIG["metrics"]["validation"]
    assert values["FER+ 8-class accuracy"] == round(validation["ferplus"]["accuracy"], 4)
    assert values["age MAE (years)"] == round(validation["utkface"]["age_mae"], 4)
    assert values["verification accuracy (held-out people)"] == round(validation["identity"]["accuracy"], 4)
    assert len(CARD.splitlines()) <= 300
    assert "training/HISTORY.md" in CARD and (ROOT / "training" / "HISTORY.md").is_file()


def test_card_reports_errors_per_group_and_recall_per_class():
    groups = CONFIG["metrics"]["validation"]["utkface_groups"]
    for kind in ("gender", "ethnicity", "age"):
        for label in groups[kind]:
            assert f"| {kind}: {label} |" in CARD
    for emotion in CONFIG["emotions"]:
        assert f"| {emotion} " in CARD


def test_user_facing_text_speaks_of_the_model_not_the_bookkeeping():
    from face_mtl.config import ModelConfig
    from face_mtl.ui import about_markdown

    about = about_markdown(ModelConfig.from_json(ROOT / "face_mtl" / "assets" / "config.json"))
    bookkeeping = re.compile(r"\b(issue|session|run) #?\d+", re.I)
    for name, text in (("README.md", README), ("MODEL_CARD.md", CARD), ("About", about)):
        assert bookkeeping.findall(text) == [], name
