"""Multi-task training of the face network (``face-mtl train``)."""

from .loop import train
from .settings import TrainSettings, add_train_arguments

__all__ = ["TrainSettings", "add_train_arguments", "train"]
