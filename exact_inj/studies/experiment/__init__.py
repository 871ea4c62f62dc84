"""The Gaussian experiment: P(injective) of random layers, every trial decided
exactly (docs/experiment.md)."""

from .run import ExperimentResult, run_experiment

__all__ = ["ExperimentResult", "run_experiment"]
