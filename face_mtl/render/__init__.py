"""Rendering results for people: boxes and labels on images, tables, charts, exports."""

from .draw import EMOTION_COLORS, default_label, draw_faces

__all__ = ["EMOTION_COLORS", "default_label", "draw_faces"]
