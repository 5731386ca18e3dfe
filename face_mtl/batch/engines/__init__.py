"""Engines run the analysis over many image files behind one interface (``Engine.run``),
picked by name from ``ENGINES``: "local" (this process) and "ray" (Ray Data, on one machine
or a cluster). An engine's module is imported only when that engine is asked for, so Ray
stays the optional extra ``[scale]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..records import BatchError
from .base import Engine


def _local() -> Callable[..., Engine]:
    from .local import LocalEngine

    return LocalEngine


def _ray() -> Callable[..., Engine]:
    from .ray import RayEngine

    return RayEngine


# name -> the engine's class, imported when called.
ENGINES: dict[str, Callable[[], Callable[..., Engine]]] = {"local": _local, "ray": _ray}
# What an engine needs beyond the base install, for the message when it is missing.
EXTRAS = {"ray": "Ray Data"}


def engine(name: str, **settings: Any) -> Engine:
    """The engine called ``name`` (a key of ``ENGINES``), built with its ``settings``.
    BatchError when it is unknown or its extra is not installed."""
    if name not in ENGINES:
        raise BatchError(f"unknown engine {name!r}: use {' or '.join(ENGINES)}")
    try:
        engine_class = ENGINES[name]()
    except ImportError as error:
        if name not in EXTRAS:
            raise
        raise BatchError(
            f"--engine {name} needs {EXTRAS[name]} ({error.name or name} is not installed): "
            "pip install 'face_mtl[scale]'"
        ) from None
    return engine_class(**settings)
