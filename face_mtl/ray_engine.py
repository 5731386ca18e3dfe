"""The Ray Data engine's old module name, kept for existing imports: the engine lives in
``face_mtl.batch.engines.ray``. Importing this module imports Ray."""

from .batch.engines.ray import (
    PACKAGE_DIR,
    ActorPlan,
    AnalyzeActor,
    CsvParts,
    JsonlParts,
    RayEngine,
    plan_actors,
)

__all__ = ["PACKAGE_DIR", "ActorPlan", "AnalyzeActor", "CsvParts", "JsonlParts", "RayEngine", "plan_actors"]
