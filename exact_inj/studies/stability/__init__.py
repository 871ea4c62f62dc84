"""Certified lower bounds on a layer's stability constant (docs/stability.md)."""

from .search import StabilityResult, check_stability, stability

__all__ = ["StabilityResult", "check_stability", "stability"]
