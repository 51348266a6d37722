"""Prototype projection lives with the model (core.model.push); this name stays for callers."""
from core.model.push import project_prototypes

__all__ = ["project_prototypes"]
