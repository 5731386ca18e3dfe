"""face_mtl: facial expression, age, gender, ethnicity and identity from one lightweight CNN."""

from .analyzer import FaceAnalyzer
from .config import EMOTIONS, ETHNICITIES, GENDERS, ModelConfig
from .errors import FaceMTLInputError, ImageLoadError, LimitExceededError, VideoLoadError
from .images import load_image
from .limits import Limits
from .types import Comparison, Detection, Face, Match, NoFaceError
from .weights import WeightsMismatchError, WeightsNotFoundError

__all__ = [
    "Comparison",
    "EMOTIONS",
    "ETHNICITIES",
    "GENDERS",
    "Detection",
    "Face",
    "FaceAnalyzer",
    "FaceMTLInputError",
    "ImageLoadError",
    "LimitExceededError",
    "Limits",
    "Match",
    "ModelConfig",
    "NoFaceError",
    "VideoLoadError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "load_image",
]
__version__ = "0.1.0"
